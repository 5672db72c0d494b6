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
trap 'kill $host_pid ${dev_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

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
echo "== the Integrated HSM device backend on the emulated device, P-256 (build/bin/signbench)"
# A second hsmhost with azihsm:// routed to the device plugin, which loads
# the emulated device as it would load libazihsm_api_native.so.
dev=$work/device
mkdir -p "$dev/emu"
sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@EMU_LIB@|$root/build/emulator/libazihsm_api_native.so|" \
	"$root/examples/config/azihsm-emulator.hcl" > "$dev/hsmhost.hcl"
HSMBRIDGE_SOCKET=$dev/hsmhost.sock AZIHSM_EMU_STATE_DIR=$dev/emu \
	"$root/build/bin/hsmhost" serve --config "$dev/hsmhost.hcl" --log-level warn >"$dev/hsmhost.log" 2>&1 &
dev_pid=$!
for _ in $(seq 100); do [ -S "$dev/hsmhost.sock" ] && break; sleep 0.1; done
HSMBRIDGE_SOCKET=$dev/hsmhost.sock OPENSSL_MODULES=$root/build/ossl-modules openssl genpkey \
	-propquery "?provider=azihsm" -provider default -provider azihsm_provider -algorithm EC -pkeyopt group:P-256 \
	-pkeyopt azihsm.masked_key:"$dev/p256.bin" -outform DER -out /dev/null
HSMBRIDGE_SOCKET=$dev/hsmhost.sock "$root/build/bin/signbench" -m "$root/build/ossl-modules" -p azihsm_provider \
	-e "azihsm://$dev/p256.bin;type=ec" -a P-256 -l device-emu -s "${BENCH_SECONDS:-2}" -t 1,4

echo
echo "== the simulator's own signing, in process (go test -bench)"
(cd "$root" && go test -run '^$' -bench 'BenchmarkSign' -benchtime 2000x ./plugins/simulator | grep -E '^Benchmark')
