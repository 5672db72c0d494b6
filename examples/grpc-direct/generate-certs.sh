#!/usr/bin/env bash
# Makes the demo's three keys in the HSM backend (hsmhost key create) and
# the certificates for them (x509.CreateCertificate with the CA key, which
# stays in the backend): .run/ca.crt, .run/server.crt, .run/client.crt.
. "$(dirname "$0")/lib.sh"

step "hsmhost"
ensure_host

step "Keys in the backend: a CA, the server's and the client's"
ensure_key "$CA_KEY" --kty EC --curve P-384 --ops sign
ensure_key "$SERVER_KEY" --kty RSA --size 3072 --ops sign
ensure_key "$CLIENT_KEY" --kty EC --curve P-256 --ops sign

step "Certificates, signed by the CA key in the backend"
bin=$(demo_bin)
show grpc-direct certs -out "$WORK" -ca "$CA_KEY" -server "$SERVER_KEY" -client "$CLIENT_KEY"
"$bin" certs -out "$WORK" -ca "$CA_KEY" -server "$SERVER_KEY" -client "$CLIENT_KEY"
