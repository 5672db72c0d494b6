#!/usr/bin/env bash
# make bench: private-key operations through the whole path (C provider ->
# hsmhost -> backend plugin) beside OpenSSL's default provider with a key
# file, in one run on this machine, and each figure against its target:
#
#   1. the process-hop floor (bench/pingpong): the baseline of figure 2
#   2. the bridge's added latency, p50 at 1 thread (signbench's "bridge p50":
#      round trip minus the backend's own time) for sign (RSA-2048, P-256),
#      RSA-OAEP decrypt and masked-key signing (the simulator's masked keys
#      and the Integrated HSM device backend on the emulated device):
#      <= 3x the hop floor
#   3. hsmhost + plugin CPU per operation under load (4 threads, a fixed
#      count), minus the simulator's own signing (go test -bench): <= 50 us
#   4. P-256 ops/s through hsmbridge / default provider: >= 0.25x at 1
#      thread, >= 0.40x at 4; 64 threads at least the 4-thread ops/s, no error
#   5. one-shot `openssl dgst -sign` with a running host minus the same with
#      a key file, medians of 20: <= +3 ms
#   6. hsmhost + plugin idle memory after the load: <= 30 MB, counted as the
#      sum of their proportional set sizes (Pss, /proc/PID/smaps_rollup): the
#      simulator is hsmhost's own binary re-run, so VmRSS would count the
#      pages of the one file they share twice (both are printed). RSS the
#      provider and one key add to a process (build/bin/provrss): <= 1 MB
#      (a MB here is 1024 of /proc's kB)
#   7. the PKCS#11 plugin on a SoftHSM2 token: RSA-2048 and P-256 signing
#      ops/s and p50 beside the default provider (no target)
#
# The machine is shared and noisy: figures are medians, baselines come from
# the same run, compare ratios, not absolutes. BENCH_SECONDS (default 2) is
# the length of a timed row.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/build/bin
modules=$root/build/ossl-modules
GO=${GO:-go}
secs=${BENCH_SECONDS:-2}
work=$(mktemp -d)
rows=$work/rows.tsv # every signbench row (signbench -R)
export HSMBRIDGE_SOCKET=$work/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
export OPENSSL_MODULES=$modules
host_pid= dev_pid=
trap 'kill $host_pid $dev_pid 2>/dev/null || true; rm -rf "$work"' EXIT

# ---- helpers ---------------------------------------------------------------

section() { printf '\n== %s\n' "$*"; }

# start_host VAR SOCKET LOG [ARG...]: hsmhost serve on SOCKET, its pid in VAR.
# Warn-level logging: the host writes nothing per request.
start_host() {
	local var=$1 sock=$2 log=$3 i
	shift 3
	HSMBRIDGE_SOCKET=$sock "$bin/hsmhost" serve --log-level warn "$@" >"$log" 2>&1 &
	printf -v "$var" %s $!
	for i in $(seq 100); do [ -S "$sock" ] && return; sleep 0.1; done
	echo "bench: hsmhost did not open $sock; its log:" >&2
	cat "$log" >&2
	exit 1
}

# tree_pids PID: PID and every process descended from it (hsmhost's plugins).
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END { for (p in parent) { q = p; while (q != root && q in parent && q > 1) q = parent[q]; if (q == root) print p } }'
}

# cpu_ticks PID: utime + stime of PID (all its threads), in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# rss_kb PID: VmRSS of PID in kB; pss_kb PID: its proportional set size.
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
pss_kb() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup"; }

# sum_cpu_ticks PID...: cpu_ticks summed over the given processes.
sum_cpu_ticks() {
	local p sum=0
	for p in "$@"; do sum=$((sum + $(cpu_ticks "$p"))); done
	echo "$sum"
}

# row OP ALG BACKEND THREADS COLUMN: one column of a signbench row, or ""
# when the row is missing or the figure was not measured. Columns: ops
# (ops/s, 0 for a failed row), p50, p99, bridge (p50 us), failed (workers
# that stopped on an error).
row() {
	awk -F'\t' -v o="$1" -v a="$2" -v b="$3" -v t="$4" -v c="$5" '
		BEGIN { col["ops"] = 5; col["p50"] = 6; col["p99"] = 7; col["bridge"] = 8; col["failed"] = 9 }
		$1 == o && $2 == a && $3 == b && $4 == t { v = $col[c]; if (c == "bridge" && v < 0) v = "" }
		END { print v }' "$rows"
}

# calc EXPR [VAR=VALUE...]: EXPR evaluated by awk with the given variables,
# printed with FMT (default %.1f).
calc() {
	local expr=$1 fmt=${FMT:-%.1f} args=() a
	shift
	for a in "$@"; do args+=(-v "$a"); done
	awk "${args[@]}" "BEGIN { printf \"$fmt\", $expr }"
}

# ratio A B: A / B to three places, or "" when either is missing or B is 0.
ratio() {
	if [ -z "$1" ] || [ -z "$2" ] || [ "$(FMT=%d calc "b == 0" b="$2")" = 1 ]; then return; fi
	FMT=%.3f calc "a / b" a="$1" b="$2"
}

# median: the median of the numbers on stdin, one a line ("" for none).
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_us FILE CMD...: runs CMD once and appends its wall time in us to
# FILE (nothing when it fails). The clock is bash's, so no process is
# started around CMD.
time_us() {
	local file=$1 t0 t1
	shift
	t0=${EPOCHREALTIME//[.,]/}
	"$@" || { echo "bench: failed: $*" >&2; return 0; }
	t1=${EPOCHREALTIME//[.,]/}
	echo $((t1 - t0)) >>"$file"
}

# target LABEL VALUE UNIT OP LIMIT [NOTE]: records a figure and its target
# (OP is <= or >=) for the table at the end. An empty VALUE means the
# figure could not be measured: the target counts as missed.
figures=() missed=() ntargets=0
target() {
	local label=$1 value=$2 unit=$3 op=$4 limit=$5 note=${6:-} verdict=MISSED shown=n/a
	ntargets=$((ntargets + 1))
	if [ -n "$value" ]; then
		shown="$value $unit"
		if awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN { exit !(op == "<=" ? v <= l : v >= l) }'; then
			verdict=met
		fi
	fi
	[ "$verdict" = met ] || missed+=("$label")
	figures+=("$(printf '%-50s %14s  %-2s %-21s %-7s %s' "$label" "$shown" "$op" "$limit $unit" "$verdict" "$note")")
}
baseline() { figures+=("$(printf '%-50s %14s  %s' "$1" "$2 $3" "(the baseline)")"); }

# signbench ARG...: build/bin/signbench on hsmbridge's module, rows also to
# rows.tsv. A failed row is reported in its table and in the targets; the
# run goes on.
signbench() {
	"$bin/signbench" -m "$modules" -R "$rows" -s "$secs" "$@" || echo "(signbench: a row failed, see above)"
}

# ---- the figures -----------------------------------------------------------

# 1. The floor for one process hop: two Go processes over a Unix socket.
fig_hop_floor() {
	section "1. this machine's floor for one process hop (the bridge makes two)"
	local out
	out=$("$GO" run ./bench/pingpong)
	echo "$out"
	hop=$(sed -n 's/.* p50 \([0-9.]*\) us.*/\1/p' <<<"$out")
	bridge_limit=$(calc "3 * h" h="$hop")
	baseline "1. process-hop floor, p50" "$hop" us
}

# 2 and 4. Signing on the simulator's named keys at 1, 4 and 64 threads.
fig_sign() {
	section "2, 4. signing, whole path vs default provider (build/bin/signbench)"
	signbench -t 1,4,64
	local alg t
	for alg in RSA-2048 P-256; do
		target "2. bridge p50, sign $alg, 1 thread" "$(row sign $alg hsmbridge 1 bridge)" us "<=" \
			"$bridge_limit" "3x hop floor"
	done
	for t in 1 4; do
		target "4. P-256 ops/s hsmbridge / default, $t thread$([ $t = 1 ] || echo s)" \
			"$(ratio "$(row sign P-256 hsmbridge $t ops)" "$(row sign P-256 default-file $t ops)")" x ">=" \
			"$([ $t = 1 ] && echo 0.25 || echo 0.40)" "same-run default-file row"
	done
	local ops4 ops64 failed64 r=
	ops4=$(row sign P-256 hsmbridge 4 ops)
	ops64=$(row sign P-256 hsmbridge 64 ops)
	failed64=$(row sign P-256 hsmbridge 64 failed)
	[ "${failed64:-1}" = 0 ] && r=$(ratio "$ops64" "$ops4")
	target "4. P-256 ops/s hsmbridge 64 threads / 4 threads" "$r" x ">=" 1.00 \
		"$ops64 vs $ops4 ops/s, failed threads: ${failed64:-?}"
}

# 2. RSA-OAEP decryption (SHA-256) on the simulator's named RSA key. While
# hsmhost reports no plugin time for Decrypt, the bridge's share is the
# round trip's p50 minus the simulator's own decryption in process.
fig_decrypt() {
	section "2. RSA-OAEP decryption, whole path vs default provider (build/bin/signbench -o decrypt)"
	signbench -o decrypt -t 1,4
	local bridge note="3x hop floor" p50
	bridge=$(row decrypt RSA-2048 hsmbridge 1 bridge)
	p50=$(row decrypt RSA-2048 hsmbridge 1 p50)
	if [ -z "$bridge" ] && [ -n "$p50" ] && [ -n "$sim_decrypt_us" ]; then
		bridge=$(calc "p - s" p="$p50" s="$sim_decrypt_us")
		note="3x hop floor; round trip $p50 - sim's own $sim_decrypt_us"
		echo "bridge p50 at 1 thread, estimated: round trip p50 $p50 us - the simulator's own decryption $sim_decrypt_us us = $bridge us"
	fi
	target "2. bridge p50, decrypt RSA-2048 (OAEP), 1 thread" "$bridge" us "<=" "$bridge_limit" "$note"
}

# 2. A masked P-256 key made by the simulator (azihsm_provider, azihsm://).
fig_masked_sim() {
	section "2. the simulator's masked keys (azihsm://…;type=ec), P-256 (build/bin/signbench)"
	openssl genpkey -propquery "?provider=azihsm" -provider default -provider azihsm_provider \
		-algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.masked_key:"$work/sim-p256.bin" -outform DER -out /dev/null
	signbench -p azihsm_provider -e "azihsm://$work/sim-p256.bin;type=ec" -a P-256 -l sim-masked -t 1,4
	target "2. bridge p50, sign masked P-256 (sim), 1 thread" "$(row sign P-256 sim-masked 1 bridge)" us "<=" \
		"$bridge_limit" "3x hop floor"
}

# 2. The Integrated HSM device backend on the emulated device: a second
# hsmhost with azihsm:// routed to the device plugin, which loads the
# emulated device as it would load libazihsm_api_native.so.
fig_masked_device() {
	section "2. the Integrated HSM device backend on the emulated device, P-256 (build/bin/signbench)"
	local dev=$work/device
	mkdir -p "$dev/emu"
	sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@EMU_LIB@|$root/build/emulator/libazihsm_api_native.so|" \
		"$root/examples/config/azihsm-emulator.hcl" >"$dev/hsmhost.hcl"
	AZIHSM_EMU_STATE_DIR=$dev/emu start_host dev_pid "$dev/hsmhost.sock" "$dev/hsmhost.log" --config "$dev/hsmhost.hcl"
	HSMBRIDGE_SOCKET=$dev/hsmhost.sock openssl genpkey -propquery "?provider=azihsm" -provider default \
		-provider azihsm_provider -algorithm EC -pkeyopt group:P-256 \
		-pkeyopt azihsm.masked_key:"$dev/p256.bin" -outform DER -out /dev/null
	HSMBRIDGE_SOCKET=$dev/hsmhost.sock signbench -p azihsm_provider -e "azihsm://$dev/p256.bin;type=ec" \
		-a P-256 -l device-emu -t 1,4
	target "2. bridge p50, sign masked P-256 (device), 1 thread" "$(row sign P-256 device-emu 1 bridge)" us "<=" \
		"$bridge_limit" "3x hop floor"
	kill "$dev_pid"
	wait "$dev_pid" 2>/dev/null || true
	dev_pid=
}

# 7. A third party's backend: the PKCS#11 plugin (plugins/pkcs11) on a fresh
# SoftHSM2 token, through a host of its own; no target, the figures beside
# the default provider's in the same run.
fig_pkcs11() {
	section "7. the PKCS#11 plugin on SoftHSM2, RSA-2048 and P-256 (build/bin/signbench)"
	local p11=$work/pkcs11 module=/usr/lib/softhsm/libsofthsm2.so alg t
	if [ ! -e "$module" ] || [ ! -x "$root/build/plugins/hsmbridge-pkcs11" ]; then
		echo "(SoftHSM2 or the pkcs11 plugin is missing: make deps build installs them)"
		return
	fi
	mkdir -p "$p11/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$p11/tokens" >"$p11/softhsm2.conf"
	export SOFTHSM2_CONF=$p11/softhsm2.conf
	softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
	cat >"$p11/hsmhost.hcl" <<-EOF
		backend "p11" {
		  plugin   = "$root/build/plugins/hsmbridge-pkcs11"
		  pass_env = ["SOFTHSM2_CONF"]
		  settings = { module = "$module", token_label = "bench", pin = "1234", namespace = "MyHSM", sessions = "8" }
		}
		route {
		  prefix  = "managedhsm:MyHSM:"
		  backend = "p11"
		}
	EOF
	start_host dev_pid "$p11/hsmhost.sock" "$p11/hsmhost.log" --config "$p11/hsmhost.hcl"
	HSMBRIDGE_SOCKET=$p11/hsmhost.sock "$bin/hsmhost" key create managedhsm:MyHSM:bench-rsa2048 --kty RSA --size 2048 --ops sign,decrypt >/dev/null
	HSMBRIDGE_SOCKET=$p11/hsmhost.sock "$bin/hsmhost" key create managedhsm:MyHSM:bench-p256 --kty EC --curve P-256 --ops sign >/dev/null
	HSMBRIDGE_SOCKET=$p11/hsmhost.sock signbench -l pkcs11-softhsm -t 1,4
	for alg in RSA-2048 P-256; do
		for t in 1 4; do
			figures+=("$(printf '%-50s %14s  %s' "7. $alg sign ops/s, pkcs11 / default, $t thr" \
				"$(ratio "$(row sign $alg pkcs11-softhsm $t ops)" "$(row sign $alg default-file $t ops)") x" \
				"(no target) $(row sign $alg pkcs11-softhsm $t ops) vs $(row sign $alg default-file $t ops) ops/s; p50 $(row sign $alg pkcs11-softhsm $t p50) us")")
		done
	done
	kill "$dev_pid"
	wait "$dev_pid" 2>/dev/null || true
	dev_pid=
	unset SOFTHSM2_CONF
}

# The simulator's own signing and decryption in one process: the backend's
# work, which figures 2 (decrypt) and 3 take out; the median of 3 runs.
fig_sim_inprocess() {
	section "the simulator's own signing and decryption, in process (go test -bench, 3 runs)"
	local out
	out=$("$GO" test -run '^$' -bench '^Benchmark(Sign|Decrypt)' -benchtime 1000x -count 3 ./plugins/simulator 2>&1) ||
		echo "(go test -bench failed: the figures that need it are n/a)"
	grep -E '^Benchmark' <<<"$out" || echo "$out"
	# sim_us NAME: the median of NAME's ns/op, in us, or "".
	sim_us() {
		local v
		v=$(awk -v b="$1" '$1 ~ "^" b "(-[0-9]+)?$" { print $3 / 1000 }' <<<"$out" | median)
		[ -z "$v" ] || calc v v="$v"
	}
	sim_p256_us=$(sim_us BenchmarkSignP256)
	sim_decrypt_us=$(sim_us BenchmarkDecryptRSA2048) # OAEP, SHA-256
	echo "medians: P-256 sign $sim_p256_us us, RSA-2048 OAEP decrypt $sim_decrypt_us us"
}

# 3. CPU time of hsmhost and its plugin per operation under load: their
# utime+stime around a fixed number of P-256 signatures from 4 threads.
# The count includes the few requests signbench makes before timing (the
# key's GetKey, one checked signature): a fraction of a percent.
fig_host_cpu() {
	local n=4000 hz host0 plug0 host1 plug1 plugins total host_us plug_us
	hz=$(getconf CLK_TCK)
	section "3. hsmhost + plugin CPU per operation: $n P-256 signatures from 4 threads"
	plugins=$(tree_pids "$host_pid" | grep -vx "$host_pid" | paste -sd' ')
	host0=$(cpu_ticks "$host_pid")
	plug0=$(sum_cpu_ticks $plugins)
	signbench -a P-256 -t 4 -n "$n" | grep -E '^(backend|hsmbridge) ' || true
	host1=$(cpu_ticks "$host_pid")
	plug1=$(sum_cpu_ticks $plugins)
	host_us=$(calc "(h1 - h0) * 1e6 / hz / n" h1="$host1" h0="$host0" hz="$hz" n="$n")
	plug_us=$(calc "(p1 - p0) * 1e6 / hz / n" p1="$plug1" p0="$plug0" hz="$hz" n="$n")
	total=
	[ -n "$sim_p256_us" ] && total=$(calc "h + p - s" h="$host_us" p="$plug_us" s="$sim_p256_us")
	echo "CPU per signature: hsmhost $host_us us + plugin (pid $plugins) $plug_us us" \
		"- the simulator's own signing $sim_p256_us us = $total us (clock tick $((1000000 / hz)) us)"
	target "3. hsmhost+plugin CPU/op minus crypto, 4 threads" "$total" us "<=" 50 \
		"hsmhost $host_us + plugin $plug_us - sim $sim_p256_us"
}

# 5. One-shot openssl dgst -sign with a running host, against a key file:
# the three commands in turn, so that the machine's noise falls on all.
dgst_sign() {
	local key
	case $1 in
	reference) key=managedhsm:MyHSM:bench-p256 ;;
	ref-pem) key=$work/ref-p256.pem ;;
	file) openssl dgst -sha256 -sign "$work/file-p256.pem" -out "$work/sig" "$work/data"; return ;;
	esac
	openssl dgst -sha256 -provider hsmbridge -provider default -sign "$key" -out "$work/sig" "$work/data"
}

fig_oneshot_cli() {
	local runs=20 i kind
	local -A ms
	section "5. one-shot openssl dgst -sha256 -sign, P-256, median of $runs each"
	head -c 4096 /dev/urandom >"$work/data"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/file-p256.pem" 2>/dev/null
	"$bin/hsmhost" key ref managedhsm:MyHSM:bench-p256 >"$work/ref-p256.pem"
	for kind in reference ref-pem file; do dgst_sign $kind; done # warm the page cache
	for i in $(seq "$runs"); do
		for kind in reference ref-pem file; do time_us "$work/oneshot-$kind" dgst_sign $kind; done
	done
	for kind in reference ref-pem file; do
		ms[$kind]=
		[ -s "$work/oneshot-$kind" ] && ms[$kind]=$(FMT=%.2f calc "m / 1000" m="$(median <"$work/oneshot-$kind")")
	done
	printf '%-66s %6s ms\n' \
		"-provider hsmbridge -provider default -sign managedhsm:MyHSM:bench-p256" "${ms[reference]}" \
		"-provider hsmbridge -provider default -sign ref-p256.pem (hsmhost key ref)" "${ms[ref-pem]}" \
		"-sign file-p256.pem (a key file, default provider only)" "${ms[file]}"
	for kind in reference ref-pem; do
		local d=
		[ -n "${ms[$kind]}" ] && [ -n "${ms[file]}" ] && d=$(FMT=%+.2f calc "a - f" a="${ms[$kind]}" f="${ms[file]}")
		target "5. openssl dgst -sign <$kind> - key file" "$d" ms "<=" 3 \
			"medians of $runs: ${ms[$kind]} vs ${ms[file]} ms"
	done
}

# 6. Memory: hsmhost and its plugin at rest after all the load above, and
# what the provider with one key adds to an application.
fig_rss() {
	section "6. resident memory"
	# Idle: both daemons hand memory back after a quiet 5 s check
	# (sdk.TrimWhenIdle), so wait two checks.
	sleep "${BENCH_IDLE_SECONDS:-11}"
	local p total=0 rss=0 kb
	for p in $(tree_pids "$host_pid"); do
		kb=$(pss_kb "$p")
		total=$((total + kb))
		rss=$((rss + $(rss_kb "$p")))
		printf 'idle after the load: pid %-7s %-36s Pss %6d kB  VmRSS %6d kB\n' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-36)" "$kb" "$(rss_kb "$p")"
	done
	target "6. hsmhost + plugin idle memory (Pss) after load" "$(calc "t / 1024" t="$total")" MB "<=" 30 \
		"$total kB over $(tree_pids "$host_pid" | wc -l) processes (VmRSS sum $rss kB)"
	local out added=()
	for p in 1 2 3; do
		out=$("$bin/provrss" "$modules" hsmbridge managedhsm:MyHSM:bench-p256)
		echo "build/bin/provrss (hsmbridge + managedhsm:MyHSM:bench-p256, signed once): $out"
		added+=("$(sed -n 's/.*added=\(-*[0-9]*\).*/\1/p' <<<"$out")")
	done
	kb=$(printf '%s\n' "${added[@]}" | median)
	target "6. RSS the provider + one key add to a process" "$(calc "k / 1024" k="$kb")" MB "<=" 1 \
		"median of 3: $kb kB"
}

summary() {
	section "figures against their targets"
	printf '%-50s %14s  %-24s %-7s %s\n' figure measured target verdict note
	printf '%s\n' "${figures[@]}" | sort -s -n -k1,1 # by figure, in run order
	echo
	if [ "${#missed[@]}" -eq 0 ]; then
		echo "all $ntargets targets met"
	else
		echo "targets missed (${#missed[@]} of $ntargets): $(printf '%s\n' "${missed[@]}" | sort -s -n -k1,1 | paste -sd';' | sed 's/;/; /g')"
	fi
}

# ---- the run ---------------------------------------------------------------

start_host host_pid "$HSMBRIDGE_SOCKET" "$work/hsmhost.log"
"$bin/hsmhost" key create managedhsm:MyHSM:bench-rsa2048 --kty RSA --size 2048 --ops sign,decrypt >/dev/null
"$bin/hsmhost" key create managedhsm:MyHSM:bench-p256 --kty EC --curve P-256 --ops sign >/dev/null

fig_hop_floor
fig_sim_inprocess
fig_sign
fig_decrypt
fig_masked_sim
fig_masked_device
fig_pkcs11
fig_host_cpu
fig_oneshot_cli
fig_rss
summary
