/*
 * SHA-1, SHA-256, SHA-384 and SHA-512 under the provider's own property.
 *
 * Hashing is public computation: sending data over the socket to be hashed
 * would only add latency. These are thin wrappers around the default
 * provider's digests in the private library context, so the results are
 * exactly OpenSSL's. They exist so that a property query that names this
 * provider ("?provider=azihsm", or a mandatory "provider=azihsm") finds
 * digests here, as applications written for the Integrated HSM provider
 * expect (`openssl dgst -sha256 -propquery "?provider=azihsm" ...`).
 *
 * The names are the default provider's, so EVP_MD_is_a() and the digest
 * checks of other providers' signature code accept these objects.
 */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "provider.h"

typedef enum { HB_MD_SHA1, HB_MD_SHA256, HB_MD_SHA384, HB_MD_SHA512,
               HB_MD_COUNT } hb_md_id;

static const char *const md_names[HB_MD_COUNT] = {
    "SHA1", "SHA2-256", "SHA2-384", "SHA2-512"
};

/*
 * The default provider's implementations, fetched from the private context
 * on first use and dropped before it is freed (hb_digest_release(), from the
 * last teardown): a mutex, not pthread_once, so that a later instance
 * fetches again from the new context.
 */
static pthread_mutex_t md_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_MD *md_impl[HB_MD_COUNT];
static int md_fetched;

static const EVP_MD *md_get(hb_md_id id)
{
    const EVP_MD *md;
    OSSL_LIB_CTX *priv;
    int i;

    pthread_mutex_lock(&md_lock);
    if (!md_fetched && (priv = hb_priv_libctx()) != NULL) {
        for (i = 0; i < HB_MD_COUNT; i++)
            md_impl[i] = EVP_MD_fetch(priv, md_names[i], NULL);
        md_fetched = 1;
    }
    md = md_impl[id];
    pthread_mutex_unlock(&md_lock);
    return md;
}

void hb_digest_release(void)
{
    int i;

    pthread_mutex_lock(&md_lock);
    for (i = 0; i < HB_MD_COUNT; i++) {
        EVP_MD_free(md_impl[i]);
        md_impl[i] = NULL;
    }
    md_fetched = 0;
    pthread_mutex_unlock(&md_lock);
}

typedef struct {
    HB_PROV_CTX *provctx;
    hb_md_id id;
    EVP_MD_CTX *mdctx;
} HB_MD_CTX;

static void *md_newctx(void *provctx, hb_md_id id)
{
    HB_MD_CTX *ctx;

    if (md_get(id) == NULL) {
        HB_RAISE(provctx, HB_R_INTERNAL,
                 "the default provider's %s is not available", md_names[id]);
        return NULL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->id = id;
    ctx->mdctx = EVP_MD_CTX_new();
    if (ctx->mdctx == NULL) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void md_freectx(void *vctx)
{
    HB_MD_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    EVP_MD_CTX_free(ctx->mdctx);
    free(ctx);
}

static void *md_dupctx(void *vctx)
{
    HB_MD_CTX *src = vctx, *ctx;

    if (src == NULL)
        return NULL;
    ctx = md_newctx(src->provctx, src->id);
    if (ctx == NULL)
        return NULL;
    /* Copying an uninitialised context is valid and copies nothing. */
    if (EVP_MD_CTX_get0_md(src->mdctx) != NULL
        && !EVP_MD_CTX_copy_ex(ctx->mdctx, src->mdctx)) {
        md_freectx(ctx);
        return NULL;
    }
    return ctx;
}

static int md_init(void *vctx, const OSSL_PARAM params[])
{
    HB_MD_CTX *ctx = vctx;

    return EVP_DigestInit_ex2(ctx->mdctx, md_get(ctx->id), params);
}

static int md_update(void *vctx, const unsigned char *in, size_t inl)
{
    HB_MD_CTX *ctx = vctx;

    return EVP_DigestUpdate(ctx->mdctx, in, inl);
}

static int md_final(void *vctx, unsigned char *out, size_t *outl,
                    size_t outsz)
{
    HB_MD_CTX *ctx = vctx;
    unsigned int n = 0;
    int size = EVP_MD_get_size(md_get(ctx->id));

    if (size <= 0 || outsz < (size_t)size) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "%s output needs %d bytes, buffer holds %zu", md_names[ctx->id],
                 size, outsz);
        return 0;
    }
    if (!EVP_DigestFinal_ex(ctx->mdctx, out, &n))
        return 0;
    *outl = n;
    return 1;
}

static int md_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_MD_CTX *ctx = vctx;

    if (params == NULL || params->key == NULL)
        return 1;
    return EVP_MD_CTX_set_params(ctx->mdctx, params);
}

static int md_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_MD_CTX *ctx = vctx;

    if (params == NULL || params->key == NULL)
        return 1;
    return EVP_MD_CTX_get_params(ctx->mdctx, params);
}

/* Algorithm parameters (block size, size, flags) are the default's. */
static int md_get_params(hb_md_id id, OSSL_PARAM params[])
{
    const EVP_MD *md = md_get(id);

    return md != NULL && EVP_MD_get_params(md, params);
}

static const OSSL_PARAM *md_gettable_params(hb_md_id id)
{
    const EVP_MD *md = md_get(id);

    return md != NULL ? EVP_MD_gettable_params(md) : NULL;
}

static const OSSL_PARAM *md_settable_ctx_params(hb_md_id id)
{
    const EVP_MD *md = md_get(id);

    return md != NULL ? EVP_MD_settable_ctx_params(md) : NULL;
}

static const OSSL_PARAM *md_gettable_ctx_params(hb_md_id id)
{
    const EVP_MD *md = md_get(id);

    return md != NULL ? EVP_MD_gettable_ctx_params(md) : NULL;
}

#define HB_DIGEST(lc, ID) \
    static void *lc##_newctx(void *provctx) \
    { \
        return md_newctx(provctx, ID); \
    } \
    static int lc##_get_params(OSSL_PARAM params[]) \
    { \
        return md_get_params(ID, params); \
    } \
    static const OSSL_PARAM *lc##_gettable_params(void *provctx) \
    { \
        (void)provctx; \
        return md_gettable_params(ID); \
    } \
    static const OSSL_PARAM *lc##_settable_ctx_params(void *dctx, \
                                                      void *provctx) \
    { \
        (void)dctx; (void)provctx; \
        return md_settable_ctx_params(ID); \
    } \
    static const OSSL_PARAM *lc##_gettable_ctx_params(void *dctx, \
                                                      void *provctx) \
    { \
        (void)dctx; (void)provctx; \
        return md_gettable_ctx_params(ID); \
    } \
    const OSSL_DISPATCH hb_##lc##_digest_functions[] = { \
        { OSSL_FUNC_DIGEST_NEWCTX, (void (*)(void))lc##_newctx }, \
        { OSSL_FUNC_DIGEST_INIT, (void (*)(void))md_init }, \
        { OSSL_FUNC_DIGEST_UPDATE, (void (*)(void))md_update }, \
        { OSSL_FUNC_DIGEST_FINAL, (void (*)(void))md_final }, \
        { OSSL_FUNC_DIGEST_FREECTX, (void (*)(void))md_freectx }, \
        { OSSL_FUNC_DIGEST_DUPCTX, (void (*)(void))md_dupctx }, \
        { OSSL_FUNC_DIGEST_GET_PARAMS, (void (*)(void))lc##_get_params }, \
        { OSSL_FUNC_DIGEST_GETTABLE_PARAMS, \
          (void (*)(void))lc##_gettable_params }, \
        { OSSL_FUNC_DIGEST_SET_CTX_PARAMS, (void (*)(void))md_set_ctx_params }, \
        { OSSL_FUNC_DIGEST_SETTABLE_CTX_PARAMS, \
          (void (*)(void))lc##_settable_ctx_params }, \
        { OSSL_FUNC_DIGEST_GET_CTX_PARAMS, (void (*)(void))md_get_ctx_params }, \
        { OSSL_FUNC_DIGEST_GETTABLE_CTX_PARAMS, \
          (void (*)(void))lc##_gettable_ctx_params }, \
        { 0, NULL } \
    };

HB_DIGEST(sha1, HB_MD_SHA1)
HB_DIGEST(sha256, HB_MD_SHA256)
HB_DIGEST(sha384, HB_MD_SHA384)
HB_DIGEST(sha512, HB_MD_SHA512)
