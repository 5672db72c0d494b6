#!/usr/bin/env bash
# Tests both servers: HTTPS over TLS 1.3 and 1.2 (curl trusting only the
# server's own certificate), the health check, the TLS details openssl
# s_client sees, and that each handshake's signature was made by the backend:
# hsmhost logs one "key operation" line per private-key operation, naming
# the key. Exits 1 if anything fails.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"
[ -f "$EX_DIR/.env" ] || die "no .env: run ./setup-env.sh first"
hb_alive "$RUN/nginx.pid" || die "nginx is not running: ./start-server.sh first"
certs=$RUN/certs
name=${SERVER_NAME:-localhost}

echo "========================================"
echo "  Testing Nginx Keyless TLS with HSM"
echo "  backend: $HSM_LABEL"
echo "========================================"

test_server() { # PORT TYPE KEY-NAME KIND
	local port=$1 type=$2 key=$3 kind=$4 body health want info ops n
	local ref=managedhsm:$HSM_NAME:$key
	local curl_args=(-sS --max-time 20 --cacert "$certs/server-$kind.crt" --resolve "$name:$port:127.0.0.1")
	echo
	echo "========================================"
	echo "  $type server (port $port), key $ref"
	echo "========================================"
	local since
	since=$(hb_log_lines)

	echo
	echo "--- HTTPS request (TLS 1.3) ---"
	echo "\$ curl --cacert server-$kind.crt https://$name:$port/"
	if body=$(curl "${curl_args[@]}" --tlsv1.3 "https://$name:$port/" 2>&1) && [[ $body == *"SSL Protocol: TLSv1.3"* ]]; then
		printf '%s\n' "$body"
		ok "HTTPS connection successful"
	else
		printf '%s\n' "$body"
		fail "HTTPS over TLS 1.3 failed"
	fi

	echo
	echo "--- HTTPS request (TLS 1.2) ---"
	if body=$(curl "${curl_args[@]}" --tlsv1.2 --tls-max 1.2 "https://$name:$port/" 2>&1) && [[ $body == *"SSL Protocol: TLSv1.2"* ]]; then
		printf '%s\n' "$body" | grep -E '^SSL (Protocol|Cipher):'
		ok "HTTPS connection successful"
	else
		printf '%s\n' "$body"
		fail "HTTPS over TLS 1.2 failed"
	fi

	echo
	echo "--- Health check ---"
	want="{\"status\": \"healthy\", \"ssl\": true, \"hsm\": \"$HSM_LABEL\"}"
	health=$(curl "${curl_args[@]}" "https://$name:$port/health" 2>&1 || true)
	echo "$health"
	if [ "$health" = "$want" ]; then ok "Health check passed"; else fail "health check: expected $want"; fi

	echo
	echo "--- TLS connection details (openssl s_client) ---"
	info=$(openssl s_client -connect "127.0.0.1:$port" -servername "$name" -verify_hostname "$name" \
		-CAfile "$certs/server-$kind.crt" </dev/null 2>&1 || true)
	printf '%s\n' "$info" | grep -E '^(subject|issuer)=' || true
	printf '%s\n' "$info" | grep -E '^New, |^ *Protocol *:|^ *Cipher *:|Verification:|Peer signature type' | sed 's/^ */    /' || true
	if printf '%s\n' "$info" | grep -q '^Verification: OK'; then
		ok "certificate verified (trusting server-$kind.crt alone; name $name)"
	else
		fail "openssl s_client did not verify the server"
	fi
	if openssl x509 -in "$certs/server-$kind.crt" -noout -text | grep -q "Public Key Algorithm: $([ "$type" = RSA ] && echo rsaEncryption || echo id-ecPublicKey)"; then
		ok "Certificate key type matches expected ($type)"
	else
		fail "the certificate's key is not $type"
	fi

	echo
	echo "--- HSM signing operations (from hsmhost's log) ---"
	# 3 full handshakes above (curl TLS 1.3 and 1.2, s_client) + the health
	# check's: each signed once, in the backend.
	ops=$(hb_key_ops "$ref" "$since")
	n=$(printf '%s' "$ops" | grep -c . || true)
	if [ "$n" -gt 0 ]; then
		printf '%s\n' "$ops" | sed 's/^/    /'
		ok "$n private-key operations with $ref, all in $HSM_LABEL"
	else
		fail "hsmhost logged no \"key operation\" line for $ref in $HB_LOG"
	fi
}

test_server "$NGINX_PORT" RSA "$RSA_KEY_NAME" rsa
test_server "$NGINX_PORT_EC" EC "$EC_KEY_NAME" ec

echo
echo "--- Where the private keys are ---"
for kind in rsa ec; do
	echo "\$ openssl pkey -in server-$kind.key -text -noout   # with .run/openssl.cnf"
	hb_openssl pkey -in "$certs/server-$kind.key" -text -noout | sed -n '1,3p' | sed 's/^/    /'
	hb_openssl pkey -in "$certs/server-$kind.key" -text -noout | grep -q 'held by backend' ||
		fail "server-$kind.key does not name a key held by the backend"
	# OpenSSL without the provider finds no key in it: it holds no key material.
	if env -u OPENSSL_CONF openssl pkey -in "$certs/server-$kind.key" -noout 2>/dev/null; then
		fail "OpenSSL's default provider loads a private key from server-$kind.key"
	fi
done
master=$(cat "$RUN/nginx.pid")
for pid in $master $(ps -o pid= --ppid "$master"); do
	if tr '\0' '\n' </proc/"$pid"/environ | grep -q '^AZURE_'; then fail "nginx process $pid holds an AZURE_ variable"; fi
done
ok "nginx's key files hold only key names (OpenSSL without the provider finds no key in them); no nginx process holds an Azure credential"

echo
echo "========================================"
if [ "$failed" -eq 0 ]; then
	echo "  All Tests Passed"
else
	echo "  Some Tests FAILED (logs: $RUN/logs)"
fi
echo "========================================"
echo
echo "Summary:"
echo "  - RSA server (port $NGINX_PORT): key managedhsm:$HSM_NAME:$RSA_KEY_NAME in $HSM_LABEL"
echo "  - EC server (port $NGINX_PORT_EC):  key managedhsm:$HSM_NAME:$EC_KEY_NAME in $HSM_LABEL"
echo
echo "Both servers use keyless TLS: the private keys never leave the backend."
exit "$failed"
