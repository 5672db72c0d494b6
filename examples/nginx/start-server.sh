#!/usr/bin/env bash
# Starts hsmhost (if it is not running) and nginx with two TLS servers: RSA on
# NGINX_PORT, EC on NGINX_PORT_EC. nginx's ssl_certificate_key files are the
# key-reference files of generate-cert.sh; the provider is loaded through
# .run/openssl.cnf, which only nginx's own environment names (OPENSSL_CONF).
set -euo pipefail
EX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"
[ -f "$EX_DIR/.env" ] || die "no .env: run ./setup-env.sh first"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || die "nginx is not installed (Debian: apt-get install nginx-light)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

certs=$RUN/certs
[ -s "$certs/backend" ] || die "no certificates: run ./generate-cert.sh first"
[ "$(cat "$certs/backend")" = "$BACKEND $HSM_NAME $RSA_KEY_NAME $EC_KEY_NAME" ] ||
	die "the certificates were made for '$(cat "$certs/backend")', .env now says '$BACKEND $HSM_NAME $RSA_KEY_NAME $EC_KEY_NAME': run ./generate-cert.sh again"
if hb_alive "$RUN/nginx.pid"; then
	die "nginx already runs (pid $(cat "$RUN/nginx.pid")): ./stop-server.sh first"
fi

echo "=== Starting nginx with keys in $HSM_LABEL ==="
hb_ensure_host
hb_check_worker_reach
for p in "$NGINX_PORT" "$NGINX_PORT_EC"; do
	hb_port_free "$p" || die "port $p is taken: run ./setup-env.sh again (it picks free ports) or edit .env"
done

mkdir -p "$RUN/tmp"
server_block() { # KIND PORT KEY-NAME TYPE
	cat <<CONF
    server {
        listen 127.0.0.1:$2 ssl;
        server_name ${SERVER_NAME:-localhost};

        # Certificate (public), a file.
        ssl_certificate     $certs/server-$1.crt;
        # Private key: a key-reference file naming managedhsm:$HSM_NAME:$3.
        # The key stays in the backend; every handshake's signature is made
        # there, through the provider and hsmhost.
        ssl_certificate_key $certs/server-$1.key;

        location / {
            default_type text/plain;
            return 200 "Hello from Nginx with $HSM_LABEL keyless TLS!\n\nServer Time: \$time_local\nSSL Protocol: \$ssl_protocol\nSSL Cipher: \$ssl_cipher\nKey: managedhsm:$HSM_NAME:$3 ($4)\n";
        }

        location = /health {
            default_type application/json;
            return 200 '{"status": "healthy", "ssl": true, "hsm": "$HSM_LABEL"}\n';
        }
    }
CONF
}
cat >"$RUN/nginx.conf" <<CONF
# Written by start-server.sh from .env (BACKEND=$BACKEND).
$(hb_user_line)
worker_processes 2;
pid $RUN/nginx.pid;
error_log $RUN/logs/nginx-error.log info;
# The workers keep OPENSSL_CONF (nginx clears the rest of the environment).
env OPENSSL_CONF;

events { worker_connections 256; }

http {
    access_log $RUN/logs/access.log;
    client_body_temp_path $RUN/tmp/client_body;
    proxy_temp_path $RUN/tmp/proxy;
    fastcgi_temp_path $RUN/tmp/fastcgi;
    uwsgi_temp_path $RUN/tmp/uwsgi;
    scgi_temp_path $RUN/tmp/scgi;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;

$(server_block rsa "$NGINX_PORT" "$RSA_KEY_NAME" RSA)

$(server_block ec "$NGINX_PORT_EC" "$EC_KEY_NAME" EC)
}
CONF

# Only this nginx gets OPENSSL_CONF, and nothing else from this shell (no
# Azure credential, no OPENSSL_MODULES).
say "\$ env -i OPENSSL_CONF=$RUN/openssl.cnf nginx -c $RUN/nginx.conf -p $RUN"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OPENSSL_CONF="$RUN/openssl.cnf" \
	"$NGINX" -c "$RUN/nginx.conf" -p "$RUN" -e "$RUN/logs/nginx-error.log" ||
	{ tail -20 "$RUN/logs/nginx-error.log" >&2; die "nginx did not start (log: $RUN/logs/nginx-error.log)"; }
for p in "$NGINX_PORT" "$NGINX_PORT_EC"; do
	hb_wait_port "$p" "$RUN/nginx.pid" || { tail -20 "$RUN/logs/nginx-error.log" >&2; die "nginx does not listen on $p"; }
done
master=$(cat "$RUN/nginx.pid")
workers=$(ps -o pid= --ppid "$master" | xargs)
ok "nginx master pid $master, workers $workers as $(ps -o user= --ppid "$master" | sort -u | xargs)"
ok "RSA: https://localhost:$NGINX_PORT/   EC: https://localhost:$NGINX_PORT_EC/"
echo
echo "Try: curl --cacert $certs/server-rsa.crt https://localhost:$NGINX_PORT/"
echo "     (or curl -k https://localhost:$NGINX_PORT/), or ./test-client.sh"
