#!/bin/sh
# Builds the provider into build/ossl-modules/ (run from anywhere).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
exec make --no-print-directory -f adapters/openssl/Makefile.inc ossl-modules "$@"
