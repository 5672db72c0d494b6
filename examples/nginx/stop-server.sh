#!/usr/bin/env bash
# Stops nginx, hsmhost and (BACKEND=mhsm-standin) the Managed HSM stand-in,
# and removes their sockets, pid files and nginx's temporary files. Keys
# (.run/state, .run/standin-state.json), certificates and logs stay for the
# next ./start-server.sh; ./cleanup.sh removes them.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"
echo "=== Stopping nginx and hsmhost ==="
hb_stop nginx "$RUN/nginx.pid"
hb_stop_host
rm -rf "$RUN/tmp" "$RUN/hsm"
ok "stopped"
