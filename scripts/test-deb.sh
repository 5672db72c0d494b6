#!/usr/bin/env bash
# The Debian package on this machine (Debian 12, as root): builds it
# (make deb), removes any earlier install (make uninstall, a previous
# package), installs it with apt-get, starts hsmhost as the unit says, runs
# the seeds' CSR, certificate, sign and verify flows against the installed
# files only (no build/ paths, no OPENSSL_MODULES, no -provider-path; the
# installed openssl.cnf sections included the way README says), then purges
# the package and checks that nothing of it is left.
#
# With systemd running (a CI VM), postinst has started hsmhost.service and
# the test uses it, sandbox and all. Without (a container), the test runs
# the unit's ExecStart as its User= with its environment and emulates the
# parts of the sandbox that need only mount namespaces and setpriv
# (ProtectSystem=strict, ProtectHome, PrivateTmp, PrivateDevices,
# NoNewPrivileges, an empty CapabilityBoundingSet, UMask); the seccomp,
# address-family and kernel-protection options are then not exercised.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb: run as root (it installs a package)" >&2; exit 1; }
export PATH="$PATH:/usr/local/go/bin"
t0=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
	echo "test-deb: FAIL: $*" >&2
	exit 1
}

work=$(mktemp -d /tmp/hsmbridge-test-deb.XXXXXX)
chmod 755 "$work" # the application user (nobody) works in it too
host_pid=
cleanup() {
	rc=$?
	set +e
	if [ -n "$host_pid" ] && kill -0 "$host_pid" 2>/dev/null; then
		kill "$host_pid"
		wait "$host_pid" 2>/dev/null
	fi
	if [ $rc -ne 0 ]; then
		[ -f "$work/hsmhost.log" ] && { echo "--- hsmhost log"; tail -50 "$work/hsmhost.log"; }
		if dpkg-query -W hsmbridge >/dev/null 2>&1; then
			echo "--- purging hsmbridge after the failure"
			DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq hsmbridge >/dev/null 2>&1
		fi
	fi
	for p in /etc/hsmbridge /var/lib/hsmbridge /run/hsmbridge; do
		if [ -e "$work/aside$p" ]; then
			rm -rf "$p"
			mv "$work/aside$p" "$p"
		fi
	done
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

step "build the package (make deb)"
make --no-print-directory deb > "$work/make-deb.log" 2>&1 || { cat "$work/make-deb.log"; fail "make deb"; }
deb=$(ls build/hsmbridge_*.deb)
ok "$deb: $(dpkg-deb --field "$deb" Depends)"

step "remove earlier installs"
if dpkg-query -W hsmbridge >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq hsmbridge >/dev/null
	ok "purged the installed package"
fi
make --no-print-directory uninstall >/dev/null
ok "make uninstall (PREFIX=/usr/local)"
# A root hsmhost started by hand uses the service's socket and state
# folders too: one that is running would answer in the service's place.
if [ -S /run/hsmbridge/hsmhost.sock ] && ss -xl 2>/dev/null | grep -q ' /run/hsmbridge/hsmhost.sock '; then
	fail "an hsmhost already serves /run/hsmbridge/hsmhost.sock; stop it first"
fi
# Folders left by such a host, or an admin's config from make install, are
# set aside for the test and put back at the end.
[ ! -e /usr/lib/hsmbridge ] || fail "/usr/lib/hsmbridge exists, but no package hsmbridge is installed"
mkdir "$work/aside"
for p in /etc/hsmbridge /var/lib/hsmbridge /run/hsmbridge; do
	if [ -e "$p" ]; then
		mkdir -p "$work/aside$(dirname "$p")"
		mv "$p" "$work/aside$p"
		ok "set $p aside until the end"
	fi
done
if getent passwd hsmbridge >/dev/null; then fail "a user hsmbridge exists before the install"; fi

step "apt-get install ./$deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" > "$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install"; }
dpkg -L hsmbridge > "$work/files"
modules=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
for f in /usr/bin/hsmhost /usr/lib/hsmbridge/plugins/hsmbridge-{simulator,mhsm,azihsm,pkcs11} \
	"$modules"/{hsmbridge,akv_provider,azihsm_provider}.so /lib/systemd/system/hsmhost.service \
	/etc/hsmbridge/hsmhost.hcl /etc/hsmbridge/openssl-hsmbridge.cnf; do
	[ -e "$f" ] || fail "$f is not installed"
done
ok "hsmhost, 4 plugins, 3 module names in $modules, the unit, the conffiles"
for p in /usr/lib/hsmbridge/plugins/*; do
	/usr/bin/hsmhost plugin verify "$p" > "$work/verify.out" 2>&1 || { cat "$work/verify.out"; fail "hsmhost plugin verify $p"; }
done
ok "each installed plugin passes hsmhost plugin verify"
getent passwd hsmbridge >/dev/null || fail "postinst made no user hsmbridge"
getent group hsmbridge >/dev/null || fail "postinst made no group hsmbridge"
[ "$(id -gn hsmbridge)" = hsmbridge ] || fail "user hsmbridge's group is $(id -gn hsmbridge)"
ok "user and group hsmbridge ($(id hsmbridge))"
[ "$(man -w hsmhost)" = /usr/share/man/man8/hsmhost.8.gz ] || fail "man -w hsmhost: $(man -w hsmhost 2>&1)"
[ "$(man -w 7 hsmbridge)" = /usr/share/man/man7/hsmbridge.7.gz ] || fail "man -w 7 hsmbridge: $(man -w 7 hsmbridge 2>&1)"
man 8 hsmhost 2>/dev/null | grep -q -- '--log-level' || fail "man hsmhost does not render"
ok "man hsmhost, man 7 hsmbridge"
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify /lib/systemd/system/hsmhost.service > "$work/verify.log" 2>&1 ||
		{ cat "$work/verify.log"; fail "systemd-analyze verify hsmhost.service"; }
	ok "systemd-analyze verify hsmhost.service"
fi

# The unit's values, as systemd reads them (the last of a key wins; the
# Environment lines add up).
unit=/lib/systemd/system/hsmhost.service
unitval() { sed -n "s/^$1=//p" "$unit" | tail -1; }
sock=/run/hsmbridge/hsmhost.sock

if [ -d /run/systemd/system ]; then
	step "hsmhost.service under systemd"
	systemctl is-enabled --quiet hsmhost || fail "postinst did not enable hsmhost.service"
	systemctl is-active --quiet hsmhost || systemctl start hsmhost || { journalctl -u hsmhost --no-pager | tail -30; fail "systemctl start hsmhost"; }
	host_pid=
	mode=systemd
else
	step "the unit's ExecStart as $(unitval User), in the unit's sandbox as far as namespaces go (no systemd here)"
	user=$(unitval User)
	group=$(unitval Group)
	read -r -a execstart <<< "$(unitval ExecStart)"
	runtime=/run/$(unitval RuntimeDirectory)
	state=/var/lib/$(unitval StateDirectory)
	# What systemd does before ExecStart: the directories, then the
	# environment: its own variables, Environment=, EnvironmentFile=.
	install -d -o "$user" -g "$group" -m "$(unitval RuntimeDirectoryMode)" "$runtime"
	install -d -o "$user" -g "$group" -m "$(unitval StateDirectoryMode)" "$state"
	env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
		"USER=$user" "LOGNAME=$user" "HOME=$(getent passwd "$user" | cut -d: -f6)" SHELL=/usr/sbin/nologin
		"RUNTIME_DIRECTORY=$runtime" "STATE_DIRECTORY=$state")
	while read -r line; do
		read -r -a kv <<< "$line"
		env+=("${kv[@]}")
	done < <(sed -n 's/^Environment=//p' "$unit")
	envfile=$(unitval EnvironmentFile)
	if [ -f "${envfile#-}" ]; then
		while IFS= read -r line; do
			case $line in '' | \#*) ;; *) env+=("$line") ;; esac
		done < "${envfile#-}"
	fi
	# The sandbox, option by option as the unit sets it, in a private
	# mount namespace; then setpriv drops to the user, with no new
	# privileges and no capabilities, and the umask.
	sandbox='set -e; mount --make-rprivate /'
	if [ "$(unitval PrivateTmp)" = yes ]; then
		sandbox+='; mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp; mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp'
	fi
	if [ "$(unitval PrivateDevices)" = yes ]; then
		sandbox+='; d=$(mktemp -d /run/hsmbridge-dev.XXXXXX); mount -t tmpfs -o mode=755,nosuid,noexec tmpfs "$d"
			for n in null zero full random urandom tty; do touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
			mkdir "$d/pts" "$d/shm"; mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
			ln -s /proc/self/fd "$d/fd"; ln -s /proc/self/fd/0 "$d/stdin"; ln -s /proc/self/fd/1 "$d/stdout"; ln -s /proc/self/fd/2 "$d/stderr"
			mount --move "$d" /dev; rmdir "$d"'
	fi
	if [ "$(unitval ProtectHome)" = yes ]; then
		sandbox+='; for h in /home /root /run/user; do [ ! -d $h ] || mount -t tmpfs -o ro,mode=000 tmpfs $h; done'
	fi
	if [ "$(unitval ProtectSystem)" = strict ]; then
		# Everything read-only but the API file systems, the private
		# temporary folders and the service's own directories.
		sandbox+="; mount --bind $runtime $runtime; mount --bind $state $state"
		sandbox+="; awk '{print \$5}' /proc/self/mountinfo | sort -u | while read -r m; do
			case \$m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/tmp|/var/tmp|$runtime|$state|/home|/root|/run/user) continue ;; esac
			mount -o remount,bind,ro \"\$m\" 2>/dev/null || echo \"sandbox: cannot make \$m read-only\" >&2
		done"
	fi
	privs=(--reuid="$user" --regid="$group" --init-groups)
	if [ "$(unitval NoNewPrivileges)" = yes ]; then privs+=(--no-new-privs); fi
	if grep -q '^CapabilityBoundingSet=$' "$unit"; then privs+=(--bounding-set=-all --inh-caps=-all); fi
	sandbox+="; umask $(unitval UMask); exec setpriv ${privs[*]} env -i ${env[*]} ${execstart[*]}"
	unshare --mount --propagation private /bin/sh -c "$sandbox" > "$work/hsmhost.log" 2>&1 &
	host_pid=$!
	mode=emulated
fi

for _ in $(seq 100); do [ -S $sock ] && break; sleep 0.1; done
[ -S $sock ] || fail "no socket $sock after 10 s"
[ "$(stat -c '%U:%G %a' $sock)" = "hsmbridge:hsmbridge 660" ] || fail "socket is $(stat -c '%U:%G %a' $sock), want hsmbridge:hsmbridge 660"
[ "$(stat -c '%U:%G %a' /run/hsmbridge)" = "hsmbridge:hsmbridge 750" ] || fail "/run/hsmbridge is $(stat -c '%U:%G %a' /run/hsmbridge)"
hpid=${host_pid:-$(systemctl show -p MainPID --value hsmhost)}
[ "$(ps -o user= -p "$hpid")" = hsmbridge ] || fail "hsmhost runs as $(ps -o user= -p "$hpid")"
ok "hsmhost pid $hpid ($mode) as hsmbridge; $sock hsmbridge:hsmbridge 0660 in /run/hsmbridge 0750"
# The sandbox holds for hsmhost and for the plugin it started.
plugin=$(pgrep -P "$hpid" | head -1)
[ -n "$plugin" ] || fail "hsmhost started no plugin"
for p in "$hpid" "$plugin"; do
	grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/$p/status || fail "pid $p may gain privileges"
	grep -q '^CapBnd:[[:space:]]*0*$' /proc/$p/status || fail "pid $p keeps capabilities: $(grep CapBnd /proc/$p/status)"
	awk '$5 == "/" && $6 !~ /(^|,)ro(,|$)/ {bad=1} END {exit bad}' /proc/$p/mountinfo || fail "pid $p sees / writable"
	awk '$5 == "/tmp" {found=1} END {exit !found}' /proc/$p/mountinfo || fail "pid $p has no private /tmp"
	[ "$(ps -o user= -p "$p")" = hsmbridge ] || fail "pid $p runs as $(ps -o user= -p "$p")"
	if [ "$mode" = systemd ]; then
		grep -q '^Seccomp:[[:space:]]*2$' /proc/$p/status || fail "pid $p runs without the unit's system-call filter"
	fi
done
if grep -q '^sandbox:' "$work/hsmhost.log" 2>/dev/null; then fail "$(grep '^sandbox:' "$work/hsmhost.log")"; fi
ok "hsmhost and its plugin (pid $plugin): no new privileges, no capabilities, / read-only, private /tmp"

# Only installed files from here: no build/ on PATH, no module path.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset OPENSSL_MODULES HSMBRIDGE_SOCKET HSMBRIDGE_CONFIG HSMBRIDGE_HSMHOST HSMBRIDGE_STATE_DIR
# openssl.cnf as README says to set it up: the system's, with the
# package's provider sections included at its end.
cnf=$work/openssl.cnf
{ cat "${OPENSSL_CONF:-/etc/ssl/openssl.cnf}"; printf '\n.include /etc/hsmbridge/openssl-hsmbridge.cnf\n'; } > "$cnf"
export OPENSSL_CONF=$cnf
cd "$work"
printf 'hsmbridge test-deb data\n' > data.txt
head -c 4096 /dev/urandom > data.bin

step "the Managed HSM seed's flows (root)"
hsmhost key create managedhsm:MyHSM:mykey --kty RSA --size 3072 --ops sign,decrypt > /dev/null
hsmhost key create managedhsm:MyHSM:myeckey --kty EC --curve P-256 --ops sign > /dev/null
[ "$(hsmhost key list managedhsm:MyHSM: | wc -l)" = 2 ] || fail "key list: $(hsmhost key list managedhsm:MyHSM:)"
ok "hsmhost key create (RSA-3072, P-256), key list"
for key in mykey myeckey; do
	ref=managedhsm:MyHSM:$key
	hsmhost key pubkey $ref > $key.pub.pem
	openssl req -new -provider akv_provider -provider default -key "$ref" \
		-subj "/CN=myserver.example.com" -out $key.csr
	openssl req -in $key.csr -noout -verify 2>&1 | grep -q 'verify OK' || fail "$key: CSR signature does not verify"
	openssl req -new -x509 -provider akv_provider -provider default -key "$ref" \
		-subj "/CN=myserver.example.com" -days 365 -out $key.crt
	openssl verify -CAfile $key.crt $key.crt > /dev/null || fail "$key: the self-signed certificate does not verify"
	cmp -s <(openssl x509 -in $key.crt -noout -pubkey) $key.pub.pem || fail "$key: the certificate's key is not the HSM key"
	openssl dgst -sha256 -provider akv_provider -provider default -sign "$ref" -out $key.sig data.txt
	openssl dgst -sha256 -verify $key.pub.pem -signature $key.sig data.txt > /dev/null || fail "$key: signature does not verify"
	ok "$ref: CSR, self-signed certificate, dgst -sign, each verified with the public key alone"
done
openssl dgst -sha256 -provider akv_provider -provider default -sign "akv:vault=MyHSM,name=mykey" -out akv.sig data.txt
openssl dgst -sha256 -verify mykey.pub.pem -signature akv.sig data.txt > /dev/null || fail "akv: reference: signature does not verify"
ok "akv:vault=MyHSM,name=mykey signs as the same key"

step "the Integrated HSM seed's flows (root)"
PROV=(-propquery "?provider=azihsm" -provider default -provider azihsm_provider)
openssl genpkey "${PROV[@]}" -algorithm EC -pkeyopt group:P-384 \
	-pkeyopt azihsm.masked_key:./ec_p384.bin -outform DER -out /dev/null
openssl dgst -sha384 "${PROV[@]}" -sign "azihsm://./ec_p384.bin;type=ec" -out signature.sig data.bin
openssl dgst -sha384 "${PROV[@]}" -verify "azihsm://./ec_p384.bin;type=ec" -signature signature.sig data.bin > /dev/null ||
	fail "azihsm EC: dgst -verify"
openssl dgst -sha384 -binary -out data.hash data.bin
openssl pkeyutl -sign "${PROV[@]}" -inkey "azihsm://./ec_p384.bin;type=ec" -in data.hash -out data.sig
openssl pkeyutl -verify "${PROV[@]}" -inkey "azihsm://./ec_p384.bin;type=ec" -in data.hash -sigfile data.sig > /dev/null ||
	fail "azihsm EC: pkeyutl -verify"
openssl req -new -x509 "${PROV[@]}" -key "azihsm://./ec_p384.bin;type=ec" -subj /CN=azihsm.example.com -days 30 -out ec.crt
openssl verify -CAfile ec.crt ec.crt > /dev/null || fail "azihsm EC: self-signed certificate"
ok "EC P-384 masked key: genpkey, dgst and pkeyutl sign/verify, req -x509"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out external_rsa.der 2> genpkey.err ||
	{ cat genpkey.err; fail "genpkey RSA"; }
openssl genpkey "${PROV[@]}" -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-pkeyopt azihsm.input_key:./external_rsa.der -pkeyopt azihsm.key_usage:digitalSignature \
	-pkeyopt azihsm.masked_key:./rsa_2048_sign.bin -outform DER -out /dev/null 2> genpkey.err ||
	{ cat genpkey.err; fail "genpkey: RSA import into a masked key"; }
openssl dgst -sha256 "${PROV[@]}" -sign "azihsm://./rsa_2048_sign.bin;type=rsa" -out rsa_sig.bin data.bin
openssl dgst -sha256 "${PROV[@]}" -verify "azihsm://./rsa_2048_sign.bin;type=rsa" -signature rsa_sig.bin data.bin > /dev/null ||
	fail "azihsm RSA: PKCS#1 v1.5 verify"
openssl dgst -sha256 "${PROV[@]}" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max \
	-sign "azihsm://./rsa_2048_sign.bin;type=rsa" -out rsa_pss_sig.bin data.bin
openssl pkey -inform DER -in external_rsa.der -pubout -out external_rsa.pub.pem
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto -verify external_rsa.pub.pem \
	-signature rsa_pss_sig.bin data.bin > /dev/null || fail "azihsm RSA: PSS signature does not verify with the imported key"
ok "RSA-2048 import: PKCS#1 v1.5 and PSS signatures, verified with the imported key's public half"

step "an application user in the group hsmbridge (nobody)"
mkdir app && chown nobody app
as_nobody() { (cd app && setpriv --reuid=nobody --regid=nogroup "$@"); }
as_nobody --groups=hsmbridge env HOME=/nonexistent OPENSSL_CONF="$cnf" \
	openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:mykey -out nobody.sig ../data.txt
openssl dgst -sha256 -verify mykey.pub.pem -signature app/nobody.sig data.txt > /dev/null || fail "nobody's signature does not verify"
ok "nobody, in the group hsmbridge, signs"
if as_nobody --clear-groups env HOME=/nonexistent OPENSSL_CONF="$cnf" openssl dgst -sha256 -provider akv_provider \
	-provider default -sign managedhsm:MyHSM:mykey -out nobody2.sig ../data.txt > app.err 2>&1; then
	fail "nobody outside the group hsmbridge could sign"
fi
ok "nobody outside the group is refused: $(grep -o 'cannot reach hsmhost[^(]*\|Permission denied' app.err | head -1)"

step "reload, stop"
kill -HUP "$hpid"
for _ in $(seq 50); do
	if [ "$mode" = systemd ]; then journalctl -u hsmhost --no-pager | grep -q 'configuration reloaded' && break
	else grep -q 'configuration reloaded' "$work/hsmhost.log" && break; fi
	sleep 0.1
done
if [ "$mode" = systemd ]; then journalctl -u hsmhost --no-pager | grep -q 'configuration reloaded' || fail "SIGHUP: no reload logged"
else grep -q 'configuration reloaded' "$work/hsmhost.log" || fail "SIGHUP: no reload logged"; fi
hsmhost key show managedhsm:MyHSM:mykey > /dev/null || fail "no answer after SIGHUP"
ok "SIGHUP reloads; keys still served"
if [ "$mode" = systemd ]; then
	systemctl stop hsmhost
else
	kill "$host_pid"
	wait "$host_pid" || fail "hsmhost exited with status $? on SIGTERM"
	host_pid=
fi
sleep 0.2
if pgrep -u hsmbridge > /dev/null; then fail "processes of hsmbridge are left: $(pgrep -a -u hsmbridge)"; fi
ok "hsmhost and its plugins stopped"

step "apt-get purge hsmbridge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq hsmbridge > "$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get purge"; }
if dpkg-query -W hsmbridge > /dev/null 2>&1; then fail "dpkg still knows hsmbridge"; fi
left=()
while IFS= read -r f; do
	[ -d "$f" ] && continue # shared folders (/usr/bin ...); ours are checked below
	if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done < "$work/files"
for d in /etc/hsmbridge /usr/lib/hsmbridge /usr/share/doc/hsmbridge /var/lib/hsmbridge /run/hsmbridge \
	/etc/systemd/system/multi-user.target.wants/hsmhost.service /var/lib/systemd/deb-systemd-helper-enabled/hsmhost.service.dsh-also; do
	if [ -e "$d" ] || [ -L "$d" ]; then left+=("$d"); fi
done
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
if getent passwd hsmbridge > /dev/null; then fail "user hsmbridge left after purge"; fi
if getent group hsmbridge > /dev/null; then fail "group hsmbridge left after purge"; fi
ok "no file, folder, user or group of the package left"

printf '\ntest-deb: all passed in %ds\n' $(($(date +%s) - t0))
