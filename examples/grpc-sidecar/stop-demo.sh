#!/usr/bin/env bash
# Stops both sidecars, greeter-server, hsmhost and (BACKEND=mhsm-standin) the
# stand-in, then removes .run/: certificates, key references, the
# simulator's or the stand-in's keys, sockets, logs. Keys in a real Managed
# HSM (BACKEND=mhsm) stay there. KEEP_RUN=1 keeps .run/ (e.g. to read the
# logs).
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$EX_DIR/common.sh"
echo "=== Stopping the gRPC sidecar demo ==="
hb_stop "client sidecar" "$RUN/nginx-client.pid"
hb_stop "impostor client sidecar" "$RUN/nginx-rogue.pid"
hb_stop "server sidecar" "$RUN/nginx-server.pid"
hb_stop greeter-server "$RUN/greeter-server.pid"
hb_stop_host
if [ "$BACKEND" = mhsm ]; then
	warn "the keys $CA_REF, $SERVER_REF and $CLIENT_REF stay in the HSM"
fi
if [ -n "${KEEP_RUN:-}" ]; then
	rm -rf "$RUN/tmp" "$RUN/hsm" "$RUN/server-sock" "$RUN/client-sock"
	ok "stopped; $RUN kept"
else
	rm -rf "$RUN"
	ok "stopped; removed $RUN"
fi
