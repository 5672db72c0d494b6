/*
 * Random bytes from the backend, as an EVP_RAND named "HSMBRIDGE-RAND".
 *
 * Why a name of its own and not "CTR-DRBG": libcrypto fetches the DRBGs of
 * RAND_bytes() by name, and with no property query it takes the first
 * implementation it finds, which is ours whenever this provider is listed
 * before the default one. A backend-drawing "CTR-DRBG" would then sit under
 * every RAND_bytes() of every program that merely loads the provider, and a
 * host that is down or slow would break or stall programs that never asked
 * for it (the Integrated HSM seed's -propquery ordering trap is of this
 * kind). Under its own name this RAND is used only when it is asked for by
 * name, with the provider's property:
 *
 *   - openssl.cnf: [random] random = HSMBRIDGE-RAND, properties =
 *     provider=azihsm (every DRBG of the program draws from the backend), or
 *     seed = HSMBRIDGE-RAND, seed_properties = provider=azihsm (OpenSSL's
 *     CTR-DRBG keeps generating locally and is seeded from the backend);
 *   - RAND_set_DRBG_type(ctx, "HSMBRIDGE-RAND", "provider=azihsm", NULL,
 *     NULL), RAND_set_seed_source_type(), or EVP_RAND_fetch() directly.
 *
 * Loading the provider never contacts the host; the first request does.
 *
 * The generator keeps no state: every generate() asks hsmhost for fresh
 * bytes (Request.random, empty reference = the host's default route), in
 * chunks of at most HB_RAND_CHUNK bytes, so each call costs at least one
 * round trip and the output is as good as the backend's generator. Additional
 * input and prediction-resistance requests are satisfied trivially (nothing
 * is ever reused). As a parent (seed source) it hands out backend bytes
 * through get_seed().
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conn.h"
#include "errors.h"
#include "provider.h"

/* hsmhost serves at most 64 KiB per Random request. */
#define HB_RAND_CHUNK 65536
#define HB_RAND_STRENGTH 256

typedef struct {
    HB_PROV_CTX *provctx;
    int state; /* EVP_RAND_STATE_* */
    pthread_mutex_t lock;
    int locking;
} HB_RAND_CTX;

/* One Random request; fills exactly len (<= HB_RAND_CHUNK) bytes. */
static int host_random(HB_PROV_CTX *provctx, unsigned char *out, size_t len)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__RandomRequest r =
        HSMBRIDGE__HOST__V1__RANDOM_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    int ok = 0;

    r.reference = "";
    r.length = (uint32_t)len;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_RANDOM;
    req.random = &r;
    /* Not retried on a broken connection: a retry is just another draw,
     * but a host that breaks mid-request should be reported, not hidden. */
    resp = hb_call(provctx, &req, 0, NULL);
    if (resp == NULL)
        return 0;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_RANDOM
        || resp->random == NULL || resp->random->data.len != len) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "hsmhost answered a request for %zu random bytes with %zu",
                 len, resp->random != NULL ? resp->random->data.len : 0);
    } else {
        memcpy(out, resp->random->data.data, len);
        ok = 1;
    }
    /* The response held the bytes too; do not leave them on the heap. */
    if (resp->random != NULL && resp->random->data.data != NULL)
        OPENSSL_cleanse(resp->random->data.data, resp->random->data.len);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return ok;
}

static int draw(HB_PROV_CTX *provctx, unsigned char *out, size_t len)
{
    while (len > 0) {
        size_t n = len > HB_RAND_CHUNK ? HB_RAND_CHUNK : len;

        if (!host_random(provctx, out, n))
            return 0;
        out += n;
        len -= n;
    }
    return 1;
}

/* The parent (a seed source, or our own primary) is not needed. */
static void *rand_newctx(void *provctx, void *parent,
                         const OSSL_DISPATCH *parent_calls)
{
    HB_RAND_CTX *ctx = calloc(1, sizeof(*ctx));

    (void)parent;
    (void)parent_calls;
    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->state = EVP_RAND_STATE_UNINITIALISED;
    return ctx;
}

static void rand_freectx(void *vctx)
{
    HB_RAND_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    if (ctx->locking)
        pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* No host contact here: a program that never draws never needs the host. */
static int rand_instantiate(void *vctx, unsigned int strength,
                            int prediction_resistance,
                            const unsigned char *pstr, size_t pstr_len,
                            const OSSL_PARAM params[])
{
    HB_RAND_CTX *ctx = vctx;

    (void)prediction_resistance; (void)pstr; (void)pstr_len; (void)params;
    if (strength > HB_RAND_STRENGTH) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%u bits of security requested; the backend RAND offers %d",
                 strength, HB_RAND_STRENGTH);
        return 0;
    }
    ctx->state = EVP_RAND_STATE_READY;
    return 1;
}

static int rand_uninstantiate(void *vctx)
{
    ((HB_RAND_CTX *)vctx)->state = EVP_RAND_STATE_UNINITIALISED;
    return 1;
}

static int rand_generate(void *vctx, unsigned char *out, size_t outlen,
                         unsigned int strength, int prediction_resistance,
                         const unsigned char *adin, size_t adin_len)
{
    HB_RAND_CTX *ctx = vctx;

    (void)prediction_resistance; (void)adin; (void)adin_len;
    if (ctx->state != EVP_RAND_STATE_READY) {
        HB_RAISE(ctx->provctx, HB_R_OPERATION_NOT_INITIALIZED,
                 "the backend RAND is not instantiated");
        return 0;
    }
    if (strength > HB_RAND_STRENGTH) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%u bits of security requested; the backend RAND offers %d",
                 strength, HB_RAND_STRENGTH);
        return 0;
    }
    HB_DEBUG("%zu random bytes from the backend", outlen);
    return draw(ctx->provctx, out, outlen);
}

/* Every output is fresh from the backend: reseeding has nothing to do. */
static int rand_reseed(void *vctx, int prediction_resistance,
                       const unsigned char *ent, size_t ent_len,
                       const unsigned char *adin, size_t adin_len)
{
    (void)vctx; (void)prediction_resistance; (void)ent; (void)ent_len;
    (void)adin; (void)adin_len;
    return 1;
}

/* As a parent or seed source: backend bytes as entropy for a child DRBG. */
static size_t rand_get_seed(void *vctx, unsigned char **buffer, int entropy,
                            size_t min_len, size_t max_len,
                            int prediction_resistance,
                            const unsigned char *adin, size_t adin_len)
{
    HB_RAND_CTX *ctx = vctx;
    size_t len = min_len;
    unsigned char *buf;

    (void)prediction_resistance; (void)adin; (void)adin_len;
    /* Full entropy: entropy bits need entropy/8 bytes. */
    if (entropy > 0 && (size_t)(entropy + 7) / 8 > len)
        len = (size_t)(entropy + 7) / 8;
    if (len == 0 || len > max_len) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "seed of %zu bytes asked for (%zu to %zu allowed)", len,
                 min_len, max_len);
        return 0;
    }
    buf = OPENSSL_secure_malloc(len);
    if (buf == NULL)
        return 0;
    if (!draw(ctx->provctx, buf, len)) {
        OPENSSL_secure_clear_free(buf, len);
        return 0;
    }
    *buffer = buf;
    return len;
}

static void rand_clear_seed(void *vctx, unsigned char *buffer, size_t b_len)
{
    (void)vctx;
    OPENSSL_secure_clear_free(buffer, b_len);
}

static int rand_enable_locking(void *vctx)
{
    HB_RAND_CTX *ctx = vctx;

    if (!ctx->locking) {
        if (pthread_mutex_init(&ctx->lock, NULL) != 0)
            return 0;
        ctx->locking = 1;
    }
    return 1;
}

static int rand_lock(void *vctx)
{
    HB_RAND_CTX *ctx = vctx;

    return !ctx->locking || pthread_mutex_lock(&ctx->lock) == 0;
}

static void rand_unlock(void *vctx)
{
    HB_RAND_CTX *ctx = vctx;

    if (ctx->locking)
        pthread_mutex_unlock(&ctx->lock);
}

static const OSSL_PARAM *rand_gettable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM known[] = {
        OSSL_PARAM_int(OSSL_RAND_PARAM_STATE, NULL),
        OSSL_PARAM_uint(OSSL_RAND_PARAM_STRENGTH, NULL),
        OSSL_PARAM_size_t(OSSL_RAND_PARAM_MAX_REQUEST, NULL),
        OSSL_PARAM_END
    };

    (void)vctx; (void)provctx;
    return known;
}

static int rand_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_RAND_CTX *ctx = vctx;
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_STATE);
    if (p != NULL && !OSSL_PARAM_set_int(p, ctx->state))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_STRENGTH);
    if (p != NULL && !OSSL_PARAM_set_uint(p, HB_RAND_STRENGTH))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_MAX_REQUEST);
    if (p != NULL && !OSSL_PARAM_set_size_t(p, HB_RAND_CHUNK))
        return 0;
    return 1;
}

static int rand_verify_zeroization(void *vctx)
{
    (void)vctx;
    return 1; /* no secret state is kept */
}

const OSSL_DISPATCH hb_rand_functions[] = {
    { OSSL_FUNC_RAND_NEWCTX, (void (*)(void))rand_newctx },
    { OSSL_FUNC_RAND_FREECTX, (void (*)(void))rand_freectx },
    { OSSL_FUNC_RAND_INSTANTIATE, (void (*)(void))rand_instantiate },
    { OSSL_FUNC_RAND_UNINSTANTIATE, (void (*)(void))rand_uninstantiate },
    { OSSL_FUNC_RAND_GENERATE, (void (*)(void))rand_generate },
    { OSSL_FUNC_RAND_RESEED, (void (*)(void))rand_reseed },
    { OSSL_FUNC_RAND_GET_SEED, (void (*)(void))rand_get_seed },
    { OSSL_FUNC_RAND_CLEAR_SEED, (void (*)(void))rand_clear_seed },
    { OSSL_FUNC_RAND_ENABLE_LOCKING, (void (*)(void))rand_enable_locking },
    { OSSL_FUNC_RAND_LOCK, (void (*)(void))rand_lock },
    { OSSL_FUNC_RAND_UNLOCK, (void (*)(void))rand_unlock },
    { OSSL_FUNC_RAND_GETTABLE_CTX_PARAMS,
      (void (*)(void))rand_gettable_ctx_params },
    { OSSL_FUNC_RAND_GET_CTX_PARAMS, (void (*)(void))rand_get_ctx_params },
    { OSSL_FUNC_RAND_VERIFY_ZEROIZATION,
      (void (*)(void))rand_verify_zeroization },
    { 0, NULL }
};
