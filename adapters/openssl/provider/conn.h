/*
 * Client side of the hsmhost protocol (api/hostapi/host.proto).
 *
 * Each provider instance owns a small pool of connected Unix sockets. A
 * connection is used by one thread at a time: hb_call checks one out, runs a
 * single request/response exchange on it and checks it back in, so any
 * number of threads can sign concurrently, each on its own connection.
 * Messages are encoded and decoded with the protobuf-c generated code only.
 * Only a socket whose owner, folder and listening process are trusted is
 * used (socket.c); while the host is unavailable requests fail at once
 * (breaker.c).
 */
#ifndef HSMBRIDGE_CONN_H
#define HSMBRIDGE_CONN_H

#include "provider.h"
#include "host.pb-c.h"

typedef struct hb_timing {
    uint64_t total_ns;   /* whole round trip, measured here */
    uint64_t host_ns;    /* Response.timing, as reported by hsmhost */
    uint64_t backend_ns;
    uint64_t plugin_ns;
} HB_TIMING;

/*
 * The benchmark hook (bench/signbench.c): the timing of an operation
 * context's last request, as gettable context parameters.
 */
#define HB_PARAM_LAST_TOTAL "hsmbridge-last-total-ns"
#define HB_PARAM_LAST_HOST "hsmbridge-last-host-ns"
#define HB_PARAM_LAST_BACKEND "hsmbridge-last-backend-ns"
#define HB_PARAM_LAST_PLUGIN "hsmbridge-last-plugin-ns"

int hb_pool_init(HB_PROV_CTX *provctx);
void hb_pool_free(HB_PROV_CTX *provctx);

/*
 * The connection settings of the provider's openssl.cnf section, each NULL
 * when absent: hsmbridge_host_uid (user names or uids, comma- or
 * space-separated), hsmbridge_timeout_ms (overrides HSMBRIDGE_TIMEOUT_MS)
 * and hsmbridge_retry_ms (the circuit-breaker window, default 1000, 0 off).
 * A value that is not valid is kept as provctx->conf_error, and every
 * request then fails with it.
 */
void hb_conn_configure(HB_PROV_CTX *provctx, const char *host_uid,
                       const char *timeout_ms, const char *retry_ms);

/*
 * Sends req and returns the host's answer, which the caller frees with
 * hsmbridge__host__v1__response__free_unpacked(resp, NULL). On any failure,
 * including an error reported by the host, an error is raised and NULL is
 * returned. idempotent requests are retried once on a fresh connection when
 * the connection breaks.
 */
Hsmbridge__Host__V1__Response *hb_call(HB_PROV_CTX *provctx,
                                       Hsmbridge__Host__V1__Request *req,
                                       int idempotent, HB_TIMING *timing);

/*
 * hb_call, with every error message the host returns prefixed by "prefix: "
 * (a file name, when the request carries a blob read from that file).
 */
Hsmbridge__Host__V1__Response *hb_call_prefixed(HB_PROV_CTX *provctx,
                                                Hsmbridge__Host__V1__Request *req,
                                                int idempotent,
                                                HB_TIMING *timing,
                                                const char *prefix);

/*
 * Masked-key handles in requests (store_azihsm.c). A swap records the
 * request fields rewritten to a newer handle, so the caller's request is
 * given back unchanged.
 */
typedef struct hb_masked_swap {
    char **ref_field, **ver_field;
    char *orig_ref, *orig_ver;
    char *new_ref, *new_ver;
} HB_MASKED_SWAP;

/* Whether req names an azihsm:// key by a handle (reference pin or version). */
int hb_masked_names_handle(const Hsmbridge__Host__V1__Request *req);
/* Points req at the current handle if its own was replaced by a re-open. */
void hb_masked_refresh(Hsmbridge__Host__V1__Request *req, HB_MASKED_SWAP *swap);
/*
 * After NOT_FOUND: opens the blob again (once per lost handle, whatever the
 * number of threads) and points req at the new handle. 1: retry; 0: req
 * names no blob of ours; -1: the re-open failed (error raised).
 */
int hb_masked_reopen(HB_PROV_CTX *provctx, Hsmbridge__Host__V1__Request *req,
                     HB_MASKED_SWAP *swap);
void hb_masked_restore(Hsmbridge__Host__V1__Request *req, HB_MASKED_SWAP *swap);

/* GetKey; the returned response has result_case KEY. */
Hsmbridge__Host__V1__Response *hb_get_key(HB_PROV_CTX *provctx,
                                          const char *reference);

/* Sign a digest with the key; writes at most sigsize bytes. message, when
 * not NULL, is what the digest was computed from (for backends that hash in
 * the device); hsmhost checks that it hashes to the digest. */
int hb_sign_digest(HB_PROV_CTX *provctx, const char *reference,
                   const char *version, const unsigned char *digest,
                   size_t digest_len, const unsigned char *message,
                   size_t message_len,
                   const Hsmbridge__Host__V1__SignatureScheme *scheme,
                   unsigned char *sig, size_t *siglen, size_t sigsize,
                   HB_TIMING *timing);

/* The socket path used when no configuration names one. */
char *hb_default_socket_path(void);

#endif
