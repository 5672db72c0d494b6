#!/usr/bin/env bash
# Starts the four parts (and hsmhost, if it is not running):
#
#   greeter-client ─UDS─► client sidecar ══mTLS (TCP)══► server sidecar ─UDS─► greeter-server
#     (plaintext h2c)      nginx, client key               nginx, server key     (plaintext h2c)
#                          in the backend                  in the backend
#
# The server sidecar asks for a client certificate (ssl_verify_client on)
# and accepts only those the CA signed; the client sidecar accepts only a
# server certificate the CA signed for localhost.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$EX_DIR/common.sh"
[ -x "$NGINX" ] || die "nginx is not installed (Debian: apt-get install nginx-light)"
[ -s "$CERTS/backend" ] || die "no certificates: run ./generate-certs.sh first"
[ "$(cat "$CERTS/backend")" = "$BACKEND $CA_REF $SERVER_REF $CLIENT_REF" ] ||
	die "the certificates were made for '$(cat "$CERTS/backend")', not '$BACKEND $CA_REF $SERVER_REF $CLIENT_REF': run ./generate-certs.sh again"
for f in nginx-server nginx-client greeter-server; do
	hb_alive "$RUN/$f.pid" && die "$f already runs (pid $(cat "$RUN/$f.pid")): ./stop-demo.sh first"
done

echo "=== Starting the gRPC mTLS sidecar demo (keys in $HSM_LABEL) ==="
hb_ensure_host
hb_check_worker_reach
group=$(hb_worker_group)

# The Go programs, built from this checkout.
GO=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$GO" ] || die "Go is not installed (needed to build greeter-server and greeter-client)"
mkdir -p "$RUN/bin"
(cd "$HB_ROOT" && "$GO" build -o "$RUN/bin/" ./examples/grpc-sidecar/cmd/greeter-server ./examples/grpc-sidecar/cmd/greeter-client)
ok "built greeter-server and greeter-client in $RUN/bin"

GRPC_PORT=$(hb_free_port "${GRPC_PORT:-50051}")
echo "$GRPC_PORT" >"$RUN/grpc-port"

# The server's socket: its folder and the socket itself are open to the
# sidecar workers' group only; the client sidecar's socket folder to us only.
install -d -m 0700 "$RUN/client-sock"
if [ -n "$group" ]; then
	install -d -m 0750 -g "$group" "$RUN/server-sock"
else
	install -d -m 0700 "$RUN/server-sock"
fi

echo
echo "--- greeter-server on unix:$SERVER_SOCK ---"
setsid "$RUN/bin/greeter-server" -socket "$SERVER_SOCK" ${group:+-group "$group"} \
	>>"$RUN/logs/greeter-server.log" 2>&1 </dev/null &
echo $! >"$RUN/greeter-server.pid"
for _ in $(seq 100); do [ -S "$SERVER_SOCK" ] && break; hb_alive "$RUN/greeter-server.pid" || break; sleep 0.1; done
[ -S "$SERVER_SOCK" ] || { cat "$RUN/logs/greeter-server.log" >&2; die "greeter-server did not start"; }
ok "greeter-server pid $(cat "$RUN/greeter-server.pid"), socket $(stat -c '%A %U:%G' "$SERVER_SOCK")"

echo
echo "--- server sidecar: mTLS on 127.0.0.1:$GRPC_PORT → unix:$SERVER_SOCK ---"
mkdir -p "$RUN/tmp/server"
{
	sidecar_head server
	cat <<CONF
http {
$(sidecar_http_common server)
    server {
        listen 127.0.0.1:$GRPC_PORT ssl http2;
        server_name localhost;

        # The server certificate (public) and its key: a key-reference file
        # naming $SERVER_REF.
        ssl_certificate     $CERTS/server.crt;
        ssl_certificate_key $CERTS/server.key;
        ssl_protocols       TLSv1.2 TLSv1.3;

        # Mutual TLS: a client certificate is required and must chain to
        # the CA (whose key is in the backend too). One that does not gets
        # 400 before anything reaches the application.
        ssl_verify_client      on;
        ssl_client_certificate $CERTS/ca.crt;
        ssl_verify_depth       1;

        location / {
            grpc_pass unix:$SERVER_SOCK;
            # What was verified, for the application (these replace any
            # header of the same name the client sent).
            grpc_set_header x-client-cert-subject \$ssl_client_s_dn;
            grpc_set_header x-client-cert-issuer  \$ssl_client_i_dn;
            grpc_set_header x-client-cert-verify  \$ssl_client_verify;
            grpc_set_header x-tls-protocol        \$ssl_protocol;
        }
    }
}
CONF
} >"$RUN/nginx-server.conf"
start_sidecar server
hb_wait_port "$GRPC_PORT" "$RUN/nginx-server.pid" || die "the server sidecar does not listen on $GRPC_PORT"
ok "server sidecar pid $(cat "$RUN/nginx-server.pid"), workers as $(ps -o user= --ppid "$(cat "$RUN/nginx-server.pid")" | sort -u | xargs)"

echo
echo "--- client sidecar: unix:$CLIENT_SOCK → mTLS to 127.0.0.1:$GRPC_PORT ---"
client_sidecar_conf client "$CLIENT_SOCK" "$CERTS/client.crt" "$CERTS/client.key" >"$RUN/nginx-client.conf"
start_sidecar client
for _ in $(seq 50); do [ -S "$CLIENT_SOCK" ] && break; sleep 0.1; done
[ -S "$CLIENT_SOCK" ] || die "the client sidecar did not make $CLIENT_SOCK"
ok "client sidecar pid $(cat "$RUN/nginx-client.pid"), workers as $(ps -o user= --ppid "$(cat "$RUN/nginx-client.pid")" | sort -u | xargs)"

echo
echo "Next: ./run-client.sh"
