#!/usr/bin/env bash
# Starts the gRPC server in the background: mutual TLS with its key in the
# backend; it accepts clients whose certificate the demo CA signed.
. "$(dirname "$0")/lib.sh"
[ -f "$WORK/server.crt" ] || { echo "no $WORK/server.crt: run ./generate-certs.sh first" >&2; exit 1; }
ensure_host
if alive "$WORK/server.pid"; then
	echo "the server runs already (pid $(cat "$WORK/server.pid")); ./stop-demo.sh stops it"
	exit 0
fi
bin=$(demo_bin)
step "gRPC server on $ADDR"
show grpc-direct server -addr "$ADDR" -key "$SERVER_KEY" -cert "$WORK/server.crt" -ca "$WORK/ca.crt" '&'
nohup "$bin" server -addr "$ADDR" -key "$SERVER_KEY" -cert "$WORK/server.crt" -ca "$WORK/ca.crt" >"$WORK/logs/server.log" 2>&1 &
echo $! >"$WORK/server.pid"
for _ in $(seq 100); do
	if grep -q '^listening on' "$WORK/logs/server.log"; then
		sed 's/^/   /' "$WORK/logs/server.log"
		echo "server pid $(cat "$WORK/server.pid"), log $WORK/logs/server.log"
		exit 0
	fi
	alive "$WORK/server.pid" || break
	sleep 0.1
done
echo "the server did not start; its log:" >&2
cat "$WORK/logs/server.log" >&2
rm -f "$WORK/server.pid"
exit 1
