#!/usr/bin/env bash
# Stops the gRPC server and the hsmhost the demo started (not yours), then
# removes what the demo made in .run/ (or DEMO_WORK): certificates, logs,
# the demo host's socket and its keys. KEEP_RUN=1 keeps them (to read the
# logs, or to start again with the same keys). Keys the demo made in a host
# of yours (DEMO_SOCKET) stay in its backend.
. "$(dirname "$0")/lib.sh"
stop() { # name pidfile
	if alive "$2"; then
		local pid; pid=$(cat "$2")
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
		echo "stopped $1 (pid $pid)"
	fi
	rm -f "$2"
}
stop "the gRPC server" "$WORK/server.pid"
stop hsmhost "$WORK/hsmhost.pid"
if [ -z "${KEEP_RUN:-}" ]; then
	rm -rf "$WORK"/{bin,logs,run,state,other} "$WORK"/{ca,server,client}.crt
	rmdir "$WORK" 2>/dev/null || true
	echo "removed the demo's files from $WORK"
fi
