#!/usr/bin/env bash
# Creates the RSA and EC keys in the backend if they are missing (hsmhost key
# create), then for each a CSR and a certificate signed by that HSM key, and
# its key-reference file: the "private key" nginx is given, which holds only
# the key's name. Output in .run/certs/.
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"
[ -f "$EX_DIR/.env" ] || die "no .env: run ./setup-env.sh first"

SUBJ="/C=US/ST=Washington/L=Redmond/O=Microsoft/OU=Azure HSM Demo/CN=${SERVER_NAME:-localhost}"
certs=$RUN/certs

echo "=== Generating certificate using $HSM_LABEL ==="
hb_ensure_host
hb_ensure_key "$RSA_KEY_NAME" --kty RSA --size 3072 --ops sign
hb_ensure_key "$EC_KEY_NAME" --kty EC --curve P-256 --ops sign

mkdir -p "$certs"
rm -f "$certs/backend"
for kind in rsa ec; do
	if [ $kind = rsa ]; then name=$RSA_KEY_NAME; else name=$EC_KEY_NAME; fi
	ref=managedhsm:$HSM_NAME:$name
	echo
	echo "--- server-$kind: $ref ---"
	echo "Creating CSR with HSM key..."
	hb_openssl req -new -provider akv_provider -provider default -key "$ref" -subj "$SUBJ" \
		-addext "subjectAltName=DNS:${SERVER_NAME:-localhost},IP:127.0.0.1" -out "$certs/server-$kind.csr"
	echo "Signing certificate with HSM key..."
	hb_openssl x509 -req -provider akv_provider -provider default -in "$certs/server-$kind.csr" \
		-signkey "$ref" -days 365 -copy_extensions copy -out "$certs/server-$kind.crt" 2>&1
	openssl x509 -in "$certs/server-$kind.crt" -noout -subject
	# The signature on the certificate checks out with the key's public half,
	# which hsmhost reads from the backend:
	hb_hsmhost key pubkey "$ref" >"$certs/server-$kind.pub"
	[ "$(openssl x509 -in "$certs/server-$kind.crt" -noout -pubkey)" = "$(cat "$certs/server-$kind.pub")" ] ||
		die "the certificate's public key is not $ref's"
	openssl verify -CAfile "$certs/server-$kind.crt" "$certs/server-$kind.crt" >/dev/null ||
		die "the certificate's self-signature does not verify"
	ok "server-$kind.crt signed by $ref (self-signed; verified with the default provider)"
	hb_hsmhost key ref "$ref" >"$certs/server-$kind.key"
	ok "server-$kind.key: a key-reference file naming $ref (no key material)"
done
echo "$BACKEND $HSM_NAME $RSA_KEY_NAME $EC_KEY_NAME" >"$certs/backend"
echo
echo "Files in $certs. Next: ./start-server.sh"
