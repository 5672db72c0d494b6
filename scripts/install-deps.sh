#!/usr/bin/env bash
# Installs what building and testing hsmbridge needs on Debian 12, when it is
# missing. Needs root for apt-get; without root it only reports what is missing.
set -euo pipefail

packages=(gcc make pkg-config libssl-dev libprotobuf-c-dev openssl curl nginx-light procps python3 valgrind softhsm2 opensc libengine-pkcs11-openssl)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# The nginx package starts a default server on install; keep it stopped,
	# the tests run their own.
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
fi

if ! command -v go >/dev/null 2>&1; then
	for d in /usr/local/go/bin /usr/lib/go/bin; do
		[ -x "$d/go" ] && { echo "go is in $d: add it to PATH" >&2; exit 1; }
	done
	echo "Go 1.24 or newer is needed (https://go.dev/doc/install); Debian 12's golang-go is too old" >&2
	exit 1
fi
