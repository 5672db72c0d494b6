#!/usr/bin/env bash
# make bench-tls: full TLS handshakes/s of Debian's nginx 1.22 (2 workers)
# with a key file (OpenSSL's default provider) beside the same with an
# hsmbridge key (key-reference file, hsmbridge activated in an openssl.cnf
# given by OPENSSL_CONF; the key in hsmhost's simulator), for RSA-2048 and
# P-256, TLS 1.3 and 1.2, in one run on this machine.
#
# The load is bench/tlsload: BENCH_CONNS (default 8) connections at once, each
# a handshake, one small GET and a close; nothing is resumed (no tickets and
# no session cache in nginx, no session cache in the client). Every row runs
# BENCH_SECONDS (default 5) after a 1 s warm-up; the figures are medians of
# BENCH_RUNS (default 3) runs, file and hsmbridge rows interleaved. CPU time
# (utime+stime from /proc) of nginx's master and workers, hsmhost, its plugin
# processes and the client is read around each row and shown per handshake.
#
# Targets: hsmbridge handshakes/s >= 0.85x the key file's for RSA-2048 and
# >= 0.90x for P-256. A miss is reported; BENCH_STRICT=1 makes it fail the
# run. A failed connection always fails the run.
#
# BENCH_CLIENT_PROCS sets the client's GOMAXPROCS (default: half the CPUs,
# at least 1), so that the client cannot take the whole machine from nginx;
# BENCH_KEX the key exchange (X25519, the default, or P-256).
# BENCH_RESULTS=FILE keeps the raw rows (`build/bin/tlsload report FILE`
# prints the tables again).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${BENCH_SECONDS:-5}
runs=${BENCH_RUNS:-3}
conns=${BENCH_CONNS:-8}
cpus=$(nproc)
client_procs=${BENCH_CLIENT_PROCS:-$(( cpus / 2 > 0 ? cpus / 2 : 1 ))}
kex=${BENCH_KEX:-X25519}
nginx=${NGINX:-/usr/sbin/nginx}
[ -n "${BENCH_RESULTS:-}" ] && BENCH_RESULTS=$(realpath -m "$BENCH_RESULTS")
work=$(mktemp -d)
chmod 755 "$work" # nginx workers (nobody when run as root) reach the socket below it
mkdir -p "$work"/{logs,tmp}
export HSMBRIDGE_SOCKET=$work/run/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
declare -A nginx_pid port

cleanup() {
	local pid
	for pid in "${nginx_pid[@]}" ${host_pid:-}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${nginx_pid[@]}" ${host_pid:-}; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

[ -x "$nginx" ] || { echo "bench-tls: no nginx at $nginx (Debian: apt-get install nginx)"; exit 1; }
"${GO:-go}" build -o "$root/build/bin/tlsload" ./bench/tlsload
tlsload=$root/build/bin/tlsload

# As root, nginx workers run as nobody: open the socket to their group, as
# scripts/demo.sh and the e2e nginx tests do.
hostcfg=() user_line=
if [ "$(id -u)" -eq 0 ]; then
	printf 'socket_mode = "0660"\nsocket_group = "nogroup"\n' >"$work/hsmhost.hcl"
	hostcfg=(--config "$work/hsmhost.hcl")
	user_line="user nobody nogroup;"
fi
# Warn-level logging: the host writes nothing per request.
"$root/build/bin/hsmhost" serve "${hostcfg[@]}" --log-level warn >"$work/logs/hsmhost.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && break; sleep 0.1; done
[ -S "$HSMBRIDGE_SOCKET" ] || { cat "$work/logs/hsmhost.log"; exit 1; }

# Keys and self-signed certificates: file-<alg>.key is a plain PEM key;
# hsm-<alg>.key is the key-reference file of a key made in the simulator,
# and hsm-<alg>.crt is signed by that key through the provider.
cd "$work"
for a in rsa2048 p256; do
	ref=managedhsm:MyHSM:bench-tls-$a
	case $a in
	rsa2048) kty="--kty RSA --size 2048" gen="-algorithm RSA -pkeyopt rsa_keygen_bits:2048" ;;
	p256) kty="--kty EC --curve P-256" gen="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ;;
	esac
	# shellcheck disable=SC2086
	"$root/build/bin/hsmhost" key create "$ref" $kty --ops sign >/dev/null
	"$root/build/bin/hsmhost" key ref "$ref" >hsm-$a.key
	OPENSSL_MODULES=$root/build/ossl-modules openssl req -new -x509 -provider akv_provider -provider default \
		-key "$ref" -subj /CN=localhost -days 2 -out hsm-$a.crt 2>/dev/null
	# shellcheck disable=SC2086
	openssl genpkey $gen -out file-$a.key 2>/dev/null
	openssl req -new -x509 -key file-$a.key -subj /CN=localhost -days 2 -out file-$a.crt 2>/dev/null
done
cat >openssl.cnf <<'CNF'
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmbridge = hsmbridge_sect
[default_sect]
activate = 1
[hsmbridge_sect]
activate = 1
CNF

# start_nginx KIND: one nginx (2 workers) serving KIND-rsa2048 and KIND-p256
# on free ports. The file nginx runs with OpenSSL's own configuration only
# (no OPENSSL_CONF); the hsm one with openssl.cnf above. A port taken between
# choosing and binding it is retried with new ones.
start_nginx() {
	local kind=$1 try p a servers
	for try in 1 2 3; do
		mapfile -t p < <("$tlsload" ports 2)
		port[$kind-rsa2048]=${p[0]} port[$kind-p256]=${p[1]}
		servers=
		for a in rsa2048 p256; do
			servers+="    server {
        listen 127.0.0.1:${port[$kind-$a]} ssl reuseport;
        ssl_certificate $work/$kind-$a.crt;
        ssl_certificate_key $work/$kind-$a.key;
        location / { return 200 \"ok $kind-$a \$ssl_protocol\\n\"; }
    }
"
		done
		cat >nginx-$kind.conf <<CONF
$user_line
worker_processes 2;
daemon off;
master_process on;
pid $work/nginx-$kind.pid;
error_log $work/logs/nginx-$kind-error.log warn;
env HSMBRIDGE_SOCKET;
env OPENSSL_CONF;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
    ssl_protocols TLSv1.2 TLSv1.3;
    # No resumption: no cache, no TLS 1.2 tickets, and none of the two
    # (stateful, here unusable) tickets TLS 1.3 would still send.
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_conf_command NumTickets 0;
$servers}
CONF
		if [ "$kind" = hsm ]; then
			OPENSSL_CONF=$work/openssl.cnf OPENSSL_MODULES=$root/build/ossl-modules \
				"$nginx" -e "$work/logs/nginx-$kind-error.log" -c "$work/nginx-$kind.conf" -p "$work" >>"$work/logs/nginx-$kind.out" 2>&1 &
		else
			env -u OPENSSL_CONF -u OPENSSL_MODULES \
				"$nginx" -e "$work/logs/nginx-$kind-error.log" -c "$work/nginx-$kind.conf" -p "$work" >>"$work/logs/nginx-$kind.out" 2>&1 &
		fi
		nginx_pid[$kind]=$!
		for _ in $(seq 100); do
			kill -0 "${nginx_pid[$kind]}" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/${port[$kind-rsa2048]}") 2>/dev/null &&
				(exec 3<>"/dev/tcp/127.0.0.1/${port[$kind-p256]}") 2>/dev/null; then
				return 0
			fi
			sleep 0.1
		done
		kill "${nginx_pid[$kind]}" 2>/dev/null || true
		wait "${nginx_pid[$kind]}" 2>/dev/null || true
		unset "nginx_pid[$kind]"
	done
	echo "bench-tls: nginx ($kind keys) did not start:"
	cat "$work/logs/nginx-$kind.out" "$work/logs/nginx-$kind-error.log" 2>/dev/null
	exit 1
}
start_nginx file
start_nginx hsm

echo "TLS bench: $("$nginx" -v 2>&1 | sed 's/.*: //') (2 workers), $(openssl version | cut -d' ' -f1-2), $cpus CPUs," \
	"$("$root/build/bin/hsmhost" version 2>&1 | head -1)"
echo "full handshakes (no tickets, no session cache, never resumed), $conns connections at once,"
echo "each: handshake, GET, close; ${secs} s per row after 1 s of warm-up, $runs runs, file and hsmbridge interleaved"
echo "file: plain PEM key, nginx without OPENSSL_CONF (OpenSSL's default provider)"
echo "hsmbridge: key-reference file, OPENSSL_CONF activating default + hsmbridge, key in hsmhost's simulator"
echo

hz=$(getconf CLK_TCK)
status=0
: >results.txt
for run in $(seq "$runs"); do
	# Which key goes first alternates between runs: interleaved, and neither
	# always goes first.
	kinds="file hsm"; [ $((run % 2)) -eq 0 ] && kinds="hsm file"
	for a in rsa2048 p256; do
		alg=RSA-2048; [ $a = p256 ] && alg=P-256
		for v in 1.3 1.2; do
			for kind in $kinds; do
				GOMAXPROCS=$client_procs "$tlsload" run -addr "127.0.0.1:${port[$kind-$a]}" -cert "$kind-$a.crt" \
					-tls "$v" -kex "$kex" -c "$conns" -s "$secs" -expect "ok $kind-$a TLSv$v" -hz "$hz" \
					-label "kind=$kind alg=$alg run=$run" \
					-proc nginx="${nginx_pid[$kind]}" -tree nginx="${nginx_pid[$kind]}" \
					-proc hsmhost="$host_pid" -tree plugin="$host_pid" >>results.txt || status=1
			done
		done
	done
done

echo
strict=(); [ -n "${BENCH_STRICT:-}" ] && strict=(-strict)
[ -n "${BENCH_RESULTS:-}" ] && cp results.txt "$BENCH_RESULTS"
"$tlsload" report "${strict[@]}" results.txt || status=1
echo "nginx: master + 2 workers; hsmhost: the host process; plugin: its children (the simulator plugin)."
if grep -q . "$work/logs/hsmhost.log" 2>/dev/null; then
	echo "hsmhost log (warn and above):"; sed 's/^/   /' "$work/logs/hsmhost.log" | tail -20
fi
for kind in file hsm; do
	if grep -qv -e '^$' "$work/logs/nginx-$kind-error.log" 2>/dev/null; then
		echo "nginx ($kind keys) error log, last lines:"; tail -5 "$work/logs/nginx-$kind-error.log" | sed 's/^/   /'
	fi
done
exit $status
