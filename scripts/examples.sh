#!/usr/bin/env bash
# make examples: runs each example exactly as its README says. A README marks
# each runnable block with a line <!-- examples-ci: NAME --> before a ```sh
# fence; every command line of that block runs in turn, in the example's
# folder, and must succeed. Runs examples/nginx on the simulator and on the
# Managed HSM stand-in, and examples/grpc-sidecar on the simulator.
#
# The commands run without OPENSSL_MODULES or OPENSSL_CONF in their
# environment: the examples must load the provider on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# block README NAME: the command lines of the block marked NAME.
block() {
	awk -v name="$2" '
		$0 ~ "<!-- examples-ci: " name " -->" { marked = 1; next }
		marked && /^```/ { if (inside) exit; inside = 1; next }
		inside && NF && $1 !~ /^#/ { print }
	' "$1"
}

# run DIR NAME STOP: runs block NAME of DIR/README.md; on a failure prints
# the example's logs, runs STOP (its stop script) and fails.
run() {
	local dir=$root/examples/$1 name=$2 stop=$3 line start lines
	lines=$(block "$dir/README.md" "$name")
	[ -n "$lines" ] || { echo "examples/$1/README.md has no block <!-- examples-ci: $name -->"; exit 1; }
	printf '\n\033[1m== examples/%s (%s), as its README says\033[0m\n' "$1" "$name"
	if [ -e "$dir/.run" ] || [ -e "$dir/.env" ]; then
		echo "(a previous run left $dir/.run or .env: $stop, then removing them)"
		(cd "$dir" && env -u OPENSSL_MODULES -u OPENSSL_CONF "./$stop" >/dev/null 2>&1) || true
		rm -rf "$dir/.run" "$dir/.env"
	fi
	start=$(date +%s)
	while IFS= read -r line; do
		printf '\n\033[1m$ %s\033[0m\n' "$line"
		if ! (cd "$dir" && env -u OPENSSL_MODULES -u OPENSSL_CONF bash -c "$line"); then
			echo
			echo "FAILED: examples/$1 ($name): $line"
			for f in "$dir"/.run/logs/*; do
				[ -f "$f" ] || continue
				echo "--- last lines of ${f#"$root"/} ---"
				tail -n 25 "$f"
			done
			(cd "$dir" && env -u OPENSSL_MODULES -u OPENSSL_CONF "./$stop" >/dev/null 2>&1) || true
			rm -rf "$dir/.run" "$dir/.env"
			exit 1
		fi
	done <<<"$lines"
	if [ -e "$dir/.run" ]; then
		echo "FAILED: examples/$1 ($name) left $dir/.run behind"
		exit 1
	fi
	printf '\n\033[1m== examples/%s (%s): passed in %ss\033[0m\n' "$1" "$name" "$(($(date +%s) - start))"
}

run nginx simulator cleanup.sh
run nginx mhsm-standin cleanup.sh
run grpc-sidecar simulator stop-demo.sh
