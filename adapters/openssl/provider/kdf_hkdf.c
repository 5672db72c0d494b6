/*
 * HKDF (RFC 5869) in the backend, from a masked input to a masked output.
 *
 * The input keying material is a masked blob: the file named by
 * azihsm.ikm_file (typically an ECDH secret from exchange_ecdh.c), or the
 * blob itself as the key octets. hsmhost gets it in a DeriveRequest with the
 * digest, salt, info and the kind of key to make (derived_key_type aes or
 * hmac, derived_key_bits), and answers with the derived key masked. That
 * blob goes to output_file when it is set (the caller's buffer is then
 * zeroed, never filled with key material) or else into the caller's buffer,
 * which must be large enough (OUTPUT_BUFFER_TOO_SMALL otherwise); the rest
 * of a larger buffer is zeroed and the blob's length can be read back as
 * the azihsm.blob_len context parameter.
 *
 * The request's reference only routes it to the masked-key backend: it is
 * the azihsm:// URI of the input file, which is also how the backend's
 * errors (truncated, altered, foreign blob) name the file.
 *
 * Without a masked input (a raw key, as TLS or any other caller of an
 * unqualified "HKDF" fetch gives) the default provider's HKDF does the
 * work in the private library context; every parameter is passed on to it.
 */
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include <openssl/err.h>
#include <openssl/kdf.h>

#include "derive.h"
#include "errors.h"
#include "masked.h"

typedef struct {
    HB_PROV_CTX *provctx;
    char *digest;         /* as given; NULL: SHA256 */
    unsigned char *salt, *info, *key;
    size_t salt_len, info_len, key_len;
    char *ikm_file, *output_file, *type;
    int bits;             /* 0: 256 */
    int mode_set_other;   /* mode other than extract-and-expand */
    size_t blob_len;      /* last buffer-mode output */
    EVP_KDF_CTX *inner;   /* the default provider's HKDF, for raw keys */
} HB_HKDF_CTX;

static EVP_KDF_CTX *new_inner(void)
{
    EVP_KDF *kdf = EVP_KDF_fetch(hb_priv_libctx(), "HKDF", NULL);
    EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;

    EVP_KDF_free(kdf);
    return c;
}

static void *hkdf_newctx(void *provctx)
{
    HB_HKDF_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    if ((ctx->inner = new_inner()) == NULL) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void clear_fields(HB_HKDF_CTX *ctx)
{
    free(ctx->digest);
    OPENSSL_clear_free(ctx->salt, ctx->salt_len);
    OPENSSL_clear_free(ctx->info, ctx->info_len);
    OPENSSL_clear_free(ctx->key, ctx->key_len);
    free(ctx->ikm_file);
    free(ctx->output_file);
    free(ctx->type);
    ctx->digest = ctx->ikm_file = ctx->output_file = ctx->type = NULL;
    ctx->salt = ctx->info = ctx->key = NULL;
    ctx->salt_len = ctx->info_len = ctx->key_len = 0;
    ctx->bits = 0;
    ctx->mode_set_other = 0;
    ctx->blob_len = 0;
}

static void hkdf_freectx(void *vctx)
{
    HB_HKDF_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    clear_fields(ctx);
    EVP_KDF_CTX_free(ctx->inner);
    free(ctx);
}

static void hkdf_reset(void *vctx)
{
    HB_HKDF_CTX *ctx = vctx;

    clear_fields(ctx);
    EVP_KDF_CTX_reset(ctx->inner);
}

static int dup_bytes(unsigned char **dst, size_t *dlen, const unsigned char *src,
                     size_t slen)
{
    *dst = NULL;
    *dlen = 0;
    if (src == NULL)
        return 1;
    if ((*dst = OPENSSL_memdup(src, slen > 0 ? slen : 1)) == NULL)
        return 0;
    *dlen = slen;
    return 1;
}

static int dup_str(char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

static void *hkdf_dupctx(void *vctx)
{
    HB_HKDF_CTX *src = vctx, *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = src->provctx;
    ctx->bits = src->bits;
    ctx->mode_set_other = src->mode_set_other;
    ctx->blob_len = src->blob_len;
    if (!dup_str(&ctx->digest, src->digest)
        || !dup_str(&ctx->ikm_file, src->ikm_file)
        || !dup_str(&ctx->output_file, src->output_file)
        || !dup_str(&ctx->type, src->type)
        || !dup_bytes(&ctx->salt, &ctx->salt_len, src->salt, src->salt_len)
        || !dup_bytes(&ctx->info, &ctx->info_len, src->info, src->info_len)
        || !dup_bytes(&ctx->key, &ctx->key_len, src->key, src->key_len)
        || (ctx->inner = EVP_KDF_CTX_dup(src->inner)) == NULL) {
        hkdf_freectx(ctx);
        return NULL;
    }
    return ctx;
}

static int get_str(HB_HKDF_CTX *ctx, const OSSL_PARAM *p, char **dst)
{
    char *s = NULL;

    if (!OSSL_PARAM_get_utf8_string(p, &s, 0)) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "HKDF parameter %s must be a string", p->key);
        return 0;
    }
    free(*dst);
    *dst = strdup(s);
    OPENSSL_free(s);
    return *dst != NULL;
}

static int get_octets(const OSSL_PARAM *p, unsigned char **dst, size_t *dlen)
{
    void *v = NULL;
    size_t n = 0;

    if (!OSSL_PARAM_get_octet_string(p, &v, 0, &n))
        return 0;
    OPENSSL_clear_free(*dst, *dlen);
    *dst = v;
    *dlen = n;
    return 1;
}

/* derived_key_bits as an integer, or as the text the CLI may hand over. */
static int get_bits(HB_HKDF_CTX *ctx, const OSSL_PARAM *p)
{
    int v = 0;

    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        char *end = NULL;
        long l = s != NULL ? strtol(s, &end, 10) : 0;

        if (s == NULL || end == s || *end != '\0' || l <= 0 || l > 65536)
            v = -1;
        else
            v = (int)l;
    } else if (!OSSL_PARAM_get_int(p, &v)) {
        v = -1;
    }
    if (v <= 0 || v % 8 != 0) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "derived_key_bits must be a positive multiple of 8");
        return 0;
    }
    ctx->bits = v;
    return 1;
}

static int is_ours(const char *key)
{
    return strcmp(key, HB_PARAM_IKM_FILE) == 0
        || strcmp(key, HB_PARAM_OUTPUT_FILE) == 0
        || strcmp(key, HB_PARAM_DERIVED_TYPE) == 0
        || strcmp(key, HB_PARAM_DERIVED_BITS) == 0;
}

static int hkdf_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_HKDF_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    OSSL_PARAM rest[24];
    size_t n = 0;
    int info_seen = 0;

    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        if (strcmp(p->key, HB_PARAM_IKM_FILE) == 0) {
            if (!get_str(ctx, p, &ctx->ikm_file))
                return 0;
        } else if (strcmp(p->key, HB_PARAM_OUTPUT_FILE) == 0) {
            if (!get_str(ctx, p, &ctx->output_file))
                return 0;
        } else if (strcmp(p->key, HB_PARAM_DERIVED_TYPE) == 0) {
            if (!get_str(ctx, p, &ctx->type))
                return 0;
            if (strcasecmp(ctx->type, "aes") != 0
                && strcasecmp(ctx->type, "hmac") != 0) {
                HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                         "derived_key_type %s is not aes or hmac", ctx->type);
                return 0;
            }
        } else if (strcmp(p->key, HB_PARAM_DERIVED_BITS) == 0) {
            if (!get_bits(ctx, p))
                return 0;
        } else if (strcmp(p->key, OSSL_KDF_PARAM_DIGEST) == 0) {
            if (!get_str(ctx, p, &ctx->digest))
                return 0;
        } else if (strcmp(p->key, OSSL_KDF_PARAM_SALT) == 0) {
            if (!get_octets(p, &ctx->salt, &ctx->salt_len))
                return 0;
        } else if (strcmp(p->key, OSSL_KDF_PARAM_KEY) == 0) {
            if (!get_octets(p, &ctx->key, &ctx->key_len))
                return 0;
        } else if (strcmp(p->key, OSSL_KDF_PARAM_INFO) == 0) {
            /* Like OpenSSL's HKDF: several info parameters are concatenated. */
            unsigned char *v = NULL;
            size_t vl = 0;

            if (!get_octets(p, &v, &vl))
                return 0;
            if (!info_seen) {
                OPENSSL_clear_free(ctx->info, ctx->info_len);
                ctx->info = v;
                ctx->info_len = vl;
                info_seen = 1;
            } else {
                unsigned char *cat = OPENSSL_malloc(ctx->info_len + vl + 1);

                if (cat == NULL) {
                    OPENSSL_clear_free(v, vl);
                    return 0;
                }
                memcpy(cat, ctx->info, ctx->info_len);
                memcpy(cat + ctx->info_len, v, vl);
                OPENSSL_clear_free(ctx->info, ctx->info_len);
                OPENSSL_clear_free(v, vl);
                ctx->info = cat;
                ctx->info_len += vl;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_MODE) == 0) {
            int mode = EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;

            if (p->data_type == OSSL_PARAM_UTF8_STRING)
                mode = p->data != NULL
                    && strcasecmp(p->data, "EXTRACT_AND_EXPAND") == 0
                    ? mode : -1;
            else if (!OSSL_PARAM_get_int(p, &mode))
                mode = -1;
            ctx->mode_set_other = mode != EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
        }
        if (!is_ours(p->key) && n + 1 < sizeof(rest) / sizeof(rest[0]))
            rest[n++] = *p;
    }
    /*
     * The default provider's HKDF sees the standard parameters too, for the
     * raw-key case; its complaints matter only if that case is taken.
     */
    rest[n] = OSSL_PARAM_construct_end();
    ERR_set_mark();
    if (n > 0 && !EVP_KDF_CTX_set_params(ctx->inner, rest))
        ERR_pop_to_mark();
    else
        ERR_clear_last_mark();
    return 1;
}

/* DeriveRequest; returns the masked output (free with OPENSSL_free). */
static unsigned char *derive_masked(HB_HKDF_CTX *ctx, const char *ref,
                                    const unsigned char *in, size_t inlen,
                                    Hsmbridge__Host__V1__Hash hash,
                                    const char *type, int bits,
                                    size_t *outlen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__DeriveRequest d =
        HSMBRIDGE__HOST__V1__DERIVE_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    unsigned char *out = NULL;

    d.reference = (char *)ref;
    d.input_blob.data = (uint8_t *)in;
    d.input_blob.len = inlen;
    d.hash = hash;
    d.salt.data = ctx->salt;
    d.salt.len = ctx->salt_len;
    d.info.data = ctx->info;
    d.info.len = ctx->info_len;
    d.output_type = (char *)type;
    d.output_bits = bits;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_DERIVE;
    req.derive = &d;
    resp = hb_call(ctx->provctx, &req, 1, NULL);
    if (resp == NULL)
        return NULL;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_MASKED
        || resp->masked == NULL || resp->masked->blob.len == 0)
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered HKDF without a masked key", ref);
    else if ((out = OPENSSL_memdup(resp->masked->blob.data,
                                   resp->masked->blob.len)) != NULL)
        *outlen = resp->masked->blob.len;
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return out;
}

static int hkdf_derive(void *vctx, unsigned char *key, size_t keylen,
                       const OSSL_PARAM params[])
{
    HB_HKDF_CTX *ctx = vctx;
    Hsmbridge__Host__V1__Hash hash;
    const char *type;
    unsigned char *in = NULL, *out = NULL;
    size_t inlen = 0, outlen = 0;
    char *ref = NULL;
    int bits, ok = 0;

    if (!hkdf_set_ctx_params(ctx, params))
        return 0;
    if (ctx->ikm_file == NULL && !hb_is_masked_blob(ctx->key, ctx->key_len)) {
        if (ctx->key != NULL) /* a raw key: ordinary HKDF */
            return EVP_KDF_derive(ctx->inner, key, keylen, NULL) > 0;
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "HKDF needs its input keying material: "
                 "azihsm.ikm_file:<masked key file> (e.g. an ECDH "
                 "output_file), or the masked blob as the key");
        return 0;
    }
    if (ctx->mode_set_other) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "HKDF from a masked key runs extract-and-expand only");
        return 0;
    }
    hash = ctx->digest == NULL ? HSMBRIDGE__HOST__V1__HASH__HASH_SHA256
                               : hb_hash_by_name(ctx->digest, NULL);
    if (hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA256
        && hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA384
        && hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA512) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                 "HKDF digest %s is not supported: use SHA256, SHA384 or "
                 "SHA512", ctx->digest);
        return 0;
    }
    type = ctx->type != NULL && strcasecmp(ctx->type, "hmac") == 0 ? "hmac"
                                                                    : "aes";
    bits = ctx->bits > 0 ? ctx->bits : 256;
    if (ctx->ikm_file != NULL) {
        if (strchr(ctx->ikm_file, ';') != NULL) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "azihsm.ikm_file %s: a masked key file's path cannot "
                     "contain ';'", ctx->ikm_file);
            return 0;
        }
        in = hb_read_file(ctx->provctx, ctx->ikm_file, "masked key file",
                          HB_MASKED_MAX_FILE, &inlen);
        ref = hb_azihsm_uri(ctx->ikm_file, "ec");
        if (in == NULL || ref == NULL)
            goto done;
    } else {
        /* The key octets hold the blob; any azihsm:// URI routes it. */
        ref = strdup("azihsm://(HKDF key parameter);type=ec");
        if (ref == NULL)
            goto done;
    }
    out = derive_masked(ctx, ref, in != NULL ? in : ctx->key,
                        in != NULL ? inlen : ctx->key_len, hash, type, bits,
                        &outlen);
    if (out == NULL)
        goto done;
    if (ctx->output_file != NULL && *ctx->output_file != '\0') {
        if (!hb_write_private_file(ctx->provctx, ctx->output_file,
                                   "masked key file", out, outlen))
            goto done;
        if (key != NULL)
            OPENSSL_cleanse(key, keylen);
        ctx->blob_len = 0;
        HB_DEBUG("HKDF: masked %s key (%d bits, %zu-byte blob) written to %s",
                 type, bits, outlen, ctx->output_file);
    } else {
        if (key == NULL || keylen < outlen) {
            HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                     "HKDF: the masked %s key is a %zu-byte blob but the "
                     "output buffer has %zu bytes (give -keylen %zu or more, "
                     "or output_file)", type, outlen, key == NULL ? 0 : keylen,
                     outlen);
            goto done;
        }
        memcpy(key, out, outlen);
        memset(key + outlen, 0, keylen - outlen);
        ctx->blob_len = outlen;
    }
    ok = 1;
done:
    if (in != NULL)
        OPENSSL_clear_free(in, inlen);
    OPENSSL_free(out);
    free(ref);
    return ok;
}

static const OSSL_PARAM hkdf_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_MODE, NULL, 0),
    OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, NULL, 0),
    OSSL_PARAM_utf8_string(HB_PARAM_IKM_FILE, NULL, 0),
    OSSL_PARAM_utf8_string(HB_PARAM_OUTPUT_FILE, NULL, 0),
    OSSL_PARAM_utf8_string(HB_PARAM_DERIVED_TYPE, NULL, 0),
    OSSL_PARAM_int(HB_PARAM_DERIVED_BITS, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *hkdf_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hkdf_settable;
}

static const OSSL_PARAM hkdf_gettable[] = {
    OSSL_PARAM_size_t(OSSL_KDF_PARAM_SIZE, NULL),
    OSSL_PARAM_size_t(HB_PARAM_BLOB_LEN, NULL),
    OSSL_PARAM_END
};

static int hkdf_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_HKDF_CTX *ctx = vctx;
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, HB_PARAM_BLOB_LEN);
    if (p != NULL && !OSSL_PARAM_set_size_t(p, ctx->blob_len))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_KDF_PARAM_SIZE);
    if (p != NULL) {
        size_t size = SIZE_MAX; /* extract-and-expand: any length */

        if (ctx->ikm_file == NULL && !hb_is_masked_blob(ctx->key, ctx->key_len)) {
            OSSL_PARAM q[2] = { OSSL_PARAM_size_t(OSSL_KDF_PARAM_SIZE, &size),
                                OSSL_PARAM_END };

            if (!EVP_KDF_CTX_get_params(ctx->inner, q))
                size = SIZE_MAX;
        }
        if (!OSSL_PARAM_set_size_t(p, size))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM *hkdf_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hkdf_gettable;
}

const OSSL_DISPATCH hb_hkdf_kdf_functions[] = {
    { OSSL_FUNC_KDF_NEWCTX, (void (*)(void))hkdf_newctx },
    { OSSL_FUNC_KDF_DUPCTX, (void (*)(void))hkdf_dupctx },
    { OSSL_FUNC_KDF_FREECTX, (void (*)(void))hkdf_freectx },
    { OSSL_FUNC_KDF_RESET, (void (*)(void))hkdf_reset },
    { OSSL_FUNC_KDF_DERIVE, (void (*)(void))hkdf_derive },
    { OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS,
      (void (*)(void))hkdf_settable_ctx_params },
    { OSSL_FUNC_KDF_SET_CTX_PARAMS, (void (*)(void))hkdf_set_ctx_params },
    { OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS,
      (void (*)(void))hkdf_gettable_ctx_params },
    { OSSL_FUNC_KDF_GET_CTX_PARAMS, (void (*)(void))hkdf_get_ctx_params },
    { 0, NULL }
};
