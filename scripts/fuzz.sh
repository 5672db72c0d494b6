#!/usr/bin/env bash
# make fuzz: runs each Go fuzz target with the fuzzing engine, one after the
# other, for $FUZZTIME each (default 10s; a count such as 5000x works too),
# prints how each ended and fails if any found a failing input.
#
# Without -fuzz, `go test ./...` already runs every target over its checked-in
# seed corpus (testdata/fuzz/<FuzzName>/), so the properties hold in CI; this
# script is for looking further. A failing input is written by Go to
# <package>/testdata/fuzz/<FuzzName>/<hash>: check it in once the bug is
# fixed, and it stays a regression test.
#
# FUZZTIME    time (or count) per target, default 10s
# FUZZ_LIMIT  hard limit on one target's run, default 10m
# FUZZ_ONLY   run only targets whose name matches this extended regexp
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
fuzztime=${FUZZTIME:-10s}
limit=${FUZZ_LIMIT:-10m}

# package            target
targets=(
	"./core                  FuzzParseKeyRef"
	"./core                  FuzzPKCS11URI"
	"./core                  FuzzDecodeRefPEM"
	"./core                  FuzzRefPEMRoundTrip"
	"./core                  FuzzOpenMasked"
	"./core                  FuzzSealOpenMasked"
	"./internal/hostframe    FuzzReadFrame"
	"./internal/config       FuzzParse"
	"./internal/secp256k1    FuzzParse"
)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	if [ -n "${FUZZ_ONLY:-}" ] && ! [[ $name =~ $FUZZ_ONLY ]]; then
		continue
	fi
	echo "== $pkg $name ($fuzztime)"
	status=ok
	corpus="$pkg/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	# -timeout bounds the whole run should the engine hang.
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -timeout "$limit" "$pkg" >"$log" 2>&1; then
		status=FAILED
		# Go's coordinator can fail a time-bounded run as it ends with a bare
		# "context deadline exceeded" and no input (golang/go#75804, fixed in
		# Go 1.27). Only that case, with no new file under the corpus, is run
		# again, counted in executions so that no deadline applies: as many
		# as the first run made.
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		reached=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
		if [ "$before" = "$after" ] && [ -n "$reached" ] && [ "$reached" -gt 0 ] \
			&& grep -qx '    context deadline exceeded' "$log" && ! grep -q -- '--- FAIL: .*/' "$log"; then
			echo "   the fuzzing engine's deadline race (golang/go#75804), no input written; again for ${reached}x"
			if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${reached}x" -timeout "$limit" "$pkg" >"$log" 2>&1; then
				status="ok (run again)"
			fi
		fi
	fi
	if [ "$status" = FAILED ]; then
		failed+=("$name")
		cat "$log"
	else
		# The engine's last progress line: elapsed, execs, new interesting.
		grep -E '^fuzz: elapsed' "$log" | tail -n 1 || true
	fi
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo "?")
	summary+=("$(printf '%-22s %-22s %-15s %s execs' "$pkg" "$name" "$status" "$execs")")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzzing found failures in: ${failed[*]} (inputs under testdata/fuzz/<name>/)" >&2
	exit 1
fi
