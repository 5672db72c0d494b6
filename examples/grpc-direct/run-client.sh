#!/usr/bin/env bash
# A unary call and a streaming call from a client whose key is in the
# backend; prints the server certificate the client verified and the
# client certificate the server verified. Arguments go to the client
# (e.g. -name you -count 10).
. "$(dirname "$0")/lib.sh"
bin=$(demo_bin)
step "gRPC client"
show grpc-direct client -addr "$ADDR" -key "$CLIENT_KEY" -cert "$WORK/client.crt" -ca "$WORK/ca.crt" "$@"
"$bin" client -addr "$ADDR" -key "$CLIENT_KEY" -cert "$WORK/client.crt" -ca "$WORK/ca.crt" "$@"
