#!/usr/bin/env bash
# Shows that the server's sidecar refuses clients our CA did not sign. An
# impostor CA (its key in the backend too) with the same name as ours signs a
# client certificate with the same subject as the real client's (CN =
# grpc-client); a second client sidecar presents it. The calls through it
# must fail with nginx's 400 and never reach greeter-server; so must a
# client with no certificate at all. Exits 1 if either gets through.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$EX_DIR/common.sh"
if ! hb_alive "$RUN/nginx-server.pid" || ! hb_alive "$RUN/greeter-server.pid"; then
	die "the demo is not running: ./start-demo.sh first"
fi
GRPC_PORT=$(cat "$RUN/grpc-port")
ROGUE_CA_REF=managedhsm:$HSM_NAME:grpc-impostor-ca
ROGUE_REF=managedhsm:$HSM_NAME:grpc-impostor-client
ROGUE_SOCK=$RUN/client-sock/grpc-impostor.sock
rogue=$RUN/impostor

echo "=== A client whose certificate our CA did not sign ==="
hb_ensure_key "${ROGUE_CA_REF##*:}" --kty EC --curve P-256 --ops sign
hb_ensure_key "${ROGUE_REF##*:}" --kty EC --curve P-256 --ops sign
mkdir -p "$rogue"
hb_openssl req -new -x509 -key "$ROGUE_CA_REF" -subj "$SUBJ_BASE/CN=hsmbridge demo CA" -days 2 \
	-addext "basicConstraints=critical,CA:TRUE" -out "$rogue/ca.crt"
hb_openssl req -new -key "$ROGUE_REF" -subj "$SUBJ_BASE/CN=grpc-client" -out "$rogue/client.csr"
hb_openssl x509 -req -in "$rogue/client.csr" -CA "$rogue/ca.crt" -CAkey "$ROGUE_CA_REF" \
	-set_serial "0x$(openssl rand -hex 16)" -extfile "$CERTS/client.ext" -days 2 -out "$rogue/client.crt" 2>/dev/null
hb_hsmhost key ref "$ROGUE_REF" >"$rogue/client.key"
echo "impostor client certificate:"
openssl x509 -in "$rogue/client.crt" -noout -subject -issuer | sed 's/^/    /'
echo "\$ openssl verify -CAfile ca.crt impostor/client.crt"
openssl verify -CAfile "$CERTS/ca.crt" "$rogue/client.crt" 2>&1 | sed 's/^/    /' || true

echo
echo "--- an impostor client sidecar presenting it, unix:$ROGUE_SOCK ---"
hb_stop "impostor client sidecar" "$RUN/nginx-rogue.pid" >/dev/null
client_sidecar_conf rogue "$ROGUE_SOCK" "$rogue/client.crt" "$rogue/client.key" >"$RUN/nginx-rogue.conf"
start_sidecar rogue
for _ in $(seq 50); do [ -S "$ROGUE_SOCK" ] && break; sleep 0.1; done
served=$(grep -c 'Say' "$RUN/logs/greeter-server.log" || true)
errlines=$(wc -l <"$RUN/logs/nginx-server-error.log")

echo "\$ greeter-client -socket $ROGUE_SOCK"
if out=$("$RUN/bin/greeter-client" -socket "$ROGUE_SOCK" 2>&1); then
	printf '%s\n' "$out"
	fail "the impostor's call was answered"
else
	printf '%s\n' "$out" | sed 's/^/    /'
	if [[ $out == *"400"* ]]; then ok "refused: nginx answered 400 (Bad Request)"; else fail "refused, but not with nginx's 400"; fi
fi
echo "the server sidecar's log:"
tail -n +"$((errlines + 1))" "$RUN/logs/nginx-server-error.log" | grep -m1 'client SSL certificate verify error' | sed 's/^/    /' ||
	fail "the server sidecar logged no certificate verify error"
hb_stop "impostor client sidecar" "$RUN/nginx-rogue.pid" >/dev/null

echo
echo "--- no client certificate at all (curl, HTTP/2, trusting our CA) ---"
echo "\$ curl --http2 --cacert ca.crt https://localhost:$GRPC_PORT/"
body=$(curl -sS --max-time 10 --http2 --cacert "$CERTS/ca.crt" --resolve "localhost:$GRPC_PORT:127.0.0.1" \
	-w '\nHTTP status %{http_code}' "https://localhost:$GRPC_PORT/" 2>&1 || true)
printf '%s\n' "$body" | grep -E '<title>|HTTP status' | sed -e 's/<[^>]*>//g' -e 's/^/    /'
if [[ $body == *"No required SSL certificate was sent"* ]]; then ok "refused: no client certificate"; else fail "a client without a certificate was not refused"; fi

echo
if [ "$(grep -c 'Say' "$RUN/logs/greeter-server.log" || true)" = "$served" ]; then
	ok "greeter-server received no call from either"
else
	fail "greeter-server received a call from an untrusted client"
fi
[ "$failed" -eq 0 ] && ok "only clients whose certificates our CA signed get through"
exit "$failed"
