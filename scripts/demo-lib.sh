# Shared by scripts/demo.sh, demo-mhsm.sh and demo-azihsm.sh (sourced, not run).

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
die() { printf '   FAILED: %s\n' "$*"; exit 1; }
# wait_for_host LOG: waits up to 10 s for hsmhost's socket ($HSMBRIDGE_SOCKET);
# if it does not come, prints hsmhost's LOG and fails.
wait_for_host() {
	for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && return; sleep 0.1; done
	cat "$1"
	die "hsmhost did not open $HSMBRIDGE_SOCKET"
}

# openssl_modules_cnf FILE: the openssl.cnf the demo's commands read
# (OPENSSL_CONF): the system's own (its [req] answers the seed's prompts),
# then default activated and a `module =` line for each name the build's
# provider is loaded under, none activated, so that `-provider akv_provider`
# and the seeds' other commands find the build's module the way they find the
# installed one. (OPENSSL_MODULES would find it too, but it replaces
# OpenSSL's own modules directory, so legacy or fips would not load.)
openssl_modules_cnf() {
local sys
sys=$(openssl version -d | sed -n 's/^OPENSSLDIR: "\(.*\)"$/\1/p')/openssl.cnf
{
[ -f "$sys" ] && printf '.include %s\n[default]\n' "$sys"
cat <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = demo_providers
[demo_providers]
default = demo_default
hsmbridge = demo_hsmbridge
akv_provider = demo_akv
azihsm_provider = demo_azihsm
[demo_default]
activate = 1
[demo_hsmbridge]
module = $root/build/ossl-modules/hsmbridge.so
[demo_akv]
module = $root/build/ossl-modules/akv_provider.so
[demo_azihsm]
module = $root/build/ossl-modules/azihsm_provider.so
CNF
} > "$1"
ok "the commands read $1: the system's openssl.cnf, then a module line for each provider module of the build"
}

# nginx_keyless_tls LABEL RSA_PORT EC_PORT: nginx 1.22 with 4 workers and the
# keys managedhsm:MyHSM:myrsakey / myeckey as key-reference files, then 100
# fresh TLS 1.2 and 1.3 connections from curl; fails unless all succeed.
# Runs in $work (the demo's directory) and leaves nginx's pid in
# $work/nginx.pid for the caller's cleanup.
nginx_keyless_tls() {
# (the body is not indented: its here-documents end at column 0)
local label=$1 rsa_port=$2 ec_port=$3
step "nginx 1.22 with key-reference files, 4 workers, TLS 1.2 and 1.3"
cat > openssl.cnf <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmbridge = hsmbridge_sect
[default_sect]
activate = 1
[hsmbridge_sect]
module = $root/build/ossl-modules/hsmbridge.so
activate = 1
CNF
for k in rsa ec; do
	key=managedhsm:MyHSM:my${k}key
	hsmhost key ref "$key" > $k.key
	openssl req -new -x509 -provider akv_provider -provider default -key "$key" -subj /CN=localhost -days 2 -out $k.crt 2>/dev/null
done
show "cat rsa.key"; sed 's/^/   /' rsa.key
user_line=; [ "$(id -u)" -eq 0 ] && user_line="user nobody nogroup;"
cat > nginx.conf <<CONF
$user_line
worker_processes 4;
pid $work/nginx.pid;
error_log $work/logs/nginx-error.log info;
env HSMBRIDGE_SOCKET;
env OPENSSL_CONF;
events { worker_connections 64; }
http {
    access_log $work/logs/access.log;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
    server {
        listen 127.0.0.1:$rsa_port ssl reuseport;
        ssl_certificate $work/rsa.crt;
        ssl_certificate_key $work/rsa.key;
        location / { return 200 "Hello from nginx with $label RSA key (\$ssl_protocol, worker \$pid)\n"; }
    }
    server {
        listen 127.0.0.1:$ec_port ssl reuseport;
        ssl_certificate $work/ec.crt;
        ssl_certificate_key $work/ec.key;
        location / { return 200 "Hello from nginx with $label EC key (\$ssl_protocol, worker \$pid)\n"; }
    }
}
CONF
OPENSSL_CONF=$work/openssl.cnf nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 100); do curl -sk https://127.0.0.1:$rsa_port/ >/dev/null 2>&1 && break; sleep 0.1; done
pass=0 fail=0
for port in $rsa_port $ec_port; do
	crt=$work/rsa.crt; [ $port = $ec_port ] && crt=$work/ec.crt
	for v in 1.2 1.3; do
		flags="--tlsv$v"; [ $v = 1.2 ] && flags="--tlsv1.2 --tls-max 1.2"
		for _ in $(seq 25); do
			if curl -sS --max-time 20 --cacert "$crt" --resolve localhost:$port:127.0.0.1 $flags https://localhost:$port/ | grep -q "TLSv$v"; then
				pass=$((pass+1)); else fail=$((fail+1)); fi
		done
		show "curl --cacert $(basename "$crt") $flags https://localhost:$port/"
		curl -sS --cacert "$crt" --resolve localhost:$port:127.0.0.1 $flags https://localhost:$port/ 2>&1 | sed 's/^/   /' || true
	done
done
ok "$pass fresh TLS connections succeeded, $fail failed"
[ "$fail" -eq 0 ]
}
