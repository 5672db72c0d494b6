# shellcheck shell=bash disable=SC2034
# Sourced by this example's scripts: the shared backend helpers plus the
# example's own names. Optional settings in .env (or the environment when
# there is no .env): BACKEND (simulator | mhsm-standin | mhsm), HSM_NAME,
# GRPC_PORT (the server sidecar's mTLS port, default 50051 or the next free
# one), NGINX_USER; see ../lib/backend.sh.
# shellcheck source=../lib/backend.sh
# shellcheck source=../lib/backend.sh
. "$EX_DIR/../lib/backend.sh"

CA_REF=managedhsm:$HSM_NAME:${CA_KEY_NAME:-grpc-ca}
SERVER_REF=managedhsm:$HSM_NAME:${SERVER_KEY_NAME:-grpc-server}
CLIENT_REF=managedhsm:$HSM_NAME:${CLIENT_KEY_NAME:-grpc-client}
SUBJ_BASE="/C=US/ST=Washington/L=Redmond/O=Microsoft/OU=Azure HSM Demo"
CERTS=$RUN/certs
SERVER_SOCK=$RUN/server-sock/grpc-server.sock
CLIENT_SOCK=$RUN/client-sock/grpc-client.sock
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# start_sidecar NAME: starts nginx with $RUN/nginx-NAME.conf, given only
# OPENSSL_CONF in its environment.
start_sidecar() {
	say "\$ env -i OPENSSL_CONF=$RUN/openssl.cnf nginx -c $RUN/nginx-$1.conf"
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OPENSSL_CONF="$RUN/openssl.cnf" \
		"$NGINX" -c "$RUN/nginx-$1.conf" -p "$RUN" -e "$RUN/logs/nginx-$1-error.log" ||
		{ tail -20 "$RUN/logs/nginx-$1-error.log" >&2; die "the $1 sidecar did not start (log: $RUN/logs/nginx-$1-error.log)"; }
	for _ in $(seq 50); do [ -s "$RUN/nginx-$1.pid" ] && break; sleep 0.1; done
	hb_alive "$RUN/nginx-$1.pid" || die "the $1 sidecar did not start (log: $RUN/logs/nginx-$1-error.log)"
}

# sidecar_head NAME: the top of a sidecar's nginx.conf.
sidecar_head() {
	cat <<CONF
# Written by $(basename "$0") (BACKEND=$BACKEND).
$(hb_user_line)
worker_processes 1;
pid $RUN/nginx-$1.pid;
error_log $RUN/logs/nginx-$1-error.log info;
env OPENSSL_CONF;
events { worker_connections 256; }
CONF
}

# sidecar_http_common NAME: temp folders and the access log of a sidecar.
sidecar_http_common() {
	cat <<CONF
    log_format mtls '\$remote_addr [\$time_local] "\$request" \$status \$ssl_protocol '
                    'client="\$ssl_client_s_dn" verify=\$ssl_client_verify';
    access_log $RUN/logs/nginx-$1-access.log mtls;
    client_body_temp_path $RUN/tmp/$1/client_body;
    proxy_temp_path $RUN/tmp/$1/proxy;
    fastcgi_temp_path $RUN/tmp/$1/fastcgi;
    uwsgi_temp_path $RUN/tmp/$1/uwsgi;
    scgi_temp_path $RUN/tmp/$1/scgi;
CONF
}

# client_sidecar_conf NAME SOCKET CERT KEY: a client sidecar: plaintext gRPC
# (h2c) on a Unix socket in, mutual TLS to the server sidecar out, with the
# certificate CERT and the key-reference file KEY.
client_sidecar_conf() {
	mkdir -p "$RUN/tmp/$1"
	sidecar_head "$1"
	cat <<CONF
http {
$(sidecar_http_common "$1")
    server {
        # nginx makes the socket 0666; its folder (0700) keeps others out.
        listen unix:$2 http2;

        location / {
            grpc_pass grpcs://127.0.0.1:$GRPC_PORT;

            # The client certificate (public) and its key: a key-reference
            # file naming $CLIENT_REF; the signature that proves the client
            # is made in the backend.
            grpc_ssl_certificate     $3;
            grpc_ssl_certificate_key $4;

            # The server's certificate must chain to our CA and name localhost.
            grpc_ssl_trusted_certificate $CERTS/ca.crt;
            grpc_ssl_verify        on;
            grpc_ssl_verify_depth  1;
            grpc_ssl_name          localhost;
            grpc_ssl_server_name   on;
            grpc_ssl_protocols     TLSv1.2 TLSv1.3;
            # Every upstream connection a full handshake, so each shows the
            # keys at work; in production leave reuse on (fewer HSM calls).
            grpc_ssl_session_reuse off;
        }
    }
}
CONF
}
