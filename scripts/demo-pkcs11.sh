#!/usr/bin/env bash
# make demo-pkcs11: the Managed HSM seed's commands with managedhsm:MyHSM:
# routed, by hsmhost's config alone (examples/config/pkcs11-softhsm.hcl), to
# the PKCS#11 plugin (plugins/pkcs11) on a fresh SoftHSM2 token; then a key
# made by pkcs11-tool outside hsmbridge, used by its RFC 7512 URI, and nginx
# with 4 workers serving keys from the token.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/build/demo-pkcs11
rm -rf "$work"; mkdir -p "$work"/{run,logs,tmp,tokens}
chmod 755 "$work"

export HSMBRIDGE_SOCKET=$work/run/hsmhost.sock
export OPENSSL_CONF=$work/openssl-modules.cnf
export SOFTHSM2_CONF=$work/softhsm2.conf
export PATH=$root/build/bin:$PATH
module=/usr/lib/softhsm/libsofthsm2.so
rsa_port=${DEMO_RSA_PORT:-8455}
ec_port=${DEMO_EC_PORT:-8456}

. scripts/demo-lib.sh
openssl_modules_cnf "$OPENSSL_CONF"

cleanup() {
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	[ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

step "A fresh SoftHSM2 token"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$SOFTHSM2_CONF"
chmod -R a+rX "$work/tokens"
show "softhsm2-util --init-token --free --label demo --pin **** --so-pin ****"
softhsm2-util --init-token --free --label demo --pin 1234 --so-pin 5678 | sed 's/^/   /'
printf '1234\n' >"$work/pin"
chmod 0600 "$work/pin"

step "hsmhost with managedhsm:MyHSM: and pkcs11: routed to the PKCS#11 plugin"
{
	if [ "$(id -u)" -eq 0 ]; then
		printf 'socket_mode = "0660"\nsocket_group = "nogroup"\n\n'
	fi
	sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@PIN_FILE@|$work/pin|" "$root/examples/config/pkcs11-softhsm.hcl"
} >"$work/hsmhost.hcl"
show "the config (from examples/config/pkcs11-softhsm.hcl), without its comments:"
grep -v '^\s*#' "$work/hsmhost.hcl" | grep -v '^\s*$' | sed 's/^/   /'
show "hsmhost plugin list --config $work/hsmhost.hcl"
hsmhost plugin list --config "$work/hsmhost.hcl" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "plugin list"
hsmhost serve --config "$work/hsmhost.hcl" >"$work/logs/hsmhost.log" 2>&1 &
host_pid=$!
wait_for_host "$work/logs/hsmhost.log"
ok "hsmhost pid $host_pid listening on $HSMBRIDGE_SOCKET"
show "hsmhost doctor managedhsm:MyHSM"
hsmhost doctor managedhsm:MyHSM 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "doctor"

step "Keys generated inside the token (CKA_SENSITIVE, not extractable)"
cd "$work"
for args in "managedhsm:MyHSM:mykey --kty RSA --size 3072 --ops sign,decrypt" \
            "managedhsm:MyHSM:myrsakey --kty RSA --size 2048 --ops sign,decrypt" \
            "managedhsm:MyHSM:myeckey --kty EC --curve P-256 --ops sign"; do
	show hsmhost key create $args
	hsmhost key create $args | sed 's/^/   /'
done
show "pkcs11-tool --module $module --list-objects --type privkey"
pkcs11-tool --module "$module" --login --pin 1234 --list-objects --type privkey 2>/dev/null | grep -E 'label|Usage' | sed 's/^/   /'

step "Seed use cases 3 and 4: certificate signing request, self-signed certificate"
cmd='openssl req -new -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -subj "/CN=myserver.example.com" -out server.csr'
show "$cmd"; eval "$cmd"
openssl req -verify -in server.csr -noout 2>&1 | sed 's/^/   /'
cmd='openssl req -new -x509 -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -days 365 -subj "/CN=myserver.example.com" -out server.crt'
show "$cmd"; eval "$cmd"
openssl verify -CAfile server.crt server.crt | sed 's/^/   /'

step "Seed use case 5: digital signatures, verified by the default provider"
echo "hsmbridge demo" > data.txt
hsmhost key pubkey managedhsm:MyHSM:mykey > pubkey.pem
cmd='openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt'
show "$cmd"; eval "$cmd"
openssl dgst -sha256 -verify pubkey.pem -signature signature.bin data.txt | sed 's/^/   /'

step "RSA-OAEP decryption in the token (SHA-1: what SoftHSM2 takes)"
hsmhost key pubkey managedhsm:MyHSM:myrsakey > myrsakey.pub
openssl rand 32 > secret.bin
openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -in secret.bin -out secret.enc
cmd='openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -in secret.enc -out secret.dec'
show "$cmd"; eval "$cmd"
cmp -s secret.bin secret.dec || die "OAEP decryption gave other bytes"
ok "the 32 bytes came back"

step "A key made outside hsmbridge, by pkcs11-tool, used by its RFC 7512 URI"
cmd="pkcs11-tool --module $module --login --pin **** --keypairgen --key-type EC:prime256v1 --label outside --id 42"
show "$cmd"
pkcs11-tool --module "$module" --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label outside --id 42 >/dev/null 2>&1 ||
	die "pkcs11-tool --keypairgen"
pkcs11-tool --module "$module" --read-object --type pubkey --label outside -o outside.pub.der >/dev/null 2>&1
openssl pkey -pubin -inform DER -in outside.pub.der -out outside.pub.pem
cmd='openssl dgst -sha256 -provider hsmbridge -provider default -sign "pkcs11:token=demo;object=outside;type=private" -out outside.sig data.txt'
show "$cmd"; eval "$cmd"
show "openssl dgst -sha256 -verify outside.pub.pem -signature outside.sig data.txt   # the public key pkcs11-tool read"
openssl dgst -sha256 -verify outside.pub.pem -signature outside.sig data.txt | sed 's/^/   /'

nginx_keyless_tls "a PKCS#11 token" "$rsa_port" "$ec_port"

step "Done"
echo "Every private-key operation above ran in the SoftHSM2 token, through the"
echo "hsmbridge-pkcs11 plugin; only the hsmhost config differs from 'make demo'."
echo "Files are in build/demo-pkcs11, logs in build/demo-pkcs11/logs."
