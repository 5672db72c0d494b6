/*
 * HMAC with a masked HMAC key (one that HKDF or KBKDF made with
 * derived_key_type hmac, kdf_masked.c), and, under every load name, the
 * guard that keeps a masked key from being used as raw HMAC key bytes.
 *
 * Under the azihsm name the key is a masked blob, given as
 *   - key (OSSL_MAC_PARAM_KEY) naming the masked key file, as the upstream
 *     Integrated HSM provider reads it (`-macopt key:./hmac_key.bin`; the
 *     CLI passes the text's bytes): a key whose bytes name an existing
 *     regular file is that file, whatever it holds (the Integrated HSM
 *     device's blobs have a layout of their own); a key that reads as a
 *     path (printable text with a '/') but names no file is refused, since
 *     using it as key bytes would print a wrong MAC without an error;
 *   - azihsm.key_file:<path>, our name from before upstream had one;
 *   - the blob itself as the key octets (`-macopt hexkey:<blob>`), known
 *     by its HSMBMASK magic.
 * init reads the file and has hsmhost open the blob (OpenMaskedRequest,
 * with the file's azihsm:// URI as the reference, so the backend's errors
 * name the file); the data is collected here and sent in one MacRequest at
 * final, with the digest, which must be the key's kind (the backend refuses
 * otherwise and names the key). There is no 1024-byte cap as in the seed's
 * unmerged code; the limit is hsmhost's frame (1 MiB), so messages over
 * HB_MAC_MAX_DATA are refused with a clear error rather than split.
 *
 * Under the other names, masked keys are refused with an error that names
 * the file and says to use azihsm_provider: a key with the magic, one that
 * names an existing regular file, and azihsm.key_file.
 *
 * Any other key is raw: the default provider's HMAC in the private library
 * context computes with it, every parameter passed on, so an unqualified
 * "HMAC" fetch that lands here (TLS PRFs when this provider is activated
 * first) computes exactly what OpenSSL computes. Only a key of printable
 * bytes (no control characters) is looked up as a file; TLS's random keys
 * practically never are.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "derive.h"
#include "errors.h"
#include "masked.h"

/* One request carries the whole message; leave room in the 1 MiB frame. */
#define HB_MAC_MAX_DATA (900u * 1024u)

/* Where this context's key comes from; the last key parameter set wins. */
typedef enum {
    HB_KEY_NONE = 0,
    HB_KEY_RAW,  /* raw bytes, given to the default provider's HMAC */
    HB_KEY_BLOB, /* a masked blob given as the key octets */
    HB_KEY_FILE  /* a masked key file: key_file, named by key_param */
} hb_key_src;

typedef struct {
    HB_PROV_CTX *provctx;
    char *digest;          /* as given */
    hb_key_src src;
    char *key_file;        /* HB_KEY_FILE */
    const char *key_param; /* HB_KEY_FILE: "key" or "azihsm.key_file" */
    unsigned char *keyblob; /* HB_KEY_BLOB */
    size_t keyblob_len;
    int masked;            /* this init uses a masked key */
    char *reference;       /* the opened key: pinned reference ... */
    char *version;         /* ... and handle */
    char *opened_from;     /* the file (or key param) that handle is for */
    unsigned char *data;
    size_t data_len, data_cap;
    EVP_MAC_CTX *inner;    /* the default provider's HMAC, for raw keys */
} HB_HMAC_CTX;

static void *hmac_newctx(void *provctx)
{
    HB_HMAC_CTX *ctx = calloc(1, sizeof(*ctx));
    EVP_MAC *mac;

    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    mac = EVP_MAC_fetch(hb_priv_libctx(), "HMAC", NULL);
    ctx->inner = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    if (ctx->inner == NULL) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void clear_key(HB_HMAC_CTX *ctx)
{
    free(ctx->key_file);
    OPENSSL_clear_free(ctx->keyblob, ctx->keyblob_len);
    ctx->key_file = NULL;
    ctx->key_param = NULL;
    ctx->keyblob = NULL;
    ctx->keyblob_len = 0;
    ctx->src = HB_KEY_NONE;
}

static void hmac_freectx(void *vctx)
{
    HB_HMAC_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    free(ctx->digest);
    clear_key(ctx);
    free(ctx->reference);
    free(ctx->version);
    free(ctx->opened_from);
    OPENSSL_clear_free(ctx->data, ctx->data_cap);
    EVP_MAC_CTX_free(ctx->inner);
    free(ctx);
}

static int dup_str(char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

static void *hmac_dupctx(void *vctx)
{
    HB_HMAC_CTX *src = vctx, *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = src->provctx;
    ctx->src = src->src;
    ctx->key_param = src->key_param;
    ctx->masked = src->masked;
    if (!dup_str(&ctx->digest, src->digest)
        || !dup_str(&ctx->key_file, src->key_file)
        || !dup_str(&ctx->reference, src->reference)
        || !dup_str(&ctx->version, src->version)
        || !dup_str(&ctx->opened_from, src->opened_from)
        || (ctx->inner = EVP_MAC_CTX_dup(src->inner)) == NULL)
        goto err;
    if (src->keyblob != NULL) {
        if ((ctx->keyblob = OPENSSL_memdup(src->keyblob, src->keyblob_len)) == NULL)
            goto err;
        ctx->keyblob_len = src->keyblob_len;
    }
    if (src->data != NULL) {
        if ((ctx->data = OPENSSL_malloc(src->data_cap)) == NULL)
            goto err;
        memcpy(ctx->data, src->data, src->data_len);
        ctx->data_len = src->data_len;
        ctx->data_cap = src->data_cap;
    }
    return ctx;
err:
    hmac_freectx(ctx);
    return NULL;
}

static int set_str(HB_HMAC_CTX *ctx, const OSSL_PARAM *p, char **dst)
{
    char *s = NULL;

    if (!OSSL_PARAM_get_utf8_string(p, &s, 0)) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "HMAC parameter %s must be a string", p->key);
        return 0;
    }
    free(*dst);
    *dst = strdup(s);
    OPENSSL_free(s);
    return *dst != NULL;
}

static const char *name_of(const HB_HMAC_CTX *ctx)
{
    return ctx->provctx->name != NULL ? ctx->provctx->name : "this provider";
}

/* A masked key file from now on (the path is copied). */
static int use_file(HB_HMAC_CTX *ctx, const char *path, const char *param)
{
    char *f = strdup(path);

    if (f == NULL)
        return 0;
    clear_key(ctx);
    ctx->key_file = f;
    ctx->key_param = param;
    ctx->src = HB_KEY_FILE;
    return 1;
}

/*
 * The key octets as a file name: a NUL-terminated copy when they could be
 * one that is worth a look (no control characters, shorter than PATH_MAX),
 * else NULL. *printable: every byte is printable ASCII.
 */
static char *as_path(const unsigned char *p, size_t n, int *printable)
{
    size_t i;
    char *s;

    *printable = 1;
    if (p == NULL || n == 0 || n >= PATH_MAX)
        return NULL;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return NULL;
        if (p[i] > 0x7e)
            *printable = 0;
    }
    if ((s = malloc(n + 1)) != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

#define HB_TO_AZIHSM "masked keys are used through the provider loaded as " \
    "azihsm_provider (-provider azihsm_provider -macopt key:<masked key file>)"

/*
 * OSSL_MAC_PARAM_KEY: a masked blob, a masked key file, or raw bytes.
 * Returns 1 for raw bytes (to pass on), 2 when taken as a masked key, 0 on
 * a refusal (raised).
 */
static int set_key(HB_HMAC_CTX *ctx, const OSSL_PARAM *p)
{
    const unsigned char *k = p->data;
    size_t n = p->data_size;
    int azihsm = hb_is_azihsm(ctx->provctx), printable = 0, ret = 1;
    struct stat st;
    char *path;

    if (hb_is_masked_blob(k, n)) {
        unsigned char *b;

        if (!azihsm) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "the HMAC key is a masked key blob (HSMBMASK...), never "
                     "key bytes: the module is loaded as %s; " HB_TO_AZIHSM,
                     name_of(ctx));
            return 0;
        }
        if ((b = OPENSSL_memdup(k, n)) == NULL)
            return 0;
        clear_key(ctx);
        ctx->keyblob = b;
        ctx->keyblob_len = n;
        ctx->src = HB_KEY_BLOB;
        return 2;
    }
    if ((path = as_path(k, n, &printable)) == NULL) {
        ret = 1;
    } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        if (azihsm) {
            ret = use_file(ctx, path, OSSL_MAC_PARAM_KEY) ? 2 : 0;
        } else {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "HMAC key %.200s names a file, so it is taken for a "
                     "masked key file, never for key bytes: the module is "
                     "loaded as %s; " HB_TO_AZIHSM, path, name_of(ctx));
            ret = 0;
        }
    } else if (azihsm && printable && strchr(path, '/') != NULL) {
        /* The upstream provider's key:<file> with no such file. */
        if (stat(path, &st) == 0)
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "masked key file %.200s is not a regular file (under "
                     "azihsm_provider, the HMAC key names a masked key file)",
                     path);
        else
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "masked key file %.200s %s (under azihsm_provider, the "
                     "HMAC key names a masked key file, e.g. an HKDF or KBKDF "
                     "output_file; give raw key bytes as hexkey:)", path,
                     errno == ENOENT ? "does not exist" : strerror(errno));
        ret = 0;
    }
    free(path);
    if (ret == 1) {
        clear_key(ctx);
        ctx->src = HB_KEY_RAW;
    }
    return ret;
}

static int hmac_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_HMAC_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    OSSL_PARAM rest[16];
    size_t n = 0;

    if (params == NULL)
        return 1;
    for (p = params; p->key != NULL; p++) {
        if (strcmp(p->key, HB_PARAM_MAC_KEY_FILE) == 0) {
            char *f = NULL;

            if (!hb_is_azihsm(ctx->provctx)) {
                HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                         "%s is for masked keys, and the module is loaded as "
                         "%s; " HB_TO_AZIHSM, HB_PARAM_MAC_KEY_FILE,
                         name_of(ctx));
                return 0;
            }
            if (!set_str(ctx, p, &f))
                return 0;
            if (!use_file(ctx, f, HB_PARAM_MAC_KEY_FILE)) {
                free(f);
                return 0;
            }
            free(f);
            continue; /* ours alone */
        }
        if (strcmp(p->key, OSSL_MAC_PARAM_DIGEST) == 0
            && !set_str(ctx, p, &ctx->digest))
            return 0;
        if (strcmp(p->key, OSSL_MAC_PARAM_KEY) == 0) {
            int r;

            if (p->data_type != OSSL_PARAM_OCTET_STRING)
                return 0;
            if ((r = set_key(ctx, p)) == 0)
                return 0;
            if (r == 2)
                continue; /* a masked key is no HMAC key for OpenSSL's HMAC */
        }
        if (n + 1 < sizeof(rest) / sizeof(rest[0]))
            rest[n++] = *p;
    }
    rest[n] = OSSL_PARAM_construct_end();
    /*
     * OpenSSL's HMAC takes the standard parameters for the raw-key case; a
     * digest it refuses is reported here, as OpenSSL's own HMAC would.
     */
    return n == 0 || EVP_MAC_CTX_set_params(ctx->inner, rest);
}

/* OpenMaskedRequest for the key blob; keeps the handle. */
static int open_key(HB_HMAC_CTX *ctx, const char *from, const char *uri,
                    const unsigned char *blob, size_t bloblen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__OpenMaskedRequest o =
        HSMBRIDGE__HOST__V1__OPEN_MASKED_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    int ok = 0;

    o.reference = (char *)uri;
    o.blob.data = (uint8_t *)blob;
    o.blob.len = bloblen;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_OPEN_MASKED;
    req.open_masked = &o;
    resp = hb_call(ctx->provctx, &req, 1, NULL);
    if (resp == NULL)
        return 0;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_KEY
        || resp->key == NULL || resp->key->reference == NULL
        || resp->key->version == NULL || *resp->key->version == '\0') {
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "%s: hsmhost opened the masked key without a handle", uri);
    } else {
        free(ctx->reference);
        free(ctx->version);
        free(ctx->opened_from);
        ctx->reference = strdup(resp->key->reference);
        ctx->version = strdup(resp->key->version);
        ctx->opened_from = strdup(from);
        ok = ctx->reference != NULL && ctx->version != NULL
            && ctx->opened_from != NULL;
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return ok;
}

static int init_masked(HB_HMAC_CTX *ctx)
{
    const char *from;
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    char *uri = NULL;
    int ok = 0;

    if (ctx->src == HB_KEY_BLOB) {
        from = "(HMAC key parameter)";
        uri = strdup("azihsm://(HMAC key parameter);type=ec");
        blob = ctx->keyblob;
        bloblen = ctx->keyblob_len;
    } else {
        from = ctx->key_file;
        if (strchr(from, ';') != NULL) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "%s %s: a masked key file's path cannot contain ';'",
                     ctx->key_param, from);
            return 0;
        }
        blob = hb_read_file(ctx->provctx, from, "masked key file",
                            HB_MASKED_MAX_FILE, &bloblen);
        if (blob == NULL)
            return 0;
        /* The type only routes: an HMAC key has none of the seed's types. */
        uri = hb_azihsm_uri(from, "ec");
    }
    if (uri != NULL)
        ok = open_key(ctx, from, uri, blob, bloblen);
    if (blob != ctx->keyblob)
        OPENSSL_clear_free(blob, bloblen);
    free(uri);
    return ok;
}

static int hmac_init(void *vctx, const unsigned char *key, size_t keylen,
                     const OSSL_PARAM params[])
{
    HB_HMAC_CTX *ctx = vctx;

    if (!hmac_set_ctx_params(ctx, params))
        return 0;
    if (key != NULL) {
        OSSL_PARAM kp[2] = { OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY,
                                                     (void *)key, keylen),
                             OSSL_PARAM_END };

        if (!hmac_set_ctx_params(ctx, kp))
            return 0;
    }
    ctx->data_len = 0;
    switch (ctx->src) {
    case HB_KEY_NONE:
        ctx->masked = 0;
        if (hb_is_azihsm(ctx->provctx)) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "HMAC needs a key: key:<masked HMAC key file> (derived "
                     "with HKDF or KBKDF derived_key_type:hmac; also "
                     "azihsm.key_file:<file>), or the masked blob as "
                     "hexkey:");
            return 0;
        }
        /* OpenSSL's HMAC says what it misses. */
        return EVP_MAC_init(ctx->inner, NULL, 0, NULL);
    case HB_KEY_RAW:
        ctx->masked = 0;
        return EVP_MAC_init(ctx->inner, NULL, 0, NULL);
    case HB_KEY_BLOB:
        break;
    case HB_KEY_FILE:
        /* A file is opened once, however often the context is re-initialised. */
        ctx->masked = 1;
        if (ctx->reference != NULL && ctx->opened_from != NULL
            && strcmp(ctx->opened_from, ctx->key_file) == 0)
            return 1;
        break;
    }
    ctx->masked = 1;
    return init_masked(ctx);
}

static int hmac_update(void *vctx, const unsigned char *in, size_t inl)
{
    HB_HMAC_CTX *ctx = vctx;

    if (!ctx->masked)
        return EVP_MAC_update(ctx->inner, in, inl);
    if (inl == 0)
        return 1;
    if (inl > HB_MAC_MAX_DATA - ctx->data_len) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: HMAC with a masked key takes at most %u bytes of data "
                 "(it goes to the backend in one request); this message is "
                 "longer", ctx->reference != NULL ? ctx->reference : "HMAC",
                 HB_MAC_MAX_DATA);
        return 0;
    }
    if (ctx->data_len + inl > ctx->data_cap) {
        size_t cap = ctx->data_cap > 0 ? ctx->data_cap : 4096;
        unsigned char *d;

        while (cap < ctx->data_len + inl)
            cap *= 2;
        if (cap > HB_MAC_MAX_DATA)
            cap = HB_MAC_MAX_DATA;
        d = OPENSSL_clear_realloc(ctx->data, ctx->data_cap, cap);
        if (d == NULL)
            return 0;
        ctx->data = d;
        ctx->data_cap = cap;
    }
    memcpy(ctx->data + ctx->data_len, in, inl);
    ctx->data_len += inl;
    return 1;
}

static int hmac_final(void *vctx, unsigned char *out, size_t *outl,
                      size_t outsize)
{
    HB_HMAC_CTX *ctx = vctx;
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__MacRequest m = HSMBRIDGE__HOST__V1__MAC_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    size_t mdsize = 0;
    int ok = 0;

    if (!ctx->masked)
        return EVP_MAC_final(ctx->inner, out, outl, outsize);
    if (ctx->reference == NULL) {
        HB_RAISE(ctx->provctx, HB_R_OPERATION_NOT_INITIALIZED,
                 "HMAC: no masked key was opened");
        return 0;
    }
    m.hash = hb_hash_by_name(ctx->digest, &mdsize);
    if (m.hash == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED) {
        if (ctx->digest == NULL)
            HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                     "%s: HMAC needs a digest (-macopt digest:SHA256, SHA384 "
                     "or SHA512: the key's kind)", ctx->reference);
        else
            HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                     "%s: HMAC digest %s is not supported", ctx->reference,
                     ctx->digest);
        return 0;
    }
    if (out == NULL) {
        *outl = mdsize;
        return 1;
    }
    if (outsize < mdsize) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "%s: the HMAC has %zu bytes, the buffer %zu", ctx->reference,
                 mdsize, outsize);
        return 0;
    }
    m.reference = ctx->reference;
    m.version = ctx->version;
    m.data.data = ctx->data;
    m.data.len = ctx->data_len;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_MAC;
    req.mac = &m;
    resp = hb_call(ctx->provctx, &req, 1, NULL);
    if (resp == NULL)
        return 0;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_MAC
        || resp->mac == NULL || resp->mac->mac.len == 0
        || resp->mac->mac.len > outsize) {
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered HMAC without a MAC of the right size",
                 ctx->reference);
    } else {
        memcpy(out, resp->mac->mac.data, resp->mac->mac.len);
        *outl = resp->mac->mac.len;
        ok = 1;
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    OPENSSL_cleanse(ctx->data, ctx->data_len);
    ctx->data_len = 0;
    return ok;
}

static const OSSL_PARAM hmac_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, NULL, 0),
    OSSL_PARAM_utf8_string(HB_PARAM_MAC_KEY_FILE, NULL, 0),
    OSSL_PARAM_int(OSSL_MAC_PARAM_DIGEST_NOINIT, NULL),
    OSSL_PARAM_int(OSSL_MAC_PARAM_DIGEST_ONESHOT, NULL),
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_TLS_DATA_SIZE, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *hmac_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hmac_settable;
}

static const OSSL_PARAM hmac_gettable[] = {
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, NULL),
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_BLOCK_SIZE, NULL),
    OSSL_PARAM_END
};

static int hmac_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_HMAC_CTX *ctx = vctx;
    OSSL_PARAM *p;
    EVP_MD *md;

    if (ctx->src == HB_KEY_NONE || ctx->src == HB_KEY_RAW)
        return EVP_MAC_CTX_get_params(ctx->inner, params);
    md = ctx->digest != NULL ? EVP_MD_fetch(hb_priv_libctx(), ctx->digest, NULL)
                             : NULL;
    p = OSSL_PARAM_locate(params, OSSL_MAC_PARAM_SIZE);
    if (p != NULL && !OSSL_PARAM_set_size_t(p, md != NULL ? (size_t)EVP_MD_get_size(md) : 0))
        goto err;
    p = OSSL_PARAM_locate(params, OSSL_MAC_PARAM_BLOCK_SIZE);
    if (p != NULL
        && !OSSL_PARAM_set_size_t(p, md != NULL ? (size_t)EVP_MD_get_block_size(md) : 0))
        goto err;
    EVP_MD_free(md);
    return 1;
err:
    EVP_MD_free(md);
    return 0;
}

static const OSSL_PARAM *hmac_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hmac_gettable;
}

const OSSL_DISPATCH hb_hmac_mac_functions[] = {
    { OSSL_FUNC_MAC_NEWCTX, (void (*)(void))hmac_newctx },
    { OSSL_FUNC_MAC_DUPCTX, (void (*)(void))hmac_dupctx },
    { OSSL_FUNC_MAC_FREECTX, (void (*)(void))hmac_freectx },
    { OSSL_FUNC_MAC_INIT, (void (*)(void))hmac_init },
    { OSSL_FUNC_MAC_UPDATE, (void (*)(void))hmac_update },
    { OSSL_FUNC_MAC_FINAL, (void (*)(void))hmac_final },
    { OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS,
      (void (*)(void))hmac_gettable_ctx_params },
    { OSSL_FUNC_MAC_GET_CTX_PARAMS, (void (*)(void))hmac_get_ctx_params },
    { OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS,
      (void (*)(void))hmac_settable_ctx_params },
    { OSSL_FUNC_MAC_SET_CTX_PARAMS, (void (*)(void))hmac_set_ctx_params },
    { 0, NULL }
};
