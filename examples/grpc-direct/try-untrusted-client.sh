#!/usr/bin/env bash
# Two clients the server must refuse: one whose certificate another CA (its
# key in the backend too) signed, and one with no certificate. Succeeds
# when both are refused, and shows the reason the server logged.
. "$(dirname "$0")/lib.sh"
bin=$(demo_bin)
ensure_host
# In the CA key's namespace (managedhsm:DemoHSM: by default).
OTHER_CA=${CA_KEY%:*}:grpc-other-ca
OTHER_CLIENT=${CA_KEY%:*}:grpc-other-client

step "A client certified by another CA"
ensure_key "$OTHER_CA" --kty EC --curve P-256 --ops sign
ensure_key "$OTHER_CLIENT" --kty EC --curve P-256 --ops sign
"$bin" certs -out "$WORK/other" -ca "$OTHER_CA" -ca-name "some other CA" -client "$OTHER_CLIENT"
refused=0
# The server's latest refusal, from its log.
server_said() { echo "the server: $(grep '^refused ' "$WORK/logs/server.log" | tail -n 1)"; }
show grpc-direct client -addr "$ADDR" -key "$OTHER_CLIENT" -cert "$WORK/other/client.crt" -ca "$WORK/ca.crt"
if "$bin" client -addr "$ADDR" -key "$OTHER_CLIENT" -cert "$WORK/other/client.crt" -ca "$WORK/ca.crt"; then
	echo "ACCEPTED: the server took a certificate its CA did not sign" >&2
else
	echo "refused, as it must be"; refused=$((refused + 1))
fi
server_said

step "A client with no certificate"
show grpc-direct client -addr "$ADDR" -ca "$WORK/ca.crt"
if "$bin" client -addr "$ADDR" -ca "$WORK/ca.crt"; then
	echo "ACCEPTED: the server took a client without a certificate" >&2
else
	echo "refused, as it must be"; refused=$((refused + 1))
fi
server_said
[ "$refused" -eq 2 ]
