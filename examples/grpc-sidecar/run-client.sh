#!/usr/bin/env bash
# Runs greeter-client through the client sidecar: a unary and a streaming
# call. Prints the client certificate the server's sidecar verified (the
# server returns it with each reply), the server certificate the client's
# sidecar verifies (the same check with openssl s_client), and the
# signatures hsmhost made for these handshakes. Exits 1 if anything fails.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$EX_DIR/common.sh"
if ! hb_alive "$RUN/nginx-client.pid" || ! hb_alive "$RUN/nginx-server.pid" || ! hb_alive "$RUN/greeter-server.pid"; then
	die "the demo is not running: ./start-demo.sh first"
fi
GRPC_PORT=$(cat "$RUN/grpc-port")
since=$(hb_log_lines)

echo "=== gRPC client → client sidecar (unix:$CLIENT_SOCK) ══mTLS══► server sidecar (127.0.0.1:$GRPC_PORT) → greeter-server ==="
echo
echo "\$ greeter-client -socket $CLIENT_SOCK -name hsmbridge -count 3"
if out=$("$RUN/bin/greeter-client" -socket "$CLIENT_SOCK" -name hsmbridge -count 3 2>&1); then
	printf '%s\n' "$out"
	want=$(openssl x509 -in "$CERTS/client.crt" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
	if [ "$(printf '%s\n' "$out" | grep -c "^  subject: $want\$")" -eq 2 ]; then
		ok "unary and streaming calls answered; the server's sidecar verified the client certificate (CN=grpc-client, signed by our CA)"
	else
		fail "the server did not report the client certificate $want"
	fi
else
	printf '%s\n' "$out"
	fail "greeter-client failed (logs: $RUN/logs)"
fi

echo
echo "--- The server certificate the client's sidecar verifies ---"
echo "(grpc_ssl_verify on, grpc_ssl_name localhost, trusting ca.crt alone; the same handshake with"
echo " openssl s_client, the client certificate and its key reference $CLIENT_REF)"
info=$(hb_openssl s_client -connect "127.0.0.1:$GRPC_PORT" -servername localhost -verify_hostname localhost \
	-CAfile "$CERTS/ca.crt" -cert "$CERTS/client.crt" -key "$CERTS/client.key" -alpn h2 </dev/null 2>&1 | tr -d '\0' || true)
printf '%s\n' "$info" | grep -E '^(subject|issuer)=' || true
printf '%s\n' "$info" | grep -E '^New, |Verification:|Peer signature type' | sed 's/^ */    /' || true
if printf '%s\n' "$info" | grep -q '^Verification: OK'; then
	ok "server certificate verified: CN=localhost, signed by our CA"
else
	fail "the server certificate did not verify"
fi

echo
echo "--- Signatures made by the backend for these handshakes (hsmhost's log) ---"
for ref in "$SERVER_REF" "$CLIENT_REF"; do
	ops=$(hb_key_ops "$ref" "$since")
	n=$(printf '%s' "$ops" | grep -c . || true)
	if [ "$n" -gt 0 ]; then
		printf '%s\n' "$ops" | sed 's/^/    /'
		ok "$n private-key operations with $ref"
	else
		fail "hsmhost logged no \"key operation\" line for $ref in $HB_LOG"
	fi
done

echo
echo "--- What greeter-server logged ---"
tail -n 2 "$RUN/logs/greeter-server.log" | sed 's/^/    /'
echo
if [ "$failed" -eq 0 ]; then ok "gRPC over mTLS with every key in $HSM_LABEL"; else fail "some checks failed"; fi
exit "$failed"
