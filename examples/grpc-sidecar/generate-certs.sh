#!/usr/bin/env bash
# Creates three keys in the backend if they are missing (hsmhost key create):
# the CA's, the server's and the client's. The CA certificate is self-signed
# by the CA key; the server and client certificates are signed by the CA key
# through the provider (openssl x509 -req -CAkey managedhsm:…). No private
# key is ever written anywhere: the server and client get key-reference
# files. Output in .run/certs/.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$EX_DIR/common.sh"

echo "=== Generating the CA, server and client certificates with keys in $HSM_LABEL ==="
hb_ensure_host
hb_ensure_key "${CA_REF##*:}" --kty RSA --size 3072 --ops sign
hb_ensure_key "${SERVER_REF##*:}" --kty RSA --size 3072 --ops sign
hb_ensure_key "${CLIENT_REF##*:}" --kty EC --curve P-256 --ops sign

mkdir -p "$CERTS"
rm -f "$CERTS/backend"
cd "$CERTS"

echo
echo "--- CA: self-signed by $CA_REF ---"
hb_openssl req -new -x509 -key "$CA_REF" -subj "$SUBJ_BASE/CN=hsmbridge demo CA" -days 365 \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out ca.crt
openssl x509 -in ca.crt -noout -subject

cat >server.ext <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
EXT
cat >client.ext <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EXT
for who in server client; do
	if [ $who = server ]; then ref=$SERVER_REF cn=localhost; else ref=$CLIENT_REF cn=grpc-client; fi
	echo
	echo "--- $who: key $ref, certificate signed by $CA_REF ---"
	echo "\$ openssl req -new -key $ref -subj \"$SUBJ_BASE/CN=$cn\" -out $who.csr"
	hb_openssl req -new -key "$ref" -subj "$SUBJ_BASE/CN=$cn" -out $who.csr
	echo "\$ openssl x509 -req -in $who.csr -CA ca.crt -CAkey $CA_REF -extfile $who.ext -days 365 -out $who.crt"
	hb_openssl x509 -req -in $who.csr -CA ca.crt -CAkey "$CA_REF" -set_serial "0x$(openssl rand -hex 16)" \
		-extfile $who.ext -days 365 -out $who.crt 2>&1
	openssl x509 -in $who.crt -noout -subject -issuer
	hb_hsmhost key ref "$ref" >$who.key
done

echo
echo "\$ openssl verify -CAfile ca.crt server.crt client.crt   # default provider, public keys only"
openssl verify -CAfile ca.crt server.crt client.crt
echo "$BACKEND $CA_REF $SERVER_REF $CLIENT_REF" >backend
ok "certificates in $CERTS; server.key and client.key are key-reference files, the CA's key has none"
echo
echo "Next: ./start-demo.sh"
