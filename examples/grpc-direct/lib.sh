# Sourced by the demo's scripts: where things are, and how to reach hsmhost.
#
#   DEMO_WORK         the demo's folder (default ./.run): certificates, logs,
#                     pids, and the socket and state of the hsmhost the demo
#                     starts; stop-demo.sh removes what the demo put there
#   DEMO_ADDR         where the gRPC server listens (default 127.0.0.1:50051)
#   DEMO_SOCKET       the socket of an hsmhost of yours to use (its backend
#                     gets the demo's keys); unset, the demo starts its own
#                     hsmhost on the simulator, socket and state in $DEMO_WORK
#   HSMHOST           the hsmhost binary (default ../../build/bin/hsmhost,
#                     else hsmhost on PATH, else built into $DEMO_WORK/bin)
#
# (examples/lib/backend.sh, which the OpenSSL examples share, is not used:
# it needs openssl and the provider module, and this example uses neither.)
#   DEMO_CA_KEY, DEMO_SERVER_KEY, DEMO_CLIENT_KEY   the key references
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"
WORK=${DEMO_WORK:-$here/.run}
ADDR=${DEMO_ADDR:-127.0.0.1:50051}
CA_KEY=${DEMO_CA_KEY:-managedhsm:DemoHSM:grpc-ca}
SERVER_KEY=${DEMO_SERVER_KEY:-managedhsm:DemoHSM:grpc-server}
CLIENT_KEY=${DEMO_CLIENT_KEY:-managedhsm:DemoHSM:grpc-client}
mkdir -p "$WORK/bin" "$WORK/logs"
# Go 1.24 or newer on PATH, or where the project's README puts it.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH=$PATH:/usr/local/go/bin; fi

# hsmhost's socket, for hsmhost's CLI and for the demo's programs (hsmkey
# reads HSMBRIDGE_SOCKET like every hsmbridge client).
if [ -n "${DEMO_SOCKET:-}" ]; then
	export HSMBRIDGE_SOCKET=$DEMO_SOCKET
else
	export HSMBRIDGE_SOCKET=$WORK/run/hsmhost.sock
	export HSMBRIDGE_STATE_DIR=$WORK/state
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

find_hsmhost() {
	if [ -n "${HSMHOST:-}" ]; then :
	elif [ -x "$root/build/bin/hsmhost" ]; then HSMHOST=$root/build/bin/hsmhost
	elif command -v hsmhost >/dev/null; then HSMHOST=$(command -v hsmhost)
	else
		HSMHOST=$WORK/bin/hsmhost
		[ -x "$HSMHOST" ] || (cd "$root" && go build -o "$HSMHOST" ./cmd/hsmhost)
	fi
}
find_hsmhost

hsmhost() { "$HSMHOST" "$@"; }

# The demo program; go build does nothing when it is up to date.
demo_bin() {
	(cd "$here" && go build -o "$WORK/bin/grpc-direct" .)
	echo "$WORK/bin/grpc-direct"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Starts the demo's own hsmhost unless it runs (yours, with DEMO_SOCKET,
# is yours to start).
ensure_host() {
	if [ -n "${DEMO_SOCKET:-}" ]; then
		echo "using your hsmhost at $HSMBRIDGE_SOCKET"
		return
	fi
	if hsmhost key list >/dev/null 2>&1; then
		return
	fi
	show "hsmhost serve &   # HSMBRIDGE_SOCKET=$HSMBRIDGE_SOCKET HSMBRIDGE_STATE_DIR=$HSMBRIDGE_STATE_DIR"
	nohup "$HSMHOST" serve >"$WORK/logs/hsmhost.log" 2>&1 &
	echo $! >"$WORK/hsmhost.pid"
	for _ in $(seq 150); do
		hsmhost key list >/dev/null 2>&1 && { echo "hsmhost pid $(cat "$WORK/hsmhost.pid") listening on $HSMBRIDGE_SOCKET"; return; }
		alive "$WORK/hsmhost.pid" || break
		sleep 0.1
	done
	echo "hsmhost did not start; its log ($WORK/logs/hsmhost.log):" >&2
	cat "$WORK/logs/hsmhost.log" >&2
	exit 1
}

# Creates a key unless it exists.
ensure_key() {
	local ref=$1; shift
	if hsmhost key show "$ref" >/dev/null 2>&1; then
		echo "$ref exists"
	else
		show hsmhost key create "$ref" "$@"
		hsmhost key create "$ref" "$@"
	fi
}
