/*
 * A KDF in the backend, from a masked input to a masked output: the core of
 * HKDF (kdf_hkdf.c) and KBKDF (kdf_kbkdf.c); see kdf_masked.h.
 *
 * The input keying material is a masked blob: the file named by
 * azihsm.ikm_file (typically an ECDH secret from exchange_ecdh.c), or the
 * blob itself as the key octets. hsmhost gets it in a DeriveRequest with
 * the KDF, digest, salt, info and the kind of key to make (derived_key_type
 * aes or hmac, derived_key_bits), and answers with the derived key masked.
 * That blob goes to output_file when it is set (the caller's buffer is then
 * zeroed, never filled with key material) or else into the caller's
 * buffer, which must be large enough (OUTPUT_BUFFER_TOO_SMALL otherwise);
 * the rest of a larger buffer is zeroed and the blob's length can be read
 * back as the azihsm.blob_len context parameter.
 *
 * The request's reference only routes it to the masked-key backend: it is
 * the azihsm:// URI of the input file, which is also how the backend's
 * errors (truncated, altered, foreign blob) name the file.
 *
 * Without a masked input (a raw key, as TLS or any other caller of an
 * unqualified fetch gives) the default provider's KDF of the same name does
 * the work in the private library context; every parameter but ours is
 * passed on to it, so its own checks and defaults apply.
 *
 * Within one set_params call the first occurrence of a parameter counts, as
 * in OpenSSL's own KDFs (HKDF's info excepted: several are concatenated).
 */
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include <openssl/err.h>
#include <openssl/kdf.h>

#include "errors.h"
#include "kdf_masked.h"
#include "masked.h"

struct hb_mkdf_ctx {
    HB_PROV_CTX *provctx;
    const HB_MKDF_KIND *kind;
    char *digest;         /* as given; NULL: SHA256 */
    unsigned char *salt, *info, *key;
    size_t salt_len, info_len, key_len;
    char *ikm_file, *output_file, *type;
    int bits;             /* 0: 256 */
    size_t blob_len;      /* last buffer-mode output */
    void *ext;            /* kind->ext_size bytes */
    EVP_KDF_CTX *inner;   /* the default provider's KDF, for raw keys */
};

int hb_param_int(const OSSL_PARAM *p, int *v)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        char *end = NULL;
        long l = s != NULL ? strtol(s, &end, 10) : 0;

        if (s == NULL || end == s || *end != '\0' || l < -65536 || l > 65536)
            return 0;
        *v = (int)l;
        return 1;
    }
    return OSSL_PARAM_get_int(p, v);
}

static EVP_KDF_CTX *new_inner(const char *name)
{
    EVP_KDF *kdf = EVP_KDF_fetch(hb_priv_libctx(), name, NULL);
    EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;

    EVP_KDF_free(kdf);
    return c;
}

void *hb_mkdf_newctx(void *provctx, const HB_MKDF_KIND *kind)
{
    HB_MKDF_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->kind = kind;
    if ((kind->ext_size > 0 && (ctx->ext = calloc(1, kind->ext_size)) == NULL)
        || (ctx->inner = new_inner(kind->name)) == NULL) {
        free(ctx->ext);
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void clear_fields(HB_MKDF_CTX *ctx)
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
    ctx->blob_len = 0;
    if (ctx->ext != NULL)
        memset(ctx->ext, 0, ctx->kind->ext_size);
}

void hb_mkdf_freectx(void *vctx)
{
    HB_MKDF_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    clear_fields(ctx);
    free(ctx->ext);
    EVP_KDF_CTX_free(ctx->inner);
    free(ctx);
}

void hb_mkdf_reset(void *vctx)
{
    HB_MKDF_CTX *ctx = vctx;

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

void *hb_mkdf_dupctx(void *vctx)
{
    HB_MKDF_CTX *src = vctx, *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = src->provctx;
    ctx->kind = src->kind;
    ctx->bits = src->bits;
    ctx->blob_len = src->blob_len;
    if (src->ext != NULL) {
        if ((ctx->ext = malloc(src->kind->ext_size)) == NULL) {
            free(ctx);
            return NULL;
        }
        memcpy(ctx->ext, src->ext, src->kind->ext_size);
    }
    if (!dup_str(&ctx->digest, src->digest)
        || !dup_str(&ctx->ikm_file, src->ikm_file)
        || !dup_str(&ctx->output_file, src->output_file)
        || !dup_str(&ctx->type, src->type)
        || !dup_bytes(&ctx->salt, &ctx->salt_len, src->salt, src->salt_len)
        || !dup_bytes(&ctx->info, &ctx->info_len, src->info, src->info_len)
        || !dup_bytes(&ctx->key, &ctx->key_len, src->key, src->key_len)
        || (ctx->inner = EVP_KDF_CTX_dup(src->inner)) == NULL) {
        hb_mkdf_freectx(ctx);
        return NULL;
    }
    return ctx;
}

static int get_str(HB_MKDF_CTX *ctx, const OSSL_PARAM *p, char **dst)
{
    char *s = NULL;

    if (!OSSL_PARAM_get_utf8_string(p, &s, 0)) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s parameter %s must be a string", ctx->kind->name, p->key);
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

/* Appends p's octets to what this call already gave (HKDF's info). */
static int cat_octets(const OSSL_PARAM *p, unsigned char **dst, size_t *dlen)
{
    unsigned char *v = NULL, *cat;
    size_t vl = 0;

    if (!get_octets(p, &v, &vl))
        return 0;
    if ((cat = OPENSSL_malloc(*dlen + vl + 1)) == NULL) {
        OPENSSL_clear_free(v, vl);
        return 0;
    }
    if (*dlen > 0)
        memcpy(cat, *dst, *dlen);
    memcpy(cat + *dlen, v, vl);
    OPENSSL_clear_free(*dst, *dlen);
    OPENSSL_clear_free(v, vl);
    *dst = cat;
    *dlen += vl;
    return 1;
}

/* derived_key_bits as an integer, or as the text the CLI may hand over. */
static int get_bits(HB_MKDF_CTX *ctx, const OSSL_PARAM *p)
{
    int v = 0;

    if (!hb_param_int(p, &v) || v <= 0 || v % 8 != 0) {
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

/* Whether p is the first parameter of its name in params. */
static int first_of_name(const OSSL_PARAM params[], const OSSL_PARAM *p)
{
    const OSSL_PARAM *q;

    for (q = params; q != p; q++)
        if (strcmp(q->key, p->key) == 0)
            return 0;
    return 1;
}

int hb_mkdf_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_MKDF_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    OSSL_PARAM rest[24];
    size_t n = 0;
    int info_seen = 0;

    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        int first = first_of_name(params, p);

        if (!is_ours(p->key) && n + 1 < sizeof(rest) / sizeof(rest[0]))
            rest[n++] = *p;
        if (strcmp(p->key, OSSL_KDF_PARAM_INFO) == 0) {
            if (ctx->kind->info_concat) {
                /* A new call's first info replaces; later ones append. */
                if (!info_seen) {
                    OPENSSL_clear_free(ctx->info, ctx->info_len);
                    ctx->info = NULL;
                    ctx->info_len = 0;
                }
                info_seen = 1;
                if (!cat_octets(p, &ctx->info, &ctx->info_len))
                    return 0;
            } else if (first && !get_octets(p, &ctx->info, &ctx->info_len)) {
                return 0;
            }
            continue;
        }
        if (!first)
            continue;
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
        } else if (ctx->kind->set_param != NULL
                   && !ctx->kind->set_param(ctx->provctx, ctx->ext, p)) {
            return 0;
        }
    }
    /*
     * The default provider's KDF sees the standard parameters too, for the
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

static int is_masked_input(const HB_MKDF_CTX *ctx)
{
    return ctx->ikm_file != NULL || hb_is_masked_blob(ctx->key, ctx->key_len);
}

/* DeriveRequest; returns the masked output (free with OPENSSL_free). */
static unsigned char *derive_masked(HB_MKDF_CTX *ctx, const char *ref,
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
    d.kdf = (char *)ctx->kind->kdf;
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
                 "%s: hsmhost answered %s without a masked key", ref,
                 ctx->kind->name);
    else if ((out = OPENSSL_memdup(resp->masked->blob.data,
                                   resp->masked->blob.len)) != NULL)
        *outlen = resp->masked->blob.len;
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return out;
}

int hb_mkdf_derive(void *vctx, unsigned char *key, size_t keylen,
                   const OSSL_PARAM params[])
{
    HB_MKDF_CTX *ctx = vctx;
    const char *name = ctx->kind->name;
    Hsmbridge__Host__V1__Hash hash;
    const char *type;
    unsigned char *in = NULL, *out = NULL;
    size_t inlen = 0, outlen = 0;
    char *ref = NULL;
    int bits, ok = 0;

    if (!hb_mkdf_set_ctx_params(ctx, params))
        return 0;
    if (!is_masked_input(ctx)) {
        if (ctx->key != NULL) /* a raw key: OpenSSL's own KDF */
            return EVP_KDF_derive(ctx->inner, key, keylen, NULL) > 0;
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s needs its input keying material: "
                 "azihsm.ikm_file:<masked key file> (e.g. an ECDH "
                 "output_file), or the masked blob as the key", name);
        return 0;
    }
    if (ctx->kind->check_masked != NULL
        && !ctx->kind->check_masked(ctx->provctx, ctx->ext))
        return 0;
    hash = ctx->digest == NULL ? HSMBRIDGE__HOST__V1__HASH__HASH_SHA256
                               : hb_hash_by_name(ctx->digest, NULL);
    if (hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA256
        && hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA384
        && hash != HSMBRIDGE__HOST__V1__HASH__HASH_SHA512) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                 "%s digest %s is not supported: use SHA256, SHA384 or "
                 "SHA512", name, ctx->digest);
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
        char buf[64];

        snprintf(buf, sizeof(buf), "azihsm://(%s key parameter);type=ec", name);
        if ((ref = strdup(buf)) == NULL)
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
        HB_DEBUG("%s: masked %s key (%d bits, %zu-byte blob) written to %s",
                 name, type, bits, outlen, ctx->output_file);
    } else {
        if (key == NULL || keylen < outlen) {
            HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                     "%s: the masked %s key is a %zu-byte blob but the "
                     "output buffer has %zu bytes (give -keylen %zu or more, "
                     "or output_file)", name, type, outlen,
                     key == NULL ? 0 : keylen, outlen);
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

static const OSSL_PARAM mkdf_gettable[] = {
    OSSL_PARAM_size_t(OSSL_KDF_PARAM_SIZE, NULL),
    OSSL_PARAM_size_t(HB_PARAM_BLOB_LEN, NULL),
    OSSL_PARAM_END
};

const OSSL_PARAM *hb_mkdf_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return mkdf_gettable;
}

int hb_mkdf_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_MKDF_CTX *ctx = vctx;
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, HB_PARAM_BLOB_LEN);
    if (p != NULL && !OSSL_PARAM_set_size_t(p, ctx->blob_len))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_KDF_PARAM_SIZE);
    if (p != NULL) {
        size_t size = SIZE_MAX; /* a masked output: any buffer that holds it */

        if (!is_masked_input(ctx)) {
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
