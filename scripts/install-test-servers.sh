#!/usr/bin/env bash
# Installs the servers that some end-to-end tests also drive and that
# `make deps` leaves out, being heavy for a developer's machine: Apache
# httpd, Postfix, HAProxy and stunnel (e2e/keyref_forms_test.go). Without
# them those tests skip; CI installs them and sets
# HSMBRIDGE_REQUIRE_SERVERS=1 so that they cannot.
#
# The packages' services are not started (a policy-rc.d that refuses every
# start, for the install only), and Postfix is installed unconfigured: the
# tests run each server on its own files and ports.
set -euo pipefail
packages=(apache2 postfix haproxy stunnel4)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "installing ${missing[*]} (their services are not started)"
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	own_policy=1
fi
trap '[ -z "$own_policy" ] || rm -f "$policy"' EXIT
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
install || { apt-get update -qq && install; }
