#!/usr/bin/env bash
# make bench: signing through the whole path (C provider -> hsmhost ->
# simulator plugin) beside OpenSSL's default provider with a key file, in one
# run on this machine. Figures are medians; compare ratios, not absolutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
export HSMBRIDGE_SOCKET=$work/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
trap 'kill $host_pid 2>/dev/null || true; rm -rf "$work"' EXIT

# Warn-level logging: the host writes nothing per request.
"$root/build/bin/hsmhost" serve --log-level warn >"$work/hsmhost.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && break; sleep 0.1; done
"$root/build/bin/hsmhost" key create managedhsm:MyHSM:bench-rsa2048 --kty RSA --size 2048 --ops sign >/dev/null
"$root/build/bin/hsmhost" key create managedhsm:MyHSM:bench-p256 --kty EC --curve P-256 --ops sign >/dev/null

echo "== this machine's floor for one process hop (the bridge makes two)"
(cd "$root" && go run ./bench/pingpong)
echo
echo "== whole path vs default provider (build/bin/signbench)"
"$root/build/bin/signbench" -m "$root/build/ossl-modules" -s "${BENCH_SECONDS:-2}" -t 1,4

echo
echo "== the simulator's own signing, in process (go test -bench)"
(cd "$root" && go test -run '^$' -bench 'BenchmarkSign' -benchtime 2000x ./plugins/simulator | grep -E '^Benchmark')
