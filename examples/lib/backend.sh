# shellcheck shell=bash
# Shared by the scripts of examples/nginx and examples/grpc-sidecar (sourced,
# not run). Before sourcing, a script sets EX_DIR to its example's folder.
#
# Everything an example makes lives in $EX_DIR/.run: hsmhost's socket, config
# and log, the simulator's or the stand-in's key state, certificates, nginx
# configs, pid files. hsmhost (and, for BACKEND=mhsm-standin, the Managed HSM
# stand-in) is started by the first script that needs it and keeps running
# until the example's stop script; every script finds it by its pid file.
#
# Settings come from $EX_DIR/.env when it exists (examples/nginx writes one
# with setup-env.sh), else from these defaults:
#
#   BACKEND       simulator | mhsm-standin | mhsm
#                 simulator:    hsmhost's built-in software simulator
#                 mhsm-standin: the Managed HSM backend (plugin hsmbridge-mhsm)
#                               against a local stand-in of the service
#                               (build/bin/mhsm-standin), config from
#                               examples/config/mhsm-standin.hcl
#                 mhsm:         the Managed HSM backend against Azure; hsmhost
#                               takes the credential from this shell
#                               (AZURE_CLI_ACCESS_TOKEN, or az login)
#   HSM_NAME      the Managed HSM name in the key references (MyHSM)
#   NGINX_USER    the user nginx workers run as when started by root
#                 (www-data); hsmhost's socket is opened to its group

set -euo pipefail

RUN=$EX_DIR/.run
HB_ROOT=$(cd "$EX_DIR/../.." && pwd)
HB_BUILD=${HSMBRIDGE_BUILD:-$HB_ROOT/build}
HB_HSMHOST=$HB_BUILD/bin/hsmhost
HB_STANDIN=$HB_BUILD/bin/mhsm-standin
HB_MODULE=$HB_BUILD/ossl-modules/akv_provider.so
HB_SOCK=$RUN/hsm/hsmhost.sock
HB_LOG=$RUN/logs/hsmhost.log

# hb_defaults: fills in unset settings and derives HSM_LABEL.
hb_defaults() {
	BACKEND=${BACKEND:-simulator}
	HSM_NAME=${HSM_NAME:-MyHSM}
	NGINX_USER=${NGINX_USER:-www-data}
	case $BACKEND in
	simulator) HSM_LABEL="hsmbridge simulator" ;;
	mhsm-standin) HSM_LABEL="Azure Managed HSM stand-in" ;;
	mhsm) HSM_LABEL="Azure Managed HSM" ;;
	*) die "BACKEND=$BACKEND: not simulator, mhsm-standin or mhsm (set in $EX_DIR/.env)" ;;
	esac
}

# hb_load_env: the settings of $EX_DIR/.env, if it exists, then the defaults.
hb_load_env() {
	if [ -f "$EX_DIR/.env" ]; then
		# shellcheck disable=SC1091
		. "$EX_DIR/.env"
	fi
	hb_defaults
}

if [ -t 1 ]; then
	hb_green='\033[0;32m' hb_yellow='\033[1;33m' hb_red='\033[0;31m' hb_off='\033[0m'
else
	hb_green='' hb_yellow='' hb_red='' hb_off=''
fi
say() { printf '%s\n' "$*"; }
ok() { printf "${hb_green}✓ %s${hb_off}\n" "$*"; }
warn() { printf "${hb_yellow}! %s${hb_off}\n" "$*"; }
die() { printf "${hb_red}✗ %s${hb_off}\n" "$*" >&2; exit 1; }
# fail: reports a failed check and goes on; the script exits with $failed.
# shellcheck disable=SC2034
failed=0
# shellcheck disable=SC2034
fail() { printf "${hb_red}✗ %s${hb_off}\n" "$*"; failed=1; }

# hb_need_build: the binaries the examples use, built by `make build`.
hb_need_build() {
	local f
	for f in "$HB_HSMHOST" "$HB_MODULE"; do
		[ -e "$f" ] || die "$f is missing: run 'make build' in $HB_ROOT first"
	done
	if [ "$BACKEND" != simulator ]; then
		[ -e "$HB_BUILD/plugins/hsmbridge-mhsm" ] || die "$HB_BUILD/plugins/hsmbridge-mhsm is missing: run 'make build' in $HB_ROOT first"
	fi
	if [ "$BACKEND" = mhsm-standin ]; then
		[ -e "$HB_STANDIN" ] || die "$HB_STANDIN is missing: run 'make build' in $HB_ROOT first"
	fi
	command -v openssl >/dev/null || die "openssl is not installed"
}

# hb_worker_group: the group of the nginx workers' user when we run as root
# (workers then drop to NGINX_USER), else nothing (workers keep our uid).
hb_worker_group() {
	[ "$(id -u)" -eq 0 ] || return 0
	id -gn "$NGINX_USER" 2>/dev/null || die "NGINX_USER=$NGINX_USER: no such user"
}

# hb_user_line: nginx.conf's `user` line (only root may switch users).
hb_user_line() {
	[ "$(id -u)" -eq 0 ] || return 0
	printf 'user %s %s;\n' "$NGINX_USER" "$(hb_worker_group)"
}

# hb_alive PIDFILE: the process named in PIDFILE runs.
hb_alive() {
	[ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# hb_stop NAME PIDFILE: ends the process of PIDFILE (TERM, then KILL after
# 10 s) and removes the file.
hb_stop() {
	local name=$1 file=$2 pid
	if hb_alive "$file"; then
		pid=$(cat "$file")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
			warn "$name (pid $pid) did not end on TERM; killed"
		fi
		ok "stopped $name (pid $pid)"
	fi
	rm -f "$file"
}

# hb_port_free PORT: nothing listens on 127.0.0.1:PORT.
hb_port_free() {
	if command -v ss >/dev/null; then
		[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] || return 1
	fi
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hb_free_port PORT [SKIP...]: PORT if it is free, else the next free one
# (not one of SKIP).
hb_free_port() {
	local p=$1 s taken
	shift
	while :; do
		taken=
		for s in "$@"; do [ "$p" = "$s" ] && taken=1; done
		[ -z "$taken" ] && hb_port_free "$p" && break
		p=$((p + 1))
	done
	printf '%s\n' "$p"
}

# hb_wait_port PORT [PIDFILE]: waits up to 10 s until 127.0.0.1:PORT accepts.
hb_wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		if [ -n "${2:-}" ] && ! hb_alive "$2"; then return 1; fi
		sleep 0.1
	done
	return 1
}

# hb_hsmhost ARGS: the hsmhost CLI against this example's hsmhost.
hb_hsmhost() {
	HSMBRIDGE_SOCKET=$HB_SOCK "$HB_HSMHOST" "$@"
}

# hb_openssl ARGS: openssl with this example's openssl.cnf, which loads the
# provider by its absolute path (no OPENSSL_MODULES) and names its socket.
hb_openssl() {
	OPENSSL_CONF=$RUN/openssl.cnf openssl "$@"
}

# hb_openssl_cnf: writes $RUN/openssl.cnf. The provider's section is named
# akv_provider, so the seed's `-provider akv_provider -provider default`
# finds it too; nothing else (no environment variable) is needed.
hb_openssl_cnf() {
	cat >"$RUN/openssl.cnf" <<EOF
# Written by $(basename "$0"): OpenSSL loads the hsmbridge provider from its
# absolute path and talks to this example's hsmhost. Give it to one program
# with OPENSSL_CONF=$RUN/openssl.cnf.
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
akv_provider = akv_provider_sect

[default_sect]
activate = 1

[akv_provider_sect]
module = $HB_MODULE
activate = 1
hsmbridge_socket = $HB_SOCK
# This example starts hsmhost itself (with its own config), never the provider.
hsmbridge_autostart = no
EOF
}

# hb_host_config: hsmhost's config for BACKEND, on stdout.
hb_host_config() {
	local group
	group=$(hb_worker_group)
	printf '# Written by %s for BACKEND=%s.\n' "$(basename "$0")" "$BACKEND"
	printf 'socket    = "%s"\nlog_level = "info"\n' "$HB_SOCK"
	if [ -n "$group" ]; then
		printf '# nginx workers run as %s: the socket is theirs through its group, no one else'"'"'s.\n' "$NGINX_USER"
		printf 'socket_mode  = "0660"\nsocket_group = "%s"\n' "$group"
	fi
	echo
	case $BACKEND in
	simulator)
		cat <<EOF
backend "simulator" {
  plugin   = "builtin:simulator"
  settings = { state_dir = "$RUN/state" }
}

route {
  prefix  = "managedhsm:"
  backend = "simulator"
}
EOF
		;;
	mhsm-standin)
		local addr
		addr=$(cat "$RUN/standin-url")
		sed -e "s|@PLUGIN_DIR@|$HB_BUILD/plugins|" -e "s|@STANDIN_ADDR@|${addr#https://}|" \
			-e "s|@STANDIN_CA@|$RUN/standin-ca.pem|" -e "s|\"MyHSM\"|\"$HSM_NAME\"|" \
			"$HB_ROOT/examples/config/mhsm-standin.hcl"
		;;
	mhsm)
		cat <<EOF
backend "mhsm" {
  plugin   = "$HB_BUILD/plugins/hsmbridge-mhsm"
  pass_env = [
    "AZURE_CLI_ACCESS_TOKEN",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
    "AZURE_CONFIG_DIR", "HTTPS_PROXY", "NO_PROXY",
  ]
  settings = {
    hsms        = "$HSM_NAME"
    max_retries = 3
    try_timeout = "10s"
  }
}

route {
  prefix  = "managedhsm:"
  backend = "mhsm"
}
EOF
		;;
	esac
}

# hb_start_standin: the local Managed HSM stand-in on a free port, its keys
# kept in $RUN/standin-state.json across restarts, accepting one random
# token that only hsmhost is given.
hb_start_standin() {
	hb_alive "$RUN/standin.pid" && return 0
	[ -s "$RUN/standin.token" ] || (umask 077; openssl rand -hex 24 >"$RUN/standin.token")
	rm -f "$RUN/standin-url"
	setsid "$HB_STANDIN" -addr 127.0.0.1:0 -token "$(cat "$RUN/standin.token")" \
		-state "$RUN/standin-state.json" -ca-out "$RUN/standin-ca.pem" -url-out "$RUN/standin-url" \
		>>"$RUN/logs/standin.log" 2>&1 </dev/null &
	echo $! >"$RUN/standin.pid"
	for _ in $(seq 100); do [ -s "$RUN/standin-url" ] && break; hb_alive "$RUN/standin.pid" || break; sleep 0.1; done
	[ -s "$RUN/standin-url" ] || { tail -20 "$RUN/logs/standin.log" >&2; die "the Managed HSM stand-in did not start (log: $RUN/logs/standin.log)"; }
	ok "Managed HSM stand-in pid $(cat "$RUN/standin.pid") at $(cat "$RUN/standin-url")"
}

# hb_ensure_host: hsmhost for BACKEND is running (started if not; restarted
# if it runs for another BACKEND), and $RUN/openssl.cnf is written.
hb_ensure_host() {
	hb_need_build
	mkdir -p "$RUN/logs"
	chmod 755 "$RUN"
	hb_openssl_cnf
	if hb_alive "$RUN/hsmhost.pid" && [ -S "$HB_SOCK" ]; then
		if [ "$(cat "$RUN/hsmhost.backend" 2>/dev/null)" = "$BACKEND" ]; then
			return 0
		fi
		say "hsmhost runs for BACKEND=$(cat "$RUN/hsmhost.backend" 2>/dev/null); restarting it for BACKEND=$BACKEND"
		hb_stop hsmhost "$RUN/hsmhost.pid"
	fi
	if [ "$BACKEND" = mhsm-standin ]; then
		hb_start_standin
	else
		hb_stop "Managed HSM stand-in" "$RUN/standin.pid"
	fi
	hb_host_config >"$RUN/hsmhost.hcl"
	local token=
	[ "$BACKEND" = mhsm-standin ] && token=$(cat "$RUN/standin.token")
	if [ -n "$token" ]; then
		AZURE_CLI_ACCESS_TOKEN=$token setsid "$HB_HSMHOST" serve --config "$RUN/hsmhost.hcl" >>"$HB_LOG" 2>&1 </dev/null &
	else
		setsid "$HB_HSMHOST" serve --config "$RUN/hsmhost.hcl" >>"$HB_LOG" 2>&1 </dev/null &
	fi
	echo $! >"$RUN/hsmhost.pid"
	for _ in $(seq 150); do
		[ -S "$HB_SOCK" ] && hb_hsmhost key list "managedhsm:$HSM_NAME:" >/dev/null 2>&1 && break
		hb_alive "$RUN/hsmhost.pid" || break
		sleep 0.1
	done
	if ! [ -S "$HB_SOCK" ] || ! hb_alive "$RUN/hsmhost.pid"; then
		tail -20 "$HB_LOG" >&2
		die "hsmhost did not start (config: $RUN/hsmhost.hcl, log: $HB_LOG)"
	fi
	echo "$BACKEND" >"$RUN/hsmhost.backend"
	ok "hsmhost pid $(cat "$RUN/hsmhost.pid") for BACKEND=$BACKEND ($HSM_LABEL), socket $HB_SOCK ($(stat -c '%A %U:%G' "$HB_SOCK"))"
}

# hb_stop_host: ends hsmhost and the stand-in.
hb_stop_host() {
	hb_stop hsmhost "$RUN/hsmhost.pid"
	hb_stop "Managed HSM stand-in" "$RUN/standin.pid"
	rm -f "$RUN/hsmhost.backend"
}

# hb_check_worker_reach: as root, checks that NGINX_USER can reach hsmhost's
# socket (every folder above it searchable, the socket writable), which a
# checkout under a private home folder prevents.
hb_check_worker_reach() {
	[ "$(id -u)" -eq 0 ] || return 0
	runuser -u "$NGINX_USER" -- test -w "$HB_SOCK" ||
		die "nginx workers (user $NGINX_USER) cannot reach $HB_SOCK: every folder above it must be searchable by them (chmod o+x), or set NGINX_USER in .env"
}

# hb_ensure_key NAME KEY-CREATE-FLAGS...: managedhsm:$HSM_NAME:NAME exists in
# the backend (created with `hsmhost key create` if not).
hb_ensure_key() {
	local ref=managedhsm:$HSM_NAME:$1 out
	shift
	if out=$(hb_hsmhost key show "$ref" 2>&1); then
		ok "$ref exists ($(printf '%s\n' "$out" | sed -n 's/^ *type: *//p'))"
		return 0
	fi
	case $out in
	*"not found"* | *NotFound* | *not_found*) ;;
	*) die "hsmhost key show $ref: $out" ;;
	esac
	say "\$ hsmhost key create $ref $*"
	hb_hsmhost key create "$ref" "$@" | sed 's/^/    /'
}

# hb_key_ops REF_PATTERN SINCE_LINE: the "key operation" lines hsmhost logged
# after line SINCE_LINE of its log for references matching REF_PATTERN.
hb_key_ops() {
	tail -n +"$(($2 + 1))" "$HB_LOG" | grep -F 'key operation' | grep -F -- "$1" || true
}

hb_log_lines() {
	if [ -f "$HB_LOG" ]; then wc -l <"$HB_LOG"; else echo 0; fi
}

# Scripts that merge settings themselves (setup-env.sh) set HB_NO_ENV=1.
[ -n "${HB_NO_ENV:-}" ] || hb_load_env
