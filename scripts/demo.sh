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
# The build's modules are named in this openssl.cnf (demo-lib.sh), as installed
# ones need not be; OPENSSL_MODULES would hide OpenSSL's own modules directory.
export OPENSSL_CONF=$work/openssl-modules.cnf
export PATH=$root/build/bin:$PATH

. scripts/demo-lib.sh
openssl_modules_cnf "$OPENSSL_CONF"

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
wait_for_host "$work/logs/hsmhost.log"
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

step "Integrated HSM seed: masked keys, ECDH, HKDF and HMAC (the simulator stands in for the device)"
PROV='-propquery "?provider=azihsm" -provider default -provider azihsm_provider'
run() { show "$1"; eval "$1"; }
head -c 4096 /dev/urandom > data.bin
run "openssl genpkey $PROV -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.masked_key:./ec_p384.bin -outform DER -out /dev/null"
ok "$(od -An -c -N8 ec_p384.bin | tr -d ' ') masked blob, $(stat -c %s ec_p384.bin) bytes, mode $(stat -c %a ec_p384.bin)"
run "openssl dgst -sha384 $PROV -sign \"azihsm://./ec_p384.bin;type=ec\" -out signature.sig data.bin"
openssl pkey $PROV -in "azihsm://./ec_p384.bin;type=ec" -pubout -out ec_p384_pub.pem 2>/dev/null
show "openssl dgst -sha384 -verify ec_p384_pub.pem -signature signature.sig data.bin   # default provider only"
openssl dgst -sha384 -verify ec_p384_pub.pem -signature signature.sig data.bin | sed 's/^/   /'
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out external_rsa.der 2>/dev/null
run "openssl genpkey $PROV -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.input_key:./external_rsa.der -pkeyopt azihsm.key_usage:digitalSignature -pkeyopt azihsm.masked_key:./rsa_2048_sign.bin -outform DER -out /dev/null"
run "openssl dgst -sha256 $PROV -sigopt rsa_padding_mode:pss -sign \"azihsm://./rsa_2048_sign.bin;type=rsa\" -out rsa.sig data.bin"
openssl pkey -inform DER -in external_rsa.der -pubout -out external_rsa_pub.pem
show "openssl dgst -sha256 -sigopt rsa_padding_mode:pss -verify external_rsa_pub.pem -signature rsa.sig data.bin   # the imported key's own public half"
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -verify external_rsa_pub.pem -signature rsa.sig data.bin | sed 's/^/   /'
run "openssl genpkey $PROV -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.key_usage:keyAgreement -pkeyopt azihsm.masked_key:./ec_p384_ecdh.bin -outform DER -out /dev/null"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out peer_priv.pem 2>/dev/null
openssl pkey -in peer_priv.pem -pubout -out peer_pub.pem
run "openssl pkeyutl -derive $PROV -inkey \"azihsm://./ec_p384_ecdh.bin;type=ec\" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin"
ok "the shared secret stays masked: shared_secret.bin, $(stat -c %s shared_secret.bin) bytes"
run "openssl kdf $PROV -keylen 4096 -kdfopt digest:SHA384 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./derived_hmac_key.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:384 -binary -out /dev/null HKDF"
cmd="openssl mac $PROV -macopt digest:SHA384 -macopt azihsm.key_file:./derived_hmac_key.bin -in data.bin HMAC"
show "$cmd"; eval "$cmd" | sed 's/^/   /'
show "openssl dgst -sha384 $PROV -sign \"azihsm://./ec_p384_ecdh.bin;type=ec\" data.bin   # a keyAgreement key may not sign"
openssl dgst -sha384 $PROV -sign "azihsm://./ec_p384_ecdh.bin;type=ec" data.bin 2>&1 >/dev/null | grep -m1 -o 'azihsm://.*' | sed 's/^/   /' || true

nginx_keyless_tls "an HSM-held" 8443 8444

step "Done"
echo "Every private-key operation above ran in the simulator backend behind hsmhost;"
echo "files are in build/demo, hsmhost's log in build/demo/logs/hsmhost.log."
