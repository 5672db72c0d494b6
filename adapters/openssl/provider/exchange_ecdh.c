/*
 * ECDH key exchange with a backend EC key (keyAgreement usage).
 *
 * The shared secret never enters the application: hsmhost answers an
 * AgreeRequest with the secret masked, and the provider writes that blob to
 * the file named by the mandatory output_file parameter, relative to the
 * application's working directory. As the Integrated HSM seed documents,
 * the caller's buffer is not used and the reported secret length is 0
 * (`openssl pkeyutl -derive ... -pkeyopt output_file:secret.bin`). The
 * masked secret is the input of HKDF (kdf_hkdf.c).
 *
 * The size query (no buffer) answers the curve's secret size, so callers
 * that allocate first (openssl pkeyutl) get a buffer; the actual derive
 * then reports 0 bytes.
 *
 * Keys without a reference are local keys (keymgmt.c), e.g. TLS key
 * shares when this provider is activated first: the default provider does
 * their ECDH in the private library context, with every parameter passed on.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "derive.h"
#include "errors.h"
#include "masked.h"

typedef struct {
    HB_PROV_CTX *provctx;
    HB_KEY *key;
    HB_KEY *peer;
    char *output_file;
    EVP_PKEY_CTX *local; /* local keys: the default provider's ECDH */
} HB_ECDH_CTX;

static void *ecdh_newctx(void *provctx)
{
    HB_ECDH_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL)
        ctx->provctx = provctx;
    return ctx;
}

static void ecdh_freectx(void *vctx)
{
    HB_ECDH_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    hb_key_free(ctx->key);
    hb_key_free(ctx->peer);
    free(ctx->output_file);
    EVP_PKEY_CTX_free(ctx->local);
    free(ctx);
}

static void *ecdh_dupctx(void *vctx)
{
    HB_ECDH_CTX *src = vctx, *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = src->provctx;
    if (src->key != NULL && hb_key_up_ref(src->key))
        ctx->key = src->key;
    if (src->peer != NULL && hb_key_up_ref(src->peer))
        ctx->peer = src->peer;
    if (src->output_file != NULL
        && (ctx->output_file = strdup(src->output_file)) == NULL)
        goto err;
    if (src->local != NULL && (ctx->local = EVP_PKEY_CTX_dup(src->local)) == NULL)
        goto err;
    return ctx;
err:
    ecdh_freectx(ctx);
    return NULL;
}

static int is_backend(const HB_KEY *key)
{
    return key != NULL && key->reference != NULL;
}

static int ecdh_set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int ecdh_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    HB_ECDH_CTX *ctx = vctx;
    HB_KEY *key = provkey;

    if (ctx == NULL || key == NULL || key->magic != HB_KEY_MAGIC
        || key->type != HB_KT_EC || key->pkey == NULL) {
        HB_RAISE(ctx != NULL ? ctx->provctx : NULL, HB_R_BAD_KEY,
                 "ECDH needs an EC key");
        return 0;
    }
    hb_key_free(ctx->key);
    hb_key_free(ctx->peer);
    ctx->peer = NULL;
    EVP_PKEY_CTX_free(ctx->local);
    ctx->local = NULL;
    hb_key_up_ref(key);
    ctx->key = key;
    if (!is_backend(key)) {
        if (!key->local_private) {
            HB_RAISE(ctx->provctx, HB_R_NOT_AN_HSM_KEY,
                     "ECDH needs a private key; this EC key is public only");
            return 0;
        }
        ctx->local = EVP_PKEY_CTX_new_from_pkey(hb_priv_libctx(), key->pkey,
                                                NULL);
        if (ctx->local == NULL || EVP_PKEY_derive_init(ctx->local) <= 0)
            return 0;
    }
    return ecdh_set_ctx_params(ctx, params);
}

static int ecdh_set_peer(void *vctx, void *provkey)
{
    HB_ECDH_CTX *ctx = vctx;
    HB_KEY *peer = provkey;

    if (peer == NULL || peer->magic != HB_KEY_MAGIC || peer->type != HB_KT_EC
        || peer->pkey == NULL) {
        HB_RAISE(ctx->provctx, HB_R_BAD_KEY, "the ECDH peer key is not an EC key");
        return 0;
    }
    if (ctx->local != NULL && EVP_PKEY_derive_set_peer(ctx->local, peer->pkey) <= 0)
        return 0;
    hb_key_free(ctx->peer);
    hb_key_up_ref(peer);
    ctx->peer = peer;
    return 1;
}

/* AgreeRequest; returns the masked secret (free with OPENSSL_free). */
static unsigned char *agree(HB_ECDH_CTX *ctx, size_t *bloblen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__AgreeRequest a = HSMBRIDGE__HOST__V1__AGREE_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    unsigned char *der = NULL, *blob = NULL;
    int derlen;

    derlen = i2d_PUBKEY(ctx->peer->pkey, &der);
    if (derlen <= 0) {
        HB_RAISE(ctx->provctx, HB_R_BAD_KEY,
                 "%s: cannot encode the ECDH peer's public key",
                 ctx->key->reference);
        return NULL;
    }
    a.reference = ctx->key->reference;
    a.version = ctx->key->version;
    a.peer_public_key_der.data = der;
    a.peer_public_key_der.len = (size_t)derlen;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_AGREE;
    req.agree = &a;
    /* Not idempotent in effect (a new blob each time), but harmless to redo. */
    resp = hb_call(ctx->provctx, &req, 1, NULL);
    OPENSSL_free(der);
    if (resp == NULL)
        return NULL;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_MASKED
        || resp->masked == NULL || resp->masked->blob.len == 0) {
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered ECDH without a masked secret",
                 ctx->key->reference);
    } else if ((blob = OPENSSL_memdup(resp->masked->blob.data,
                                      resp->masked->blob.len)) != NULL) {
        *bloblen = resp->masked->blob.len;
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return blob;
}

static int ecdh_derive(void *vctx, unsigned char *secret, size_t *secretlen,
                       size_t outlen)
{
    HB_ECDH_CTX *ctx = vctx;
    unsigned char *blob;
    size_t bloblen = 0;
    int ok;

    if (ctx->key == NULL || ctx->peer == NULL) {
        HB_RAISE(ctx->provctx, HB_R_OPERATION_NOT_INITIALIZED,
                 ctx->key == NULL ? "ECDH: no key" : "ECDH: no peer key");
        return 0;
    }
    if (ctx->local != NULL) {
        *secretlen = outlen;
        return EVP_PKEY_derive(ctx->local, secret, secretlen) > 0;
    }
    if (secret == NULL) {
        /* Only a size for the caller's buffer, which stays unused. */
        *secretlen = (size_t)(EVP_PKEY_get_bits(ctx->key->pkey) + 7) / 8;
        return 1;
    }
    if (ctx->output_file == NULL || *ctx->output_file == '\0') {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: ECDH with a backend key needs output_file (-pkeyopt "
                 "output_file:<path>): the shared secret never leaves the "
                 "backend in clear, it is written to that file masked",
                 ctx->key->reference);
        return 0;
    }
    blob = agree(ctx, &bloblen);
    if (blob == NULL)
        return 0;
    ok = hb_write_private_file(ctx->provctx, ctx->output_file,
                               "masked shared secret file", blob, bloblen);
    OPENSSL_free(blob);
    if (!ok)
        return 0;
    HB_DEBUG("ECDH with %s: masked secret (%zu bytes) written to %s",
             ctx->key->reference, bloblen, ctx->output_file);
    /* The seed's contract: nothing in the buffer, a length of 0. */
    *secretlen = 0;
    return 1;
}

static int ecdh_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_ECDH_CTX *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, HB_PARAM_OUTPUT_FILE);
    if (p != NULL) {
        char *s = NULL;

        if (!OSSL_PARAM_get_utf8_string(p, &s, 0)) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "output_file must be a path");
            return 0;
        }
        free(ctx->output_file);
        ctx->output_file = strdup(s);
        OPENSSL_free(s);
        if (ctx->output_file == NULL)
            return 0;
    }
    /* The default provider's ECDH parameters (cofactor mode, X9.63 KDF). */
    if (ctx->local != NULL) {
        OSSL_PARAM rest[16];
        size_t n = 0;

        for (p = params; p->key != NULL && n + 1 < sizeof(rest) / sizeof(rest[0]); p++)
            if (strcmp(p->key, HB_PARAM_OUTPUT_FILE) != 0)
                rest[n++] = *p;
        rest[n] = OSSL_PARAM_construct_end();
        if (n > 0 && EVP_PKEY_CTX_set_params(ctx->local, rest) <= 0)
            return 0;
    }
    return 1;
}

static const OSSL_PARAM ecdh_settable[] = {
    OSSL_PARAM_utf8_string(HB_PARAM_OUTPUT_FILE, NULL, 0),
    OSSL_PARAM_int(OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_size_t(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, NULL),
    OSSL_PARAM_octet_string(OSSL_EXCHANGE_PARAM_KDF_UKM, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *ecdh_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdh_settable;
}

static const OSSL_PARAM ecdh_gettable[] = {
    OSSL_PARAM_int(OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST, NULL, 0),
    OSSL_PARAM_size_t(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, NULL),
    OSSL_PARAM_octet_ptr(OSSL_EXCHANGE_PARAM_KDF_UKM, NULL, 0),
    OSSL_PARAM_END
};

static int ecdh_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_ECDH_CTX *ctx = vctx;

    if (ctx->local != NULL)
        return EVP_PKEY_CTX_get_params(ctx->local, params) > 0;
    return 1; /* a backend ECDH has no KDF of its own: nothing to report */
}

static const OSSL_PARAM *ecdh_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdh_gettable;
}

const OSSL_DISPATCH hb_ecdh_keyexch_functions[] = {
    { OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))ecdh_newctx },
    { OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))ecdh_init },
    { OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))ecdh_set_peer },
    { OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))ecdh_derive },
    { OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))ecdh_freectx },
    { OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))ecdh_dupctx },
    { OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, (void (*)(void))ecdh_set_ctx_params },
    { OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS,
      (void (*)(void))ecdh_settable_ctx_params },
    { OSSL_FUNC_KEYEXCH_GET_CTX_PARAMS, (void (*)(void))ecdh_get_ctx_params },
    { OSSL_FUNC_KEYEXCH_GETTABLE_CTX_PARAMS,
      (void (*)(void))ecdh_gettable_ctx_params },
    { 0, NULL }
};
