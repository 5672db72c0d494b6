#!/usr/bin/env bash
# bench/profile.sh: where each hop's time goes. Runs hsmhost (and its
# simulator plugin) with CPU profiling on (sdk.ProfileFromEnv), drives P-256
# signatures through the provider with build/bin/signbench, and prints the
# top of each process's profile. The profiles stay in OUT (default
# build/profile) for `go tool pprof -http=: OUT/<file>` (a flame graph in the
# browser) or `go tool pprof -svg` where graphviz is installed.
#
#   bench/profile.sh [THREADS]     (default 1; make build first)
#
# PROFILE_SECONDS  length of the load (default 6)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}
threads=${1:-1}
secs=${PROFILE_SECONDS:-6}
out=${OUT:-$root/build/profile}
work=$(mktemp -d)
trap 'kill ${host_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out"/*.pprof
export HSMBRIDGE_SOCKET=$work/hsmhost.sock HSMBRIDGE_STATE_DIR=$work/state

# The profile starts with each process and covers set-up, the load and a
# little after; set-up is a few milliseconds of it.
HSMBRIDGE_CPUPROFILE=$out HSMBRIDGE_CPUPROFILE_SECONDS=$((secs + 3)) \
	"$root/build/bin/hsmhost" serve --log-level warn >"$work/hsmhost.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && break; sleep 0.1; done
"$root/build/bin/hsmhost" key create managedhsm:MyHSM:bench-p256 --kty EC --curve P-256 --ops sign >/dev/null
"$root/build/bin/signbench" -m "$root/build/ossl-modules" -a P-256 -t "$threads" -s "$secs" | grep -E '^(hsmbridge|alg|P-256)'
sleep 3
for f in "$out"/*.pprof; do
	echo
	echo "== $(basename "$f"): the heaviest call paths (cumulative)"
	"$GO" tool pprof -top -cum -nodecount=25 "$f" 2>/dev/null | sed -n '4,$p'
done
echo
echo "profiles in $out; a flame graph: $GO tool pprof -http=: $out/<file>"
