#!/usr/bin/env bash
# Stops whatever still runs (./stop-server.sh), then removes everything this
# example made: .run/ (keys of the simulator or the stand-in, certificates,
# configs, logs) and .env. Keys in a real Managed HSM (BACKEND=mhsm) are not
# touched.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"
"$EX_DIR/stop-server.sh" >/dev/null
echo "=== Cleaning up ==="
if [ "$BACKEND" = mhsm ] && [ -f "$EX_DIR/.env" ]; then
	warn "the keys managedhsm:$HSM_NAME:$RSA_KEY_NAME and managedhsm:$HSM_NAME:$EC_KEY_NAME stay in the HSM"
	say "  (az keyvault key delete --hsm-name $HSM_NAME --name <key> deletes one)"
fi
rm -rf "$RUN" "$EX_DIR/.env"
ok "removed $RUN and $EX_DIR/.env"
