#!/usr/bin/env bash
# make bench-mhsm: P-256 signing throughput through the whole path
# (C provider -> hsmhost -> hsmbridge-mhsm plugin -> azkeys -> stand-in) with
# 0 ms and 20 ms of latency injected by the stand-in, at 1, 16 and 64
# concurrent signers, beside the same ES256 calls made directly with azkeys
# from a Go program (bench/azkeysbench) against the same stand-in in the
# same run. Figures are medians of per-request latency and throughput over
# BENCH_SECONDS (default 3) per row; compare within one run.
#
# Targets (issue 4): at 20 ms, 64 signers reach >= 80% of 64/0.020 s, and
# the bridge adds < 1 ms p50 over the direct azkeys call. A miss is
# reported; BENCH_STRICT=1 makes it fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${BENCH_SECONDS:-3}
threads=${BENCH_THREADS:-1,16,64}
work=$(mktemp -d)
chmod 755 "$work"
unset AZURE_CLI_ACCESS_TOKEN
export HSMBRIDGE_SOCKET=$work/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
export OPENSSL_MODULES=$root/build/ossl-modules
cleanup() {
	[ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
	[ -n "${standin_pid:-}" ] && kill "$standin_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$root/build/bin/azkeysbench" ./bench/azkeysbench

token=bench-$(openssl rand -hex 16)
"$root/build/bin/mhsm-standin" -addr 127.0.0.1:0 -token "$token" -ca-out "$work/ca.pem" \
	-url-out "$work/url" >"$work/standin.log" 2>&1 &
standin_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(cat "$work/url")
addr=${url#https://}
sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@STANDIN_ADDR@|$addr|" -e "s|@STANDIN_CA@|$work/ca.pem|" \
	"$root/examples/config/mhsm-standin.hcl" >"$work/hsmhost.hcl"
# Warn-level logging: the host writes nothing per request.
AZURE_CLI_ACCESS_TOKEN=$token "$root/build/bin/hsmhost" serve --config "$work/hsmhost.hcl" --log-level warn \
	>"$work/hsmhost.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && break; sleep 0.1; done
[ -S "$HSMBRIDGE_SOCKET" ] || { cat "$work/hsmhost.log"; exit 1; }
"$root/build/bin/hsmhost" key create managedhsm:MyHSM:bench-p256 --kty EC --curve P-256 --ops sign >/dev/null

inject() {
	curl -sS --fail --cacert "$work/ca.pem" -X PUT "$url/_standin/inject" -d "{\"latency_ms\":$1}" >/dev/null
}

echo "Managed HSM bench: ES256 over a SHA-256 digest, $secs s per row, $(nproc) CPUs,"
echo "stand-in at $url; every row's first signature is verified independently."
for lat in 0 20; do
	inject "$lat"
	echo
	echo "== $lat ms injected latency: whole path (build/bin/signbench, hsmbridge rows)"
	"$root/build/bin/signbench" -m "$root/build/ossl-modules" -a P-256 -e managedhsm:MyHSM:bench-p256 \
		-s "$secs" -t "$threads" | tee "$work/path-$lat.txt" | grep -v -e '^one-shot' -e '^$'
	echo "== $lat ms injected latency: azkeys directly (build/bin/azkeysbench)"
	AZURE_CLI_ACCESS_TOKEN=$token "$root/build/bin/azkeysbench" -connect-to "$addr" -ca "$work/ca.pem" \
		-key bench-p256 -s "$secs" -t "$threads" | tee "$work/direct-$lat.txt"
done
inject 0
stats=$(curl -sS --cacert "$work/ca.pem" "$url/_standin/stats")

echo
echo "== Summary (p50 = median latency per request; ratio = whole path / direct)"
verdict=0
for lat in 0 20; do
	awk -v lat="$lat" '
		FNR == NR && $1 == "azkeys-direct" { dops[$3] = $4; dp50[$3] = $5; next }
		FNR != NR && $1 == "hsmbridge" { order[++n] = $3; pops[$3] = $4; pp50[$3] = $5; br[$3] = $8 }
		END {
			if (lat == 0)
				printf "%-8s %7s %12s %9s %12s %9s %8s %12s %12s\n", "latency", "signers", "path ops/s", "p50 ms",
					"direct ops/s", "p50 ms", "ops ratio", "added p50 ms", "host bridge"
			for (i = 1; i <= n; i++) {
				t = order[i]
				printf "%-8s %7d %12.0f %9.2f %12.0f %9.2f %8.2f %12.2f %10.2f ms\n", lat " ms", t, pops[t], pp50[t] / 1000,
					dops[t], dp50[t] / 1000, (dops[t] > 0 ? pops[t] / dops[t] : 0), (pp50[t] - dp50[t]) / 1000, br[t] / 1000
			}
		}' "$work/direct-$lat.txt" "$work/path-$lat.txt"
done
echo "added p50: whole-path p50 minus direct azkeys p50 at the same concurrency;"
echo "host bridge: signbench's own split (round trip minus time inside the plugin)."
echo "stand-in: $stats"

echo
ops64=$(awk '$1 == "hsmbridge" && $3 == 64 { print $4 }' "$work/path-20.txt")
if [ -n "$ops64" ]; then
	awk -v ops="$ops64" 'BEGIN {
		ideal = 64 / 0.020; pct = 100 * ops / ideal
		printf "target 1: 64 signers at 20 ms: %.0f ops/s = %.0f%% of 64/0.020 s = %.0f (want >= 80%%): %s\n",
			ops, pct, ideal, (pct >= 80 ? "met" : "MISSED")
		exit (pct >= 80 ? 0 : 1) }' || verdict=1
fi
worst=$(awk 'FNR == NR && $1 == "azkeys-direct" { d[$3] = $5; next }
	FNR != NR && $1 == "hsmbridge" { a = ($5 - d[$3]) / 1000; if (a > w) w = a } END { printf "%.2f", w }' \
	"$work/direct-20.txt" "$work/path-20.txt")
if awk -v w="$worst" 'BEGIN { exit w < 1 ? 0 : 1 }'; then
	echo "target 2: the bridge adds at most $worst ms p50 over direct azkeys at 20 ms (want < 1 ms): met"
else
	for t in $(awk '$1 == "hsmbridge" { print $3 }' "$work/path-20.txt"); do
		a=$(awk -v t="$t" 'FNR == NR && $1 == "azkeys-direct" && $3 == t { d = $5; next }
			FNR != NR && $1 == "hsmbridge" && $3 == t { printf "%.2f", ($5 - d) / 1000 }' "$work/direct-20.txt" "$work/path-20.txt")
		echo "target 2: $t signers at 20 ms: the bridge adds $a ms p50 over direct azkeys (want < 1 ms)"
	done
	echo "target 2: MISSED at some concurrency (worst $worst ms)"
	verdict=1
fi
if [ "$verdict" -ne 0 ] && [ -n "${BENCH_STRICT:-}" ]; then
	exit 1
fi
