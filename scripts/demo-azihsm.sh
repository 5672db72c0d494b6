#!/usr/bin/env bash
# The Integrated HSM demo: hsmhost with azihsm:// routed by config to the
# device backend (plugin hsmbridge-azihsm), which loads the emulated device
# (build/emulator/libazihsm_api_native.so) exactly as it would load the real
# native library, and the Integrated HSM seed's commands verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/build/demo-azihsm
rm -rf "$work"; mkdir -p "$work"/{run,logs,tmp,emu}
chmod 755 "$work"

export HSMBRIDGE_SOCKET=$work/run/hsmhost.sock
export HSMBRIDGE_STATE_DIR=$work/state
# The build's modules are named in this openssl.cnf (demo-lib.sh), as installed
# ones need not be; OPENSSL_MODULES would hide OpenSSL's own modules directory.
export OPENSSL_CONF=$work/openssl-modules.cnf
export AZIHSM_EMU_STATE_DIR=$work/emu
export PATH=$root/build/bin:$PATH

. scripts/demo-lib.sh
openssl_modules_cnf "$OPENSSL_CONF"

cleanup() {
	[ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
}
trap cleanup EXIT

step "hsmhost with azihsm:// routed to the Integrated HSM device backend (emulated device)"
sed -e "s|@PLUGIN_DIR@|$root/build/plugins|" -e "s|@EMU_LIB@|$root/build/emulator/libazihsm_api_native.so|" \
	examples/config/azihsm-emulator.hcl > "$work/hsmhost.hcl"
show "grep -E 'plugin|library|prefix' $work/hsmhost.hcl"
grep -E '^\s*(plugin|library|prefix)' "$work/hsmhost.hcl" | sed 's/^/   /'
hsmhost serve --config "$work/hsmhost.hcl" >"$work/logs/hsmhost.log" 2>&1 &
host_pid=$!
wait_for_host "$work/logs/hsmhost.log"
ok "hsmhost pid $host_pid listening on $HSMBRIDGE_SOCKET"
show "hsmhost doctor azihsm"
hsmhost doctor azihsm 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "doctor"

cd "$work"
PROV='-propquery "?provider=azihsm" -provider default -provider azihsm_provider'
run() { show "$1"; eval "$1" || die "$1"; }
refused() { # a command that must fail; prints the first line of its reason
	show "$1"
	if out=$(eval "$1" 2>&1 >/dev/null); then die "it succeeded"; fi
	# The provider's reason (the host's message) if there is one, else the first line.
	{ printf '%s\n' "$out" | grep -m1 -E 'azihsm_provider:[a-z_]+:' || printf '%s\n' "$out" | head -n1; } |
		sed -e 's/^.*\.c:[0-9]*://' -e 's/^/   refused: /'
}
head -c 4096 /dev/urandom > data.bin

step "EC keys generated in the device; ECDSA sign (streaming and pre-hashed), verified by the default provider"
run "openssl genpkey $PROV -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.masked_key:./ec_p384.bin -outform DER -out /dev/null"
ok "masked blob from the device: ec_p384.bin, $(stat -c %s ec_p384.bin) bytes"
run "openssl dgst -sha384 $PROV -sign \"azihsm://./ec_p384.bin;type=ec\" -out signature.sig data.bin"
openssl pkey $PROV -in "azihsm://./ec_p384.bin;type=ec" -pubout -out ec_p384_pub.pem 2>/dev/null
show "openssl dgst -sha384 -verify ec_p384_pub.pem -signature signature.sig data.bin   # default provider only"
openssl dgst -sha384 -verify ec_p384_pub.pem -signature signature.sig data.bin | sed 's/^/   /'
run "openssl dgst -sha384 -binary -out data.hash data.bin"
run "openssl pkeyutl -sign $PROV -inkey \"azihsm://./ec_p384.bin;type=ec\" -in data.hash -out data.sig"
show "openssl pkeyutl -verify -pubin -inkey ec_p384_pub.pem -in data.hash -sigfile data.sig   # default provider only"
openssl pkeyutl -verify -pubin -inkey ec_p384_pub.pem -in data.hash -sigfile data.sig | sed 's/^/   /'

step "RSA keys imported (wrapped with the device's import key), both signature kinds"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out external_rsa.der 2>/dev/null
openssl pkey -inform DER -in external_rsa.der -pubout -out external_rsa_pub.pem
run "openssl genpkey $PROV -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.input_key:./external_rsa.der -pkeyopt azihsm.key_usage:digitalSignature -pkeyopt azihsm.masked_key:./rsa_2048_sign.bin -outform DER -out /dev/null"
run "openssl dgst -sha256 $PROV -sign \"azihsm://./rsa_2048_sign.bin;type=rsa\" -out rsa_sig.bin data.bin"
show "openssl dgst -sha256 -verify external_rsa_pub.pem -signature rsa_sig.bin data.bin   # PKCS#1 v1.5: the device hashed data.bin itself"
openssl dgst -sha256 -verify external_rsa_pub.pem -signature rsa_sig.bin data.bin | sed 's/^/   /'
run "openssl dgst -sha256 $PROV -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max -sign \"azihsm://./rsa_2048_sign.bin;type=rsa\" -out rsa_pss_sig.bin data.bin"
show "openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto -verify external_rsa_pub.pem -signature rsa_pss_sig.bin data.bin"
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto -verify external_rsa_pub.pem -signature rsa_pss_sig.bin data.bin | sed 's/^/   /'

step "RSA encryption (local, public key) and decryption (in the device)"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -outform DER -out external_rsa_4096.der 2>/dev/null
run "openssl genpkey $PROV -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -pkeyopt azihsm.input_key:./external_rsa_4096.der -pkeyopt azihsm.key_usage:keyEncipherment -pkeyopt azihsm.masked_key:./rsa_4096_enc.bin -outform DER -out /dev/null"
echo "a secret for the device" > plaintext.bin
run "openssl pkeyutl -encrypt $PROV -inkey \"azihsm://./rsa_4096_enc.bin;type=rsa\" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plaintext.bin -out ciphertext.bin"
run "openssl pkeyutl -decrypt $PROV -inkey \"azihsm://./rsa_4096_enc.bin;type=rsa\" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in ciphertext.bin -out decrypted.bin"
cmp plaintext.bin decrypted.bin && ok "decrypted.bin equals plaintext.bin"

step "ECDH to a masked secret, HKDF to an HMAC key, HMAC — all in the device"
run "openssl genpkey $PROV -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.key_usage:keyAgreement -pkeyopt azihsm.masked_key:./ec_p384_ecdh.bin -outform DER -out /dev/null"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out peer_priv.pem 2>/dev/null
openssl pkey -in peer_priv.pem -pubout -out peer_pub.pem
run "openssl pkeyutl -derive $PROV -inkey \"azihsm://./ec_p384_ecdh.bin;type=ec\" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin"
ok "the shared secret stays masked: shared_secret.bin, $(stat -c %s shared_secret.bin) bytes"
run "openssl kdf $PROV -keylen 4096 -kdfopt digest:SHA384 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./derived_hmac_key.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:384 -kdfopt hexsalt:000102030405060708090a0b0c -kdfopt hexinfo:f0f1f2f3f4f5f6f7f8f9 -binary -out /dev/null HKDF"
cmd="openssl mac $PROV -macopt digest:SHA384 -macopt azihsm.key_file:./derived_hmac_key.bin -in data.bin HMAC"
show "$cmd"; mac=$(eval "$cmd") || die "$cmd"; echo "   $mac"
# The same MAC from the peer's side: ECDH with the peer's private key, HKDF, HMAC, all with the default provider.
openssl pkey $PROV -in "azihsm://./ec_p384_ecdh.bin;type=ec" -pubout -out ecdh_pub.pem 2>/dev/null
openssl pkeyutl -derive -inkey peer_priv.pem -peerkey ecdh_pub.pem -out z.bin
prk=$(openssl kdf -keylen 48 -kdfopt digest:SHA384 -kdfopt hexkey:"$(od -An -tx1 -v z.bin | tr -d ' \n')" -kdfopt hexsalt:000102030405060708090a0b0c -kdfopt hexinfo:f0f1f2f3f4f5f6f7f8f9 HKDF | tr -d ':')
peer_mac=$(openssl mac -digest SHA384 -macopt hexkey:"$prk" -in data.bin HMAC)
[ "$(echo "$mac" | tr 'a-f' 'A-F')" = "$(echo "$peer_mac" | tr 'a-f' 'A-F')" ] || die "the device's HMAC differs from the peer's: $peer_mac"
ok "equals the HMAC computed from the peer's side with the default provider"

step "Session keys end with their session (the openssl process)"
run "openssl genpkey $PROV -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.session:true -pkeyopt azihsm.masked_key:./ec_p256_session.bin -outform DER -out /dev/null"
refused "openssl dgst -sha256 $PROV -sign \"azihsm://./ec_p256_session.bin;type=ec\" data.bin"

step "Refusals, each decided by the device"
refused "openssl dgst -sha384 $PROV -sign \"azihsm://./ec_p384_ecdh.bin;type=ec\" data.bin   # a keyAgreement key may not sign"
refused "openssl pkeyutl -derive $PROV -inkey \"azihsm://./ec_p384.bin;type=ec\" -peerkey peer_pub.pem -pkeyopt output_file:x.bin   # a digitalSignature key may not agree"
openssl pkeyutl -encrypt -pubin -inkey external_rsa_pub.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out ciphertext_2048.bin
refused "openssl pkeyutl -decrypt $PROV -inkey \"azihsm://./rsa_2048_sign.bin;type=rsa\" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in ciphertext_2048.bin -out x.bin   # a signing key may not decrypt"
refused "openssl mac $PROV -macopt digest:SHA256 -macopt azihsm.key_file:./derived_hmac_key.bin -in data.bin HMAC   # an HMAC-SHA384 key MACs only with SHA384"
b=$(od -An -tu1 -j40 -N1 ec_p384.bin | tr -d ' ')
cp ec_p384.bin damaged.bin && printf "\\$(printf %03o $(( (b + 1) % 256 )))" | dd of=damaged.bin bs=1 seek=40 conv=notrunc 2>/dev/null
refused "openssl dgst -sha384 $PROV -sign \"azihsm://./damaged.bin;type=ec\" data.bin   # an altered blob"

step "Done"
echo "Every private-key operation above ran in the emulated Integrated HSM, through the"
echo "device backend's dlopen binding; files are in build/demo-azihsm, hsmhost's log in"
echo "build/demo-azihsm/logs/hsmhost.log."
