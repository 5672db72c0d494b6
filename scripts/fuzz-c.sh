#!/usr/bin/env bash
# make fuzz-c: builds the C fuzz harnesses of the OpenSSL provider
# (adapters/openssl/fuzz/: the key-reference decoder and the frame reader)
# into build/fuzz/ and runs each with libFuzzer for $FUZZTIME seconds,
# printing executions per second and coverage, and fails if any found a
# crash, a sanitizer report or a broken property, naming the input.
#
# The checked-in corpus (adapters/openssl/fuzz/corpus/<harness>/) is copied
# to a temporary folder first, so a run never writes into the repository;
# crash inputs go to build/fuzz/artifacts/<harness>/. Replay one with
#   build/fuzz/fuzz_<harness> <file>
# and check it into the corpus once the bug is fixed.
#
# Needs clang with libFuzzer (Debian 12: apt-get install clang, which pulls
# in libclang-rt-14-dev). Without it the harnesses are built with $CC and
# ASan/UBSan around a plain driver that replays the corpus (no search).
#
# FUZZTIME    seconds per harness, default 10 (a trailing "s" is allowed)
# FUZZ_ONLY   run only harnesses whose name matches this extended regexp
# CLANG, CC   compilers for libFuzzer and for the fallback (clang, cc)
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10}
fuzztime=${fuzztime%s}
harnesses=(decoder frame)
src=adapters/openssl
out=build/fuzz
clang=${CLANG:-clang}
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cflags="-O1 -g -Wall -Wextra -pthread -I$src/provider -I$src/gen -I$src/fuzz"
libs="-lcrypto -lprotobuf-c -pthread"

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' >"$probe/p.c"
if command -v "$clang" >/dev/null 2>&1 \
	&& "$clang" -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" 2>/dev/null; then
	mode=libfuzzer
	cc=$clang
	objflags="$san -fsanitize=fuzzer-no-link"
	linkflags="$san -fsanitize=fuzzer"
else
	mode=replay
	cc=${CC:-cc}
	objflags=$san
	linkflags=$san
	echo "fuzz-c: $clang with -fsanitize=fuzzer is not available; replaying the corpus under ASan/UBSan with $cc instead" >&2
fi

# ---- build: the provider's objects (instrumented), then each harness ----
mkdir -p "$out/obj.$mode"
newest_hdr=$(ls -t "$src"/provider/*.h "$src"/gen/*.h "$src"/fuzz/*.h | head -n 1)
stale=()
for c in "$src"/provider/*.c "$src"/gen/host.pb-c.c "$src"/fuzz/hbfuzz.c; do
	o="$out/obj.$mode/$(basename "${c%.c}").o"
	if [ ! -e "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_hdr" -nt "$o" ]; then
		stale+=("$c")
	fi
done
if [ ${#stale[@]} -gt 0 ]; then
	echo "== compiling ${#stale[@]} objects ($mode)"
	printf '%s\n' "${stale[@]}" | xargs -P "$(nproc)" -I{} sh -c \
		'c={}; exec '"$cc $cflags $objflags"' -fPIC -c "$c" -o "'"$out/obj.$mode"'/$(basename "${c%.c}").o"'
fi
# Every object but decoder.o: fuzz_decoder compiles decoder.c into itself.
rm -f "$out/obj.$mode/libhb.a"
ar rcs "$out/obj.$mode/libhb.a" $(ls "$out/obj.$mode"/*.o | grep -v '/decoder\.o$')
driver=""
[ "$mode" = replay ] && driver="$src/fuzz/replay.c"
# shellcheck disable=SC2086
"$cc" $cflags $linkflags -o "$out/fuzz_decoder" "$src/fuzz/fuzz_decoder.c" $driver \
	"$out/obj.$mode/libhb.a" $libs
# shellcheck disable=SC2086
"$cc" $cflags $linkflags -o "$out/fuzz_frame" "$src/fuzz/fuzz_frame.c" $driver \
	"$out/obj.$mode/decoder.o" "$out/obj.$mode/libhb.a" $libs

# ---- run ----
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset HSMBRIDGE_DEBUG
failed=()
summary=()
for h in "${harnesses[@]}"; do
	if [ -n "${FUZZ_ONLY:-}" ] && ! [[ $h =~ $FUZZ_ONLY ]]; then
		continue
	fi
	work=$(mktemp -d)
	log=$(mktemp)
	cp "$src/fuzz/corpus/$h"/* "$work/"
	art="$out/artifacts/$h"
	mkdir -p "$art"
	status=ok
	if [ "$mode" = libfuzzer ]; then
		echo "== fuzz_$h (${fuzztime}s, corpus copied to $work)"
		if ! "$out/fuzz_$h" -max_total_time="$fuzztime" -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$art/" "$work" >"$log" 2>&1; then
			status=FAILED
		fi
		inited=$(grep -m1 -oE 'INITED cov: [0-9]+ ft: [0-9]+' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || echo "cov: ? ft: ?")
		last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' || echo "?")
		execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
		rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
		line=$(printf '%-8s %-7s %s execs, %s/s; start %s -> end %s' "$h" "$status" "$execs" "$rate" "$inited" "$last")
	else
		echo "== fuzz_$h (replaying $(ls "$work" | wc -l) corpus inputs)"
		if ! "$out/fuzz_$h" "$work" >"$log" 2>&1; then
			status=FAILED
		fi
		line=$(printf '%-8s %-7s %s' "$h" "$status" "$(tail -n 1 "$log")")
	fi
	if [ "$status" != ok ]; then
		failed+=("$h")
		tail -n 60 "$log"
		# libFuzzer names the input it saved; the replay driver the one it ran.
		crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/.* //' || true)
		[ -z "$crash" ] && crash=$(grep -oE '^replay [^ ]+' "$log" | tail -n 1 | sed 's/^replay //' || true)
		[ -n "$crash" ] && [ "$mode" = replay ] && cp "$crash" "$art/" && crash="$art/$(basename "$crash")"
		echo "fuzz_$h: crash input: ${crash:-(none written; see the log above)}" >&2
		line="$line; crash input: ${crash:-?}"
	fi
	summary+=("$line")
	rm -rf "$work" "$log"
done

echo
echo "== summary ($mode)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz-c: failures in: ${failed[*]}" >&2
	exit 1
fi
