#!/usr/bin/env bash
# make demo-mhsm: the demo of scripts/demo.sh with managedhsm: routed, by
# hsmhost's config alone, to the Managed HSM backend (plugin hsmbridge-mhsm,
# Azure's azkeys client inside), which talks HTTPS to the local Managed HSM
# stand-in (build/bin/mhsm-standin) instead of Azure. The applications'
# commands and key references are the Managed HSM seed's, unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/build/demo-mhsm
rm -rf "$work"; mkdir -p "$work"/{run,logs,tmp}
chmod 755 "$work"

# Only hsmhost gets the token; nothing else this script starts sees it.
unset AZURE_CLI_ACCESS_TOKEN
export HSMBRIDGE_SOCKET=$work/run/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
# The build's modules are named in this openssl.cnf (demo-lib.sh), as installed
# ones need not be; OPENSSL_MODULES would hide OpenSSL's own modules directory.
export OPENSSL_CONF=$work/openssl-modules.cnf
export PATH=$root/build/bin:$PATH
rsa_port=${DEMO_RSA_PORT:-8453}
ec_port=${DEMO_EC_PORT:-8454}

. scripts/demo-lib.sh
openssl_modules_cnf "$OPENSSL_CONF"

cleanup() {
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	[ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
	[ -n "${standin_pid:-}" ] && kill "$standin_pid" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

step "The local Managed HSM stand-in (HTTPS on loopback, its own CA)"
token=demo-$(openssl rand -hex 16)
mhsm-standin -addr 127.0.0.1:0 -token "$token" -ca-out "$work/standin-ca.pem" \
	-url-out "$work/standin-url" >"$work/logs/standin.log" 2>&1 &
standin_pid=$!
for _ in $(seq 100); do [ -s "$work/standin-url" ] && break; sleep 0.1; done
[ -s "$work/standin-url" ] || { cat "$work/logs/standin.log"; die "the stand-in did not start"; }
standin_url=$(cat "$work/standin-url")
standin_addr=${standin_url#https://}
ok "mhsm-standin pid $standin_pid at $standin_url, accepting one bearer token"

step "hsmhost with managedhsm: routed to the Managed HSM backend"
{
	if [ "$(id -u)" -eq 0 ]; then
		# nginx workers run as nobody: open the socket to their group.
		printf 'socket_mode = "0660"\nsocket_group = "nogroup"\n\n'
	fi
	sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@STANDIN_ADDR@|$standin_addr|" \
		-e "s|@STANDIN_CA@|$work/standin-ca.pem|" "$root/examples/config/mhsm-standin.hcl"
} >"$work/hsmhost.hcl"
show "the config (from examples/config/mhsm-standin.hcl), without its comments:"
grep -v '^\s*#' "$work/hsmhost.hcl" | grep -v '^\s*$' | sed 's/^/   /'
show "AZURE_CLI_ACCESS_TOKEN=<token> hsmhost serve --config $work/hsmhost.hcl"
AZURE_CLI_ACCESS_TOKEN=$token hsmhost serve --config "$work/hsmhost.hcl" >"$work/logs/hsmhost.log" 2>&1 &
host_pid=$!
wait_for_host "$work/logs/hsmhost.log"
ok "hsmhost pid $host_pid listening on $HSMBRIDGE_SOCKET; only it holds the token"

step "Keys, created in the HSM through hsmhost (as 'az keyvault key create' would)"
cd "$work"
for args in "managedhsm:MyHSM:mykey --kty RSA-HSM --size 3072 --ops sign,decrypt" \
            "managedhsm:MyHSM:myrsakey --kty RSA-HSM --size 3072 --ops sign,decrypt" \
            "managedhsm:MyHSM:myeckey --kty EC-HSM --curve P-256 --ops sign" \
            "managedhsm:MyHSM:myaeskey --kty oct-HSM --size 256 --ops wrapKey,unwrapKey"; do
	show hsmhost key create $args
	hsmhost key create $args | sed 's/^/   /'
done
show hsmhost key list
hsmhost key list | sed 's/^/   /'
show "curl --cacert standin-ca.pem -H 'Authorization: Bearer <token>' https://myhsm.managedhsm.azure.net/keys/myaeskey/ (connected to the stand-in)"
curl -sS --cacert "$work/standin-ca.pem" --connect-to "myhsm.managedhsm.azure.net:443:$standin_addr" \
	-H "Authorization: Bearer $token" "https://myhsm.managedhsm.azure.net/keys/myaeskey/?api-version=7.4" | sed 's/^/   /'
echo

step "Seed use case 3: certificate signing request"
cmd='openssl req -new -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -subj "/CN=myserver.example.com" -out server.csr'
show "$cmd"; eval "$cmd"
openssl req -verify -in server.csr -noout 2>&1 | sed 's/^/   /'

step "Seed use case 4: self-signed certificate (DN prompts answered with defaults)"
cmd='openssl req -new -x509 -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -days 365 -out server.crt'
show "$cmd"; printf '\n\n\n\n\n\n\n\n\n' | eval "$cmd" >/dev/null 2>&1
openssl verify -CAfile server.crt server.crt | sed 's/^/   /'

step "Seed use case 5: digital signatures (RSA 3072 and EC P-256)"
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

step "RSA-OAEP decryption in the HSM (encrypted by OpenSSL's default provider)"
hsmhost key pubkey managedhsm:MyHSM:myrsakey > myrsakey.pub
openssl rand 32 > secret.bin
for md in sha1 sha256; do
	openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:$md \
		-in secret.bin -out secret.enc
	cmd="openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:$md -in secret.enc -out secret.dec"
	show "$cmd"; eval "$cmd"
	cmp -s secret.bin secret.dec || die "OAEP-$md decryption gave other bytes"
	ok "OAEP with $md: the 32 bytes came back"
done

step "AES-256 key wrap and unwrap with the oct-HSM key"
openssl rand 32 > dek.bin
cmd='openssl pkeyutl -encrypt -provider akv_provider -provider default -inkey managedhsm:MyHSM:myaeskey -in dek.bin -out dek.wrapped'
show "$cmd"
if out=$(eval "$cmd" 2>&1); then
	ok "wrapped 32 bytes into $(wc -c < dek.wrapped) (RFC 3394, A256KW)"
	cmd='openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey managedhsm:MyHSM:myaeskey -in dek.wrapped -out dek.unwrapped'
	show "$cmd"; eval "$cmd"
	cmp -s dek.bin dek.unwrapped || die "unwrap gave other bytes"
	ok "unwrapped: the same 32 bytes"
else
	echo "   skipped: this provider build cannot wrap with an AES key yet:"
	printf '%s\n' "$out" | grep -m1 -i 'error' | sed 's/^/   /'
fi

step "A clear error for a key that does not exist"
show 'openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:nokey data.txt'
openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:nokey data.txt 2>&1 | grep -m1 'not found' | sed 's/^/   /' || true

nginx_keyless_tls "a Managed HSM" "$rsa_port" "$ec_port"
master=$(cat "$work/nginx.pid")
for pid in $master $(cat /proc/$master/task/$master/children); do
	if tr '\0' '\n' < /proc/$pid/environ | grep -q '^AZURE_CLI_ACCESS_TOKEN='; then die "nginx process $pid holds the token"; fi
done
ok "no nginx process (master, $(wc -w < /proc/$master/task/$master/children) workers) holds AZURE_CLI_ACCESS_TOKEN"

step "What the stand-in saw"
stats=$(curl -sS --cacert "$work/standin-ca.pem" "$standin_url/_standin/stats")
show "curl $standin_url/_standin/stats"; echo "   $stats"
echo "   (one connection and one 401 challenge are the plugin's: it keeps its HTTP/2 connection and"
echo "   its token; the other connections are this script's two curl calls)"

step "Done"
echo "Every private-key operation above ran in the Managed HSM stand-in, reached by"
echo "Azure's azkeys client inside the hsmbridge-mhsm plugin; only the hsmhost config"
echo "differs from 'make demo'. Files are in build/demo-mhsm, logs in build/demo-mhsm/logs."
