#!/usr/bin/env bash
# Builds build/hsmbridge_<version>_<arch>.deb with the system's own tools
# (dpkg-deb; dpkg-shlibdeps for Depends), from `make install PREFIX=/usr`
# into a staging root plus packaging/: the systemd unit, the service's
# config and the openssl.cnf sections (conffiles), and the maintainer
# scripts. Run by `make deb` after the binaries and pages are built.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}

if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "make deb needs dpkg-shlibdeps (apt-get install dpkg-dev)" >&2
		exit 1
	fi
	echo "installing dpkg-dev (dpkg-shlibdeps)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null; }
fi

# The version: the provider's (the one version the code states), then the
# commit, so that every build of a commit sorts after the last and before
# the release (~). DEB_VERSION overrides it.
base=$(sed -n 's/^#define HB_PROV_VERSION "\(.*\)"$/\1/p' adapters/openssl/provider/provider.h)
if [ -z "${DEB_VERSION:-}" ]; then
	if rev=$(git rev-list --count HEAD 2>/dev/null) && hash=$(git rev-parse --short HEAD 2>/dev/null); then
		DEB_VERSION="$base~git$rev.$hash"
	else
		DEB_VERSION="$base~dev"
	fi
fi
arch=$(dpkg --print-architecture)
pkg=$BUILD/deb
root=$pkg/root
rm -rf "$pkg"
mkdir -p "$root/DEBIAN"

# Files (make install decides where: PREFIX=/usr, the module in MODULESDIR).
$MAKE --no-print-directory install DESTDIR="$PWD/$root" PREFIX=/usr >/dev/null
strip --strip-unneeded "$root/usr/bin/hsmhost" "$root"/usr/lib/hsmbridge/plugins/* "$root"/usr/lib/*/ossl-modules/*.so
gzip -9n "$root/usr/share/man/man8/hsmhost.8" "$root/usr/share/man/man7/hsmbridge.7"
install -D -m 0644 packaging/hsmhost.service "$root/lib/systemd/system/hsmhost.service"
install -D -m 0644 packaging/hsmhost.hcl "$root/etc/hsmbridge/hsmhost.hcl"
install -D -m 0644 packaging/openssl-hsmbridge.cnf "$root/etc/hsmbridge/openssl-hsmbridge.cnf"
doc=$root/usr/share/doc/hsmbridge
install -d "$doc"
install -m 0644 README.md docs/CONFIG.md docs/SECURITY.md docs/MANAGED_HSM.md docs/INTEGRATED_HSM.md docs/MASKED_KEYS.md "$doc/"
install -m 0644 adapters/openssl/README.md "$doc/PROVIDER.md"
gzip -9nc CHANGELOG.md > "$doc/changelog.gz"
cat > "$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hsmbridge
Comment: Built from the hsmbridge source tree; the licences of the Go
 modules compiled into hsmhost and the plugins are those of go.sum (and of
 plugins/pkcs11/go.sum for hsmbridge-pkcs11), under their own LICENSE files.
EOF

install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
printf '/etc/hsmbridge/hsmhost.hcl\n/etc/hsmbridge/openssl-hsmbridge.cnf\n' > "$root/DEBIAN/conffiles"

# Depends: what the ELF files link (hsmhost and the simulator link
# libcrypto through cgo, the module libcrypto and libprotobuf-c), as
# dpkg-shlibdeps computes it from the libraries' symbols files, plus what the
# maintainer scripts run.
elves=("$root/usr/bin/hsmhost" "$root"/usr/lib/hsmbridge/plugins/* "$root"/usr/lib/*/ossl-modules/*.so)
shl=$(mktemp -d)
trap 'rm -rf "$shl"' EXIT
mkdir -p "$shl/debian"
printf 'Source: hsmbridge\n\nPackage: hsmbridge\nArchitecture: any\n' > "$shl/debian/control"
abs=()
for f in "${elves[@]}"; do abs+=("$PWD/$f"); done
shlibs=$(cd "$shl" && dpkg-shlibdeps -O "${abs[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "dpkg-shlibdeps found no libraries" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: hsmbridge
Version: $DEB_VERSION
Architecture: $arch
Maintainer: hsmbridge maintainers <hsmbridge@localhost>
Installed-Size: $size
Depends: $shlibs, adduser
Recommends: openssl
Suggests: nginx
Section: utils
Priority: optional
Description: OpenSSL 3 provider and host for keys held in an HSM
 hsmbridge lets any OpenSSL 3 application (openssl, nginx, curl, Python)
 use private keys that never leave a hardware security module, by naming
 the key (managedhsm:MyHSM:mykey) instead of pointing at a key file.
 .
 This package installs the provider module in OpenSSL's modules directory
 (as hsmbridge, akv_provider and azihsm_provider), the hsmhost daemon as the
 systemd service hsmhost.service (user hsmbridge), and the backend plugins:
 a software simulator, Azure Managed HSM, the Azure Integrated HSM device,
 and PKCS#11 (any token that ships a PKCS#11 module).
EOF

(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

out=$BUILD/hsmbridge_${DEB_VERSION}_${arch}.deb
rm -f "$BUILD"/hsmbridge_*.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$out" >/dev/null
echo "$out"
dpkg-deb --field "$out" Package Version Architecture Depends Installed-Size
