#!/usr/bin/env bash
# The main demo: hsmhost on the simulator, the Managed HSM seed's commands
# verbatim, and nginx serving TLS with HSM-held keys from 4 forked workers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/build/demo
rm -rf "$work"; mkdir -p "$work"/{run,logs,tmp}
chmod 755 "$work"

export HSMBRIDGE_SOCKET=$work/run/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
export OPENSSL_MODULES=$root/build/ossl-modules
export PATH=$root/build/bin:$PATH

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }

cleanup() {
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	[ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
}
trap cleanup EXIT

step "hsmhost on the embedded simulator (state in build/demo/state)"
hostcfg=
if [ "$(id -u)" -eq 0 ]; then
	# nginx workers run as nobody: open the socket to their group.
	printf 'socket_mode = "0660"\nsocket_group = "nogroup"\n' > "$work/hsmhost.hcl"
	hostcfg="--config $work/hsmhost.hcl"
fi
hsmhost serve $hostcfg >"$work/logs/hsmhost.log" 2>&1 &
host_pid=$!
for _ in $(seq 100); do [ -S "$HSMBRIDGE_SOCKET" ] && break; sleep 0.1; done
[ -S "$HSMBRIDGE_SOCKET" ] || { cat "$work/logs/hsmhost.log"; exit 1; }
ok "hsmhost pid $host_pid listening on $HSMBRIDGE_SOCKET"

step "Keys, as 'az keyvault key create' would make them"
cd "$work"
for args in "managedhsm:MyHSM:mykey --kty RSA --size 3072 --ops sign,decrypt" \
            "managedhsm:MyHSM:myrsakey --kty RSA --size 3072 --ops sign,decrypt" \
            "managedhsm:MyHSM:myeckey --kty EC --curve P-256 --ops sign"; do
	show hsmhost key create $args
	hsmhost key create $args | sed 's/^/   /'
done
show hsmhost key list
hsmhost key list | sed 's/^/   /'

step "Seed use case 3: certificate signing request"
cmd='openssl req -new -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -subj "/CN=myserver.example.com" -out server.csr'
show "$cmd"; eval "$cmd"
openssl req -verify -in server.csr -noout 2>&1 | sed 's/^/   /'

step "Seed use case 4: self-signed certificate (DN prompts answered with defaults)"
cmd='openssl req -new -x509 -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -days 365 -out server.crt'
show "$cmd"; printf '\n\n\n\n\n\n\n\n\n' | eval "$cmd" >/dev/null 2>&1
openssl verify -CAfile server.crt server.crt | sed 's/^/   /'

step "Seed use case 5: digital signatures"
echo "hsmbridge demo" > data.txt
hsmhost key pubkey managedhsm:MyHSM:mykey > pubkey.pem
cmd='openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt'
show "$cmd"; eval "$cmd"
cmd='openssl dgst -sha256 -verify pubkey.pem -signature signature.bin data.txt'
show "$cmd"; eval "$cmd" | sed 's/^/   /'
cmd='openssl dgst -sha256 -provider akv_provider -provider default -sign "akv:vault=MyHSM,name=myeckey" -out ec.sig data.txt'
show "$cmd"; eval "$cmd"
hsmhost key pubkey managedhsm:MyHSM:myeckey > ec.pub
openssl dgst -sha256 -verify ec.pub -signature ec.sig data.txt | sed 's/^/   /'

step "A clear error for a key that does not exist"
show 'openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:nokey data.txt'
openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:nokey data.txt 2>&1 | grep -m1 'not found' | sed 's/^/   /' || true

step "nginx 1.22 with key-reference files, 4 workers, TLS 1.2 and 1.3"
cat > openssl.cnf <<'CNF'
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
        listen 127.0.0.1:8443 ssl reuseport;
        ssl_certificate $work/rsa.crt;
        ssl_certificate_key $work/rsa.key;
        location / { return 200 "Hello from nginx with an HSM-held RSA key (\$ssl_protocol, worker \$pid)\n"; }
    }
    server {
        listen 127.0.0.1:8444 ssl reuseport;
        ssl_certificate $work/ec.crt;
        ssl_certificate_key $work/ec.key;
        location / { return 200 "Hello from nginx with an HSM-held EC key (\$ssl_protocol, worker \$pid)\n"; }
    }
}
CONF
OPENSSL_CONF=$work/openssl.cnf nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 100); do curl -sk https://127.0.0.1:8443/ >/dev/null 2>&1 && break; sleep 0.1; done
pass=0 fail=0
for port in 8443 8444; do
	crt=$work/rsa.crt; [ $port = 8444 ] && crt=$work/ec.crt
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

step "Done"
echo "Every private-key operation above ran in the simulator backend behind hsmhost;"
echo "files are in build/demo, hsmhost's log in build/demo/logs/hsmhost.log."
