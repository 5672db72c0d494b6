/*
 * OSSL_STORE loader for managedhsm:, akv: and hsmbridge: key references,
 * and for azihsm:// masked-key files (store_azihsm.c).
 *
 * The URI is the reference: load() asks the host for the key (GetKey) and
 * passes a key object by reference (OSSL_OBJECT_PARAM_REFERENCE holds the
 * address of our key object), which libcrypto hands to our keymgmt's
 * load(). Keys are the only objects these URIs name.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_object.h>
#include <openssl/store.h>

#include "aeskw.h"
#include "conn.h"
#include "errors.h"
#include "provider.h"

static int load_key_object(HB_PROV_CTX *provctx, const char *reference,
                           const char *want_type, int public_only,
                           OSSL_CALLBACK *cb, void *cbarg, int *delivered)
{
    Hsmbridge__Host__V1__Response *resp;
    HB_KEY *key;

    *delivered = 0;
    resp = hb_get_key(provctx, reference);
    if (resp == NULL)
        return 0;
    key = hb_key_from_info(provctx, resp->key);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    if (key == NULL)
        return 0;
    return hb_deliver_key_object(provctx, key, want_type, public_only, cb,
                                 cbarg, delivered);
}

int hb_load_key_object(HB_PROV_CTX *provctx, const char *reference,
                       const char *want_type, OSSL_CALLBACK *cb, void *cbarg,
                       int *delivered)
{
    return load_key_object(provctx, reference, want_type, 0, cb, cbarg,
                           delivered);
}

/*
 * libcrypto files a key that has a private half as a private key, and an
 * application that expects a public key (`openssl dgst -verify URI`) skips
 * it; so that one gets the public half alone, as a local key.
 */
static HB_KEY *public_half(HB_KEY *key)
{
    HB_KEY *pub;

    if (key->reference == NULL || key->pkey == NULL)
        return key;
    pub = hb_key_new(key->provctx, key->type);
    if (pub == NULL)
        return key;
    pub->pss = key->pss;
    EVP_PKEY_up_ref(key->pkey);
    pub->pkey = key->pkey;
    return pub;
}

int hb_deliver_key_object(HB_PROV_CTX *provctx, HB_KEY *key,
                          const char *want_type, int public_only,
                          OSSL_CALLBACK *cb, void *cbarg, int *delivered)
{
    OSSL_PARAM params[5];
    int object_type = OSSL_OBJECT_PKEY, ok;
    const char *data_type;
    HB_KEY *pub;

    (void)provctx;
    *delivered = 0;
    data_type = key->type == HB_KT_RSA ? (key->pss ? "RSA-PSS" : "RSA")
        : key->type == HB_KT_EC ? "EC" : HB_AES_KW_NAME;
    if (want_type != NULL && strcmp(want_type, data_type) != 0) {
        hb_key_free(key);
        return 1; /* not for this caller; someone else may want it */
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                 (char *)data_type, 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE,
                                                  &key, sizeof(key));
    params[3] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC,
                                                 key->reference, 0);
    params[4] = OSSL_PARAM_construct_end();
    pub = public_only ? public_half(key) : key;
    if (pub != key)
        params[2] = OSSL_PARAM_construct_octet_string(
            OSSL_OBJECT_PARAM_REFERENCE, &pub, sizeof(pub));
    ok = cb(params, cbarg);
    *delivered = 1;
    /* keymgmt load() took its own reference if it wanted the key. */
    if (pub != key)
        hb_key_free(pub);
    hb_key_free(key);
    return ok;
}

typedef struct {
    HB_PROV_CTX *provctx;
    char *uri;
    int expect;
    int done;
    HB_KEY *key; /* azihsm://: opened with the store, so errors fail the open */
} HB_STORE_CTX;

static void *store_open(void *provctx, const char *uri)
{
    HB_STORE_CTX *ctx;

    if (uri == NULL)
        return NULL;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->uri = hb_strdup(uri);
    if (ctx->uri == NULL) {
        free(ctx);
        return NULL;
    }
    /*
     * A file that is missing or a blob the host refuses should fail the
     * open, like a missing file: libcrypto takes a failed load() of a
     * single-object store for its end.
     */
    if (strncasecmp(uri, "azihsm:", 7) == 0
        && (ctx->key = hb_azihsm_open_key(provctx, uri)) == NULL) {
        free(ctx->uri);
        free(ctx);
        return NULL;
    }
    HB_DEBUG("open %s", uri);
    return ctx;
}

static const OSSL_PARAM *store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
        OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_PROPERTIES, NULL, 0),
        OSSL_PARAM_END
    };

    (void)provctx;
    return settable;
}

static int store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    HB_STORE_CTX *ctx = loaderctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    if (p != NULL && !OSSL_PARAM_get_int(p, &ctx->expect))
        return 0;
    return 1;
}

static int store_load(void *loaderctx, OSSL_CALLBACK *object_cb,
                      void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                      void *pw_cbarg)
{
    HB_STORE_CTX *ctx = loaderctx;
    int delivered;

    (void)pw_cb;
    (void)pw_cbarg;
    if (ctx->done)
        return 0;
    ctx->done = 1;
    /* Only keys live behind these URIs. */
    if (ctx->expect != 0 && ctx->expect != OSSL_STORE_INFO_PKEY
        && ctx->expect != OSSL_STORE_INFO_PUBKEY)
        return 1;
    if (ctx->key != NULL) {
        HB_KEY *key = ctx->key;

        ctx->key = NULL;
        return hb_deliver_key_object(ctx->provctx, key, NULL,
                                     ctx->expect == OSSL_STORE_INFO_PUBKEY,
                                     object_cb, object_cbarg, &delivered);
    }
    return load_key_object(ctx->provctx, ctx->uri, NULL,
                           ctx->expect == OSSL_STORE_INFO_PUBKEY, object_cb,
                           object_cbarg, &delivered);
}

static int store_eof(void *loaderctx)
{
    return ((HB_STORE_CTX *)loaderctx)->done;
}

static int store_close(void *loaderctx)
{
    HB_STORE_CTX *ctx = loaderctx;

    if (ctx != NULL) {
        hb_key_free(ctx->key);
        free(ctx->uri);
        free(ctx);
    }
    return 1;
}

const OSSL_DISPATCH hb_store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (void (*)(void))store_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
      (void (*)(void))store_settable_ctx_params },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))store_set_ctx_params },
    { OSSL_FUNC_STORE_LOAD, (void (*)(void))store_load },
    { OSSL_FUNC_STORE_EOF, (void (*)(void))store_eof },
    { OSSL_FUNC_STORE_CLOSE, (void (*)(void))store_close },
    { 0, NULL }
};
