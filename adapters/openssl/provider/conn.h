/*
 * Client side of the hsmhost protocol (api/hostapi/host.proto).
 *
 * Each provider instance owns a small pool of connected Unix sockets. A
 * connection is used by one thread at a time: hb_call checks one out, runs a
 * single request/response exchange on it and checks it back in, so any
 * number of threads can sign concurrently, each on its own connection.
 * Messages are encoded and decoded with the protobuf-c generated code only.
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

int hb_pool_init(HB_PROV_CTX *provctx);
void hb_pool_free(HB_PROV_CTX *provctx);

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

/* GetKey; the returned response has result_case KEY. */
Hsmbridge__Host__V1__Response *hb_get_key(HB_PROV_CTX *provctx,
                                          const char *reference);

/* Sign a digest with the key; writes at most sigsize bytes. */
int hb_sign_digest(HB_PROV_CTX *provctx, const char *reference,
                   const char *version, const unsigned char *digest,
                   size_t digest_len,
                   const Hsmbridge__Host__V1__SignatureScheme *scheme,
                   unsigned char *sig, size_t *siglen, size_t sigsize,
                   HB_TIMING *timing);

/* The socket path used when no configuration names one. */
char *hb_default_socket_path(void);

#endif
