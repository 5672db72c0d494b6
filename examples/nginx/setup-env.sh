#!/usr/bin/env bash
# Writes .env, the settings every other script of this example reads: which
# backend holds the keys, the HSM name, the key names, the ports. Defaults:
# the hsmbridge simulator (no cloud account needed), MyHSM, myrsakey and
# myeckey, ports 8443 and 8444 (the next free ones if those are taken).
#
# Run it again to change a setting, naming only what changes (the rest keeps
# its value in .env), or edit .env:
#
#   BACKEND=mhsm-standin ./setup-env.sh   # the Managed HSM backend, local stand-in
#   BACKEND=mhsm HSM_NAME=ContosoHSM ./setup-env.sh   # a real Azure Managed HSM
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# What the caller set wins over .env, which wins over the defaults.
keys="BACKEND HSM_NAME RSA_KEY_NAME EC_KEY_NAME NGINX_PORT NGINX_PORT_EC SERVER_NAME NGINX_USER"
declare -A given=()
for k in $keys; do
	[ -n "${!k:-}" ] && given[$k]=${!k}
done
# shellcheck source=../lib/backend.sh
HB_NO_ENV=1 . "$EX_DIR/../lib/backend.sh"
# shellcheck disable=SC1091
[ -f "$EX_DIR/.env" ] && . "$EX_DIR/.env"
for k in "${!given[@]}"; do printf -v "$k" '%s' "${given[$k]}"; done
hb_defaults

RSA_KEY_NAME=${RSA_KEY_NAME:-myrsakey}
EC_KEY_NAME=${EC_KEY_NAME:-myeckey}
SERVER_NAME=${SERVER_NAME:-localhost}
# A port another program holds (not our own running nginx) moves to the next free one.
own_nginx=
hb_alive "$RUN/nginx.pid" && own_nginx=1
port_for() {
	local want=$1 skip=${2:-}
	if [ -n "$own_nginx" ] || [ -n "${given[$3]:-}" ]; then echo "$want"; return; fi
	hb_free_port "$want" ${skip:+"$skip"}
}
NGINX_PORT=$(port_for "${NGINX_PORT:-8443}" "" NGINX_PORT)
NGINX_PORT_EC=$(port_for "${NGINX_PORT_EC:-8444}" "$NGINX_PORT" NGINX_PORT_EC)

umask 077
cat >"$EX_DIR/.env" <<ENV
# nginx keyless TLS example: read by every script here. Written by
# setup-env.sh; edit it or run  NAME=value ./setup-env.sh.

# Where the keys live:
#   simulator     the hsmbridge software simulator (keys in .run/state)
#   mhsm-standin  the Azure Managed HSM backend against a local stand-in of
#                 the service (keys in .run/standin-state.json)
#   mhsm          the Azure Managed HSM backend against Azure; hsmhost takes
#                 the credential from your shell (AZURE_CLI_ACCESS_TOKEN or
#                 az login; see docs/MANAGED_HSM.md); nginx never sees it
BACKEND=$BACKEND

# Key references are managedhsm:\$HSM_NAME:<key name>.
HSM_NAME=$HSM_NAME
RSA_KEY_NAME=$RSA_KEY_NAME
EC_KEY_NAME=$EC_KEY_NAME

# nginx: the RSA server on NGINX_PORT, the EC one on NGINX_PORT_EC.
NGINX_PORT=$NGINX_PORT
NGINX_PORT_EC=$NGINX_PORT_EC
SERVER_NAME=$SERVER_NAME
# When started by root, nginx workers run as this user; hsmhost's socket is
# opened to its group (mode 0660), to no one else.
NGINX_USER=$NGINX_USER
ENV
chmod 644 "$EX_DIR/.env"

ok "wrote $EX_DIR/.env"
grep -E '^[A-Z_]+=' "$EX_DIR/.env" | sed 's/^/    /'
echo
echo "Next:"
echo "  ./generate-cert.sh   # keys in the backend (if missing), CSR, certificate signed by the HSM key"
echo "  ./start-server.sh    # hsmhost and nginx"
echo "  ./test-client.sh     # HTTPS requests, TLS details, hsmhost's log of the key operations"
