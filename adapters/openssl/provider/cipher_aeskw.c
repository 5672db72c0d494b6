/*
 * AES key wrap with a backend AES key, as an asym_cipher: encrypt wraps,
 * decrypt unwraps, both in the backend (WrapKey / UnwrapKey requests).
 *
 * This is how the Managed HSM seed exposes its oct-HSM keys:
 *
 *   openssl pkeyutl -encrypt -inkey managedhsm:MyHSM:myaeskey -in key.bin
 *
 * OpenSSL has no operation for "wrap with a key I cannot see" (its AES
 * wrap ciphers need the key bytes), and an asym_cipher is the one shape
 * that takes a provider-held key object plus input and returns output.
 *
 * Algorithms, in Key Vault's words (context parameter "algorithm", so
 * `-pkeyopt algorithm:<name>`):
 *   A128KW, A192KW, A256KW   RFC 3394 with a key of exactly that size;
 *                            the default is the one matching the key
 *   CKM_AES_KEY_WRAP         RFC 3394 with any key size; the default for
 *                            a key whose size the backend does not know
 *                            (Managed HSM never says it): the same bytes
 *                            as the AnnnKW of the key's size
 *   CKM_AES_KEY_WRAP_PAD     RFC 5649, for inputs of any length
 * OpenSSL's cipher names (id-aes256-wrap, AES-256-WRAP, id-aes256-wrap-pad,
 * …) and the seed's AES-256-KW are accepted as aliases; the sized ones also
 * pin the key size.
 *
 * Everything that is public -- key size against algorithm, input length --
 * is checked here, before any request, and named precisely. When the key's
 * size is unknown (bits 0), a sized algorithm is sent as asked and the
 * backend (the service) refuses a wrong one; the size in a padded alias
 * (id-aes256-wrap-pad) cannot be checked then, RFC 5649 being the same
 * request for every key size. A failed unwrap
 * gets one message whatever the backend found wrong.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "aeskw.h"
#include "conn.h"
#include "errors.h"
#include "provider.h"

#define HB_AES_KW_PARAM_ALGORITHM "algorithm"

typedef struct {
    const char *name;      /* what the user may write */
    const char *algorithm; /* what goes to the host */
    int bits;              /* key size it requires, 0 for any */
    int pad;               /* RFC 5649 */
} HB_KW_ALG;

static const HB_KW_ALG kw_algs[] = {
    { "A128KW", "A128KW", 128, 0 },
    { "A192KW", "A192KW", 192, 0 },
    { "A256KW", "A256KW", 256, 0 },
    { "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP", 0, 0 },
    { "CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP_PAD", 0, 1 },
    /* OpenSSL's cipher names and the seed's spelling. */
    { "id-aes128-wrap", "A128KW", 128, 0 },
    { "id-aes192-wrap", "A192KW", 192, 0 },
    { "id-aes256-wrap", "A256KW", 256, 0 },
    { "AES-128-WRAP", "A128KW", 128, 0 },
    { "AES-192-WRAP", "A192KW", 192, 0 },
    { "AES-256-WRAP", "A256KW", 256, 0 },
    { "AES-128-KW", "A128KW", 128, 0 },
    { "AES-192-KW", "A192KW", 192, 0 },
    { "AES-256-KW", "A256KW", 256, 0 },
    { "id-aes128-wrap-pad", "CKM_AES_KEY_WRAP_PAD", 128, 1 },
    { "id-aes192-wrap-pad", "CKM_AES_KEY_WRAP_PAD", 192, 1 },
    { "id-aes256-wrap-pad", "CKM_AES_KEY_WRAP_PAD", 256, 1 },
    { "AES-128-WRAP-PAD", "CKM_AES_KEY_WRAP_PAD", 128, 1 },
    { "AES-192-WRAP-PAD", "CKM_AES_KEY_WRAP_PAD", 192, 1 },
    { "AES-256-WRAP-PAD", "CKM_AES_KEY_WRAP_PAD", 256, 1 },
};

#define N_KW_ALGS (sizeof(kw_algs) / sizeof(kw_algs[0]))

typedef struct {
    HB_PROV_CTX *provctx;
    HB_KEY *key;
    int operation;        /* EVP_PKEY_OP_ENCRYPT (wrap) or _DECRYPT (unwrap) */
    const HB_KW_ALG *alg; /* NULL: AnnnKW for the key's size, or
                             CKM_AES_KEY_WRAP if that is unknown */
} HB_KW_CTX;

static const HB_KW_ALG *find_alg(const char *name)
{
    size_t i;

    for (i = 0; i < N_KW_ALGS; i++)
        if (strcasecmp(kw_algs[i].name, name) == 0)
            return &kw_algs[i];
    return NULL;
}

/*
 * The algorithm in effect: the chosen one, else the key size's AnnnKW, else
 * (size unknown) CKM_AES_KEY_WRAP, which is RFC 3394 as well.
 */
static const HB_KW_ALG *effective_alg(const HB_KW_CTX *ctx)
{
    if (ctx->alg != NULL)
        return ctx->alg;
    if (ctx->key == NULL)
        return NULL;
    switch (ctx->key->bits) {
    case 0:   return &kw_algs[3];
    case 128: return &kw_algs[0];
    case 192: return &kw_algs[1];
    case 256: return &kw_algs[2];
    }
    return NULL;
}

static void *kw_newctx(void *provctx)
{
    HB_KW_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL)
        ctx->provctx = provctx;
    return ctx;
}

static void kw_freectx(void *vctx)
{
    HB_KW_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    hb_key_free(ctx->key);
    free(ctx);
}

static void *kw_dupctx(void *vctx)
{
    HB_KW_CTX *src = vctx, *ctx = malloc(sizeof(*src));

    if (ctx == NULL)
        return NULL;
    *ctx = *src;
    if (ctx->key != NULL)
        hb_key_up_ref(ctx->key);
    return ctx;
}

static int kw_set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int kw_init(void *vctx, void *vkey, const OSSL_PARAM params[],
                   int operation)
{
    HB_KW_CTX *ctx = vctx;
    HB_KEY *key = vkey;

    if (ctx == NULL
        || !hb_ctx_take_key(ctx->provctx, &ctx->key, key, HB_KT_OCT, 0,
                            "AES key wrap needs an AES key held by a backend"))
        return 0;
    ctx->operation = operation;
    return kw_set_ctx_params(ctx, params);
}

static int kw_encrypt_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return kw_init(vctx, vkey, params, EVP_PKEY_OP_ENCRYPT);
}

static int kw_decrypt_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return kw_init(vctx, vkey, params, EVP_PKEY_OP_DECRYPT);
}

/* Wrapped size: RFC 3394 adds one 8-byte block; RFC 5649 pads to 8 first. */
static size_t wrapped_len(const HB_KW_ALG *alg, size_t inlen)
{
    return (alg->pad ? (inlen + 7) / 8 * 8 : inlen) + 8;
}

/*
 * What can be said without the backend: the algorithm fits the key, the
 * input has a length the algorithm can take. Raises and returns 0 if not.
 */
static int check_request(HB_KW_CTX *ctx, const HB_KW_ALG *alg, size_t inlen)
{
    const char *ref = ctx->key->reference;
    int wrap = ctx->operation == EVP_PKEY_OP_ENCRYPT;

    if (alg == NULL) {
        HB_RAISE(ctx->provctx, HB_R_BAD_KEY,
                 "%s: a %d-bit key has no AES key-wrap algorithm", ref,
                 ctx->key->bits);
        return 0;
    }
    /* Unknown size (0): the backend checks a sized algorithm. */
    if (alg->bits != 0 && ctx->key->bits != 0 && alg->bits != ctx->key->bits) {
        HB_RAISE(ctx->provctx, HB_R_BAD_KEY,
                 "%s: %s needs a %d-bit AES key, this key has %d bits "
                 "(leave -pkeyopt algorithm unset to use A%dKW, or choose "
                 "CKM_AES_KEY_WRAP or CKM_AES_KEY_WRAP_PAD)", ref, alg->name,
                 alg->bits, ctx->key->bits, ctx->key->bits);
        return 0;
    }
    if (wrap) {
        if (inlen > HB_AES_KW_MAX_INPUT) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "%s: cannot wrap %zu bytes, at most %d are accepted",
                     ref, inlen, HB_AES_KW_MAX_INPUT);
            return 0;
        }
        if (alg->pad && inlen == 0) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "%s: %s cannot wrap an empty input", ref, alg->algorithm);
            return 0;
        }
        if (!alg->pad && (inlen < 16 || inlen % 8 != 0)) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "%s: %s (RFC 3394) wraps inputs of at least 16 bytes "
                     "in multiples of 8, the input is %zu bytes; use "
                     "-pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD (RFC 5649) "
                     "for other lengths", ref, alg->algorithm, inlen);
            return 0;
        }
        return 1;
    }
    /*
     * A wrapped input is whole 8-byte blocks: at least 3 for RFC 3394
     * (16 bytes of key and the check block), 2 for RFC 5649.
     */
    if (inlen > HB_AES_KW_MAX_OUTPUT || inlen % 8 != 0
        || inlen < (alg->pad ? 16u : 24u)) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: %zu bytes cannot be %s output: wrapped keys are "
                 "multiples of 8 bytes, at least %d and at most %d", ref,
                 inlen, alg->algorithm, alg->pad ? 16 : 24,
                 HB_AES_KW_MAX_OUTPUT);
        return 0;
    }
    return 1;
}

/* One WrapKey or UnwrapKey request; the caller frees the response. */
static Hsmbridge__Host__V1__Response *host_wrap(HB_KW_CTX *ctx,
                                                const HB_KW_ALG *alg,
                                                const unsigned char *in,
                                                size_t inlen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__WrapKeyRequest w =
        HSMBRIDGE__HOST__V1__WRAP_KEY_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    int wrap = ctx->operation == EVP_PKEY_OP_ENCRYPT;

    w.reference = ctx->key->reference;
    w.version = ctx->key->version != NULL ? ctx->key->version : "";
    w.algorithm = (char *)alg->algorithm;
    w.data.data = (uint8_t *)in;
    w.data.len = inlen;
    if (wrap) {
        req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_WRAP_KEY;
        req.wrap_key = &w;
    } else {
        req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_UNWRAP_KEY;
        req.unwrap_key = &w;
    }
    HB_DEBUG("%s %zu bytes with %s version %s (%s)", wrap ? "wrap" : "unwrap",
             inlen, w.reference, w.version, w.algorithm);
    /* Neither has a side effect: retrying on a fresh connection is safe. */
    ERR_set_mark();
    resp = hb_call(ctx->provctx, &req, 1, NULL);
    if (resp == NULL) {
        /*
         * The host's sentence stays; for an unwrap the backend refused on
         * the data (bad integrity check, wrong key or algorithm), so add
         * one sentence that is the same whatever it found.
         */
        if (!wrap
            && ERR_GET_REASON(ERR_peek_last_error()) == HB_R_HOST_INVALID_INPUT)
            HB_RAISE(ctx->provctx, HB_R_HOST_INVALID_INPUT,
                     "%s: AES key unwrap (%s) failed: the wrapped key is "
                     "damaged, or was not wrapped with this key and "
                     "algorithm", ctx->key->reference, alg->algorithm);
        ERR_clear_last_mark();
        return NULL;
    }
    ERR_clear_last_mark();
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_WRAPPED
        || resp->wrapped == NULL) {
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "hsmhost answered %s for %s without data",
                 wrap ? "WrapKey" : "UnwrapKey", ctx->key->reference);
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

static void release(Hsmbridge__Host__V1__Response *resp)
{
    if (resp->wrapped != NULL && resp->wrapped->data.data != NULL)
        OPENSSL_cleanse(resp->wrapped->data.data, resp->wrapped->data.len);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
}

static int kw_run(HB_KW_CTX *ctx, int operation, unsigned char *out,
                  size_t *outlen, size_t outsize, const unsigned char *in,
                  size_t inlen)
{
    const HB_KW_ALG *alg;
    Hsmbridge__Host__V1__Response *resp;
    size_t len;

    if (ctx == NULL || ctx->key == NULL || ctx->operation != operation) {
        HB_RAISE(ctx ? ctx->provctx : NULL, HB_R_OPERATION_NOT_INITIALIZED,
                 "AES key %s called before its init",
                 operation == EVP_PKEY_OP_ENCRYPT ? "wrap" : "unwrap");
        return 0;
    }
    alg = effective_alg(ctx);
    /* Size queries are answered here, without the backend. */
    if (out == NULL) {
        if (alg == NULL)
            return check_request(ctx, alg, inlen);
        if (operation == EVP_PKEY_OP_ENCRYPT)
            *outlen = wrapped_len(alg, inlen);
        else
            *outlen = inlen > 8 ? inlen - 8 : 0;
        return 1;
    }
    if (!check_request(ctx, alg, inlen))
        return 0;
    if (operation == EVP_PKEY_OP_ENCRYPT && outsize < wrapped_len(alg, inlen)) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "%s: wrapping %zu bytes gives %zu, the buffer holds %zu",
                 ctx->key->reference, inlen, wrapped_len(alg, inlen),
                 outsize);
        return 0;
    }
    resp = host_wrap(ctx, alg, in, inlen);
    if (resp == NULL)
        return 0;
    len = resp->wrapped->data.len;
    if (len > outsize) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "%s: the %s key is %zu bytes, the buffer holds %zu",
                 ctx->key->reference,
                 operation == EVP_PKEY_OP_ENCRYPT ? "wrapped" : "unwrapped",
                 len, outsize);
        release(resp);
        return 0;
    }
    if (len > 0)
        memcpy(out, resp->wrapped->data.data, len);
    *outlen = len;
    release(resp);
    return 1;
}

static int kw_encrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    return kw_run(vctx, EVP_PKEY_OP_ENCRYPT, out, outlen, outsize, in, inlen);
}

static int kw_decrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    return kw_run(vctx, EVP_PKEY_OP_DECRYPT, out, outlen, outsize, in, inlen);
}

/* ---- parameters ---------------------------------------------------------- */

static int kw_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_KW_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    const char *name = NULL;
    const HB_KW_ALG *alg;

    if (ctx == NULL)
        return 0;
    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, HB_AES_KW_PARAM_ALGORITHM);
    if (p == NULL)
        return 1;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
        return 0;
    alg = find_alg(name);
    if (alg == NULL) {
        /* Unlike the seed's provider, never fall back silently. */
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: unknown AES key-wrap algorithm \"%s\" (A128KW, A192KW, "
                 "A256KW, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD)",
                 ctx->key != NULL ? ctx->key->reference : "AES key wrap",
                 name);
        return 0;
    }
    ctx->alg = alg;
    return 1;
}

static int kw_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_KW_CTX *ctx = vctx;
    const HB_KW_ALG *alg;
    OSSL_PARAM *p;

    if (ctx == NULL)
        return 0;
    p = OSSL_PARAM_locate(params, HB_AES_KW_PARAM_ALGORITHM);
    if (p != NULL) {
        alg = effective_alg(ctx);
        if (alg == NULL || !OSSL_PARAM_set_utf8_string(p, alg->algorithm))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM kw_params[] = {
    OSSL_PARAM_utf8_string(HB_AES_KW_PARAM_ALGORITHM, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *kw_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return kw_params;
}

static const OSSL_PARAM *kw_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return kw_params;
}

const OSSL_DISPATCH hb_aes_kw_asym_cipher_functions[] = {
    { OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))kw_newctx },
    { OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))kw_freectx },
    { OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))kw_dupctx },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))kw_encrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))kw_encrypt },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))kw_decrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))kw_decrypt },
    { OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))kw_get_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
      (void (*)(void))kw_gettable_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))kw_set_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
      (void (*)(void))kw_settable_ctx_params },
    { 0, NULL }
};
