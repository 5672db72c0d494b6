/*
 * RSA (PKCS#1 v1.5, PSS) and ECDSA signatures.
 *
 * Signing sends a digest to the host: digest-sign contexts hash locally
 * with an EVP_MD from the private library context and the host gets the
 * final digest with a fully resolved SignatureScheme (OpenSSL's salt length
 * keywords are turned into a byte count here). An RSA digest-sign context
 * also keeps the message while it fits in one frame (HB_MAX_SIGN_MESSAGE)
 * and sends it with a PKCS#1 v1.5 digest, because the Integrated HSM signs
 * PKCS#1 v1.5 only over a message it hashes itself; other backends ignore
 * it. Verification never leaves the process: it runs on the key's public
 * EVP_PKEY with the default provider.
 *
 * The AlgorithmIdentifier (needed by X.509/CSR signing and by TLS) comes
 * from a shadow verify context on the public key configured with the same
 * parameters, so RSA-PSS gets exactly the RFC 4055 parameters the default
 * provider would produce for the same salt, hash and MGF1 hash.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>

#include "conn.h"
#include "errors.h"
#include "provider.h"

#define HB_MAX_DIGEST 64
#define HB_MAX_SIGN_MESSAGE (900 * 1024) /* hsmhost's limit too: one frame */

typedef struct {
    HB_PROV_CTX *provctx;
    hb_key_type alg;    /* RSA or EC: which algorithm this context is */
    HB_KEY *key;
    int operation;      /* EVP_PKEY_OP_SIGN or EVP_PKEY_OP_VERIFY */
    EVP_MD *md;         /* NULL until set */
    int pad;            /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;        /* RSA_PSS_SALTLEN_* or a byte count */
    EVP_MD *mgf1md;     /* NULL: same as md */
    EVP_MD_CTX *mdctx;  /* digest-sign/verify in progress */
    unsigned char *msg; /* RSA digest-sign: the message so far, or NULL */
    size_t msglen;
    int keep_msg;       /* keeping it: RSA digest-sign, not yet too long */
    int send_msg;       /* sig_sign called from digest_sign_final */
    HB_TIMING last;     /* timing of the last host request */
} HB_SIG_CTX;

static Hsmbridge__Host__V1__Hash host_hash(const EVP_MD *md)
{
    if (md == NULL)
        return HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
    if (EVP_MD_is_a(md, "SHA2-256"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA256;
    if (EVP_MD_is_a(md, "SHA2-384"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA384;
    if (EVP_MD_is_a(md, "SHA2-512"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA512;
    if (EVP_MD_is_a(md, "SHA1"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA1;
    if (EVP_MD_is_a(md, "SHA2-224"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA224;
    return HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
}

/* ECDSA without a configured digest: the digest length names the hash. */
static Hsmbridge__Host__V1__Hash hash_for_length(size_t len)
{
    switch (len) {
    case 20: return HSMBRIDGE__HOST__V1__HASH__HASH_SHA1;
    case 28: return HSMBRIDGE__HOST__V1__HASH__HASH_SHA224;
    case 32: return HSMBRIDGE__HOST__V1__HASH__HASH_SHA256;
    case 48: return HSMBRIDGE__HOST__V1__HASH__HASH_SHA384;
    case 64: return HSMBRIDGE__HOST__V1__HASH__HASH_SHA512;
    }
    return HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
}

static void *sig_newctx(HB_PROV_CTX *provctx, hb_key_type alg)
{
    HB_SIG_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->alg = alg;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->saltlen = RSA_PSS_SALTLEN_AUTO;
    return ctx;
}

static void *rsa_newctx(void *provctx, const char *propq)
{
    (void)propq;
    return sig_newctx(provctx, HB_KT_RSA);
}

static void *ecdsa_newctx(void *provctx, const char *propq)
{
    (void)propq;
    return sig_newctx(provctx, HB_KT_EC);
}

static void sig_freectx(void *vctx)
{
    HB_SIG_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    hb_key_free(ctx->key);
    EVP_MD_free(ctx->md);
    EVP_MD_free(ctx->mgf1md);
    EVP_MD_CTX_free(ctx->mdctx);
    OPENSSL_free(ctx->msg);
    free(ctx);
}

static void drop_message(HB_SIG_CTX *ctx)
{
    OPENSSL_free(ctx->msg);
    ctx->msg = NULL;
    ctx->msglen = 0;
    ctx->keep_msg = 0;
}

static void *sig_dupctx(void *vctx)
{
    HB_SIG_CTX *src = vctx, *ctx;

    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    *ctx = *src;
    ctx->mdctx = NULL;
    ctx->msg = NULL;
    if (src->msg != NULL) {
        ctx->msg = OPENSSL_memdup(src->msg, src->msglen);
        if (ctx->msg == NULL)
            ctx->keep_msg = 0, ctx->msglen = 0;
    }
    if (ctx->key != NULL)
        hb_key_up_ref(ctx->key);
    if (ctx->md != NULL)
        EVP_MD_up_ref(ctx->md);
    if (ctx->mgf1md != NULL)
        EVP_MD_up_ref(ctx->mgf1md);
    if (src->mdctx != NULL) {
        /* Duplicated mid-stream: the copy continues the same hash. */
        ctx->mdctx = EVP_MD_CTX_new();
        if (ctx->mdctx == NULL || !EVP_MD_CTX_copy_ex(ctx->mdctx, src->mdctx)) {
            sig_freectx(ctx);
            return NULL;
        }
    }
    return ctx;
}

static EVP_MD *fetch_md(HB_SIG_CTX *ctx, const char *name, int need_host)
{
    EVP_MD *md = EVP_MD_fetch(hb_priv_libctx(), name, NULL);

    if (md == NULL) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST, "unknown digest %s",
                 name);
        return NULL;
    }
    if (need_host && host_hash(md) == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                 "digest %s cannot be used for signing by a backend "
                 "(SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512 only)", name);
        EVP_MD_free(md);
        return NULL;
    }
    return md;
}

static int set_digest(HB_SIG_CTX *ctx, const char *name)
{
    EVP_MD *md;

    if (ctx->mdctx != NULL && ctx->md != NULL
        && EVP_MD_is_a(ctx->md, name))
        return 1;
    if (ctx->mdctx != NULL) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "the digest cannot be changed during a digest-sign operation");
        return 0;
    }
    md = fetch_md(ctx, name, ctx->operation == EVP_PKEY_OP_SIGN);
    if (md == NULL)
        return 0;
    EVP_MD_free(ctx->md);
    ctx->md = md;
    return 1;
}

static int sig_set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int sig_init(void *vctx, void *vkey, const OSSL_PARAM params[],
                    int operation)
{
    HB_SIG_CTX *ctx = vctx;
    HB_KEY *key = vkey;

    if (ctx == NULL
        || !hb_ctx_take_key(ctx->provctx, &ctx->key, key, ctx->alg, 1,
                            "key does not fit this signature algorithm"))
        return 0;
    if (operation == EVP_PKEY_OP_SIGN && !hb_key_can_sign(ctx->key)
        && !ctx->key->local_private) {
        HB_RAISE(ctx->provctx, HB_R_NOT_AN_HSM_KEY,
                 "cannot sign: this key is public only (it was not loaded "
                 "from a backend reference)");
        return 0;
    }
    ctx->operation = operation;
    EVP_MD_CTX_free(ctx->mdctx);
    ctx->mdctx = NULL;
    drop_message(ctx);
    return sig_set_ctx_params(ctx, params);
}

static int sign_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return sig_init(vctx, vkey, params, EVP_PKEY_OP_SIGN);
}

static int verify_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return sig_init(vctx, vkey, params, EVP_PKEY_OP_VERIFY);
}

/* emLen - hLen - 2, per RFC 8017 9.1.1, with emLen = ceil((modBits-1)/8). */
static int pss_max_salt(const HB_SIG_CTX *ctx, size_t hlen)
{
    int bits = EVP_PKEY_get_bits(ctx->key->pkey);
    int emlen = (bits - 1 + 7) / 8;

    return emlen - (int)hlen - 2;
}

/* The salt length in bytes that signing will use. */
static int resolve_salt(HB_SIG_CTX *ctx, size_t hlen, int *out)
{
    int max = pss_max_salt(ctx, hlen);
    int s = ctx->saltlen;

    if (s == RSA_PSS_SALTLEN_DIGEST)
        s = (int)hlen;
    else if (s == RSA_PSS_SALTLEN_AUTO || s == RSA_PSS_SALTLEN_MAX)
        s = max;
    if (s < 0 || s > max) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "PSS salt length %d does not fit a %d-bit key with a %zu-byte "
                 "hash (maximum %d)", ctx->saltlen,
                 EVP_PKEY_get_bits(ctx->key->pkey), hlen, max);
        return 0;
    }
    *out = s;
    return 1;
}

/*
 * A verify context on the public key in the private library context, set up
 * like ours. With concrete_salt the salt keyword is resolved as for signing.
 */
static EVP_PKEY_CTX *shadow_ctx(HB_SIG_CTX *ctx, int concrete_salt, int sign)
{
    EVP_PKEY_CTX *p;
    OSSL_PARAM params[5], *q = params;
    int pad = ctx->pad, salt = ctx->saltlen;

    p = EVP_PKEY_CTX_new_from_pkey(hb_priv_libctx(), ctx->key->pkey, NULL);
    if (p == NULL
        || (sign ? EVP_PKEY_sign_init(p) : EVP_PKEY_verify_init(p)) <= 0)
        goto err;
    if (ctx->md != NULL)
        *q++ = OSSL_PARAM_construct_utf8_string(
            OSSL_SIGNATURE_PARAM_DIGEST, (char *)EVP_MD_get0_name(ctx->md), 0);
    if (ctx->alg == HB_KT_RSA) {
        *q++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PAD_MODE, &pad);
        if (pad == RSA_PKCS1_PSS_PADDING) {
            if (concrete_salt && ctx->md != NULL
                && !resolve_salt(ctx, EVP_MD_get_size(ctx->md), &salt))
                goto err;
            *q++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN,
                                            &salt);
            if (ctx->mgf1md != NULL)
                *q++ = OSSL_PARAM_construct_utf8_string(
                    OSSL_SIGNATURE_PARAM_MGF1_DIGEST,
                    (char *)EVP_MD_get0_name(ctx->mgf1md), 0);
        }
    }
    *q = OSSL_PARAM_construct_end();
    if (EVP_PKEY_CTX_set_params(p, params) <= 0)
        goto err;
    return p;
err:
    HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
             "signature parameters rejected for this key");
    EVP_PKEY_CTX_free(p);
    return NULL;
}

/* A local key (see keymgmt.c) signs like the default provider would. */
static int local_sign(HB_SIG_CTX *ctx, unsigned char *sig, size_t *siglen,
                      size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    EVP_PKEY_CTX *p = shadow_ctx(ctx, 0, 1);
    size_t len = sigsize;
    int rc;

    if (p == NULL)
        return 0;
    rc = EVP_PKEY_sign(p, sig, &len, tbs, tbslen);
    EVP_PKEY_CTX_free(p);
    if (rc <= 0)
        return 0;
    *siglen = len;
    return 1;
}

static int sig_sign(void *vctx, unsigned char *sig, size_t *siglen,
                    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    HB_SIG_CTX *ctx = vctx;
    Hsmbridge__Host__V1__SignatureScheme scheme =
        HSMBRIDGE__HOST__V1__SIGNATURE_SCHEME__INIT;
    size_t maxsize;
    int salt, send_msg = 0;

    if (ctx == NULL || ctx->key == NULL || ctx->operation != EVP_PKEY_OP_SIGN) {
        HB_RAISE(ctx ? ctx->provctx : NULL, HB_R_OPERATION_NOT_INITIALIZED,
                 "sign called before sign_init");
        return 0;
    }
    maxsize = (size_t)EVP_PKEY_get_size(ctx->key->pkey);
    if (sig == NULL) {
        *siglen = maxsize;
        return 1;
    }
    if (ctx->key->reference == NULL)
        return local_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
    if (ctx->alg == HB_KT_RSA && sigsize < maxsize) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "signature buffer of %zu bytes, %zu needed", sigsize, maxsize);
        return 0;
    }
    if (ctx->md != NULL) {
        if (tbslen != (size_t)EVP_MD_get_size(ctx->md)) {
            HB_RAISE(ctx->provctx, HB_R_BAD_DIGEST_LENGTH,
                     "input is %zu bytes but a %s digest is %d bytes", tbslen,
                     EVP_MD_get0_name(ctx->md), EVP_MD_get_size(ctx->md));
            return 0;
        }
        scheme.hash = host_hash(ctx->md);
    } else if (ctx->alg == HB_KT_EC) {
        scheme.hash = hash_for_length(tbslen);
    }
    if (scheme.hash == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                 ctx->alg == HB_KT_RSA
                     ? "RSA signing needs the digest to be set (e.g. "
                       "-pkeyopt digest:sha256); raw RSA is not offered"
                     : "a %zu-byte input is not a SHA-1/SHA-2 digest", tbslen);
        return 0;
    }
    if (ctx->alg == HB_KT_EC) {
        scheme.padding = HSMBRIDGE__HOST__V1__SIGNATURE_PADDING__SIGNATURE_PADDING_ECDSA;
    } else if (ctx->pad == RSA_PKCS1_PSS_PADDING) {
        scheme.padding = HSMBRIDGE__HOST__V1__SIGNATURE_PADDING__SIGNATURE_PADDING_PSS;
        if (!resolve_salt(ctx, tbslen, &salt))
            return 0;
        scheme.salt_length = salt;
        scheme.mgf1_hash = ctx->mgf1md != NULL ? host_hash(ctx->mgf1md)
                                               : scheme.hash;
        if (scheme.mgf1_hash == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED) {
            HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                     "unsupported MGF1 digest");
            return 0;
        }
    } else {
        scheme.padding = HSMBRIDGE__HOST__V1__SIGNATURE_PADDING__SIGNATURE_PADDING_PKCS1V15;
        send_msg = ctx->send_msg && ctx->keep_msg;
    }
    HB_DEBUG("sign %s: padding=%d hash=%d salt=%d mgf1=%d digest=%zu bytes",
             ctx->key->reference, scheme.padding, scheme.hash,
             scheme.salt_length, scheme.mgf1_hash, tbslen);
    return hb_sign_digest(ctx->provctx, ctx->key->reference, ctx->key->version,
                          tbs, tbslen, send_msg ? ctx->msg : NULL,
                          send_msg ? ctx->msglen : 0, &scheme, sig, siglen,
                          sigsize, &ctx->last);
}

static int sig_verify(void *vctx, const unsigned char *sig, size_t siglen,
                      const unsigned char *tbs, size_t tbslen)
{
    HB_SIG_CTX *ctx = vctx;
    EVP_PKEY_CTX *p;
    int rc;

    if (ctx == NULL || ctx->key == NULL
        || ctx->operation != EVP_PKEY_OP_VERIFY)
        return 0;
    p = shadow_ctx(ctx, 0, 0);
    if (p == NULL)
        return 0;
    rc = EVP_PKEY_verify(p, sig, siglen, tbs, tbslen);
    EVP_PKEY_CTX_free(p);
    return rc == 1;
}

/* ---- digest sign / verify -------------------------------------------------- */

static int digest_init(void *vctx, const char *mdname, void *vkey,
                       const OSSL_PARAM params[], int operation)
{
    HB_SIG_CTX *ctx = vctx;

    if (!sig_init(vctx, vkey, NULL, operation))
        return 0;
    if (!set_digest(ctx, mdname != NULL && *mdname ? mdname : "SHA256"))
        return 0;
    drop_message(ctx);
    ctx->keep_msg = ctx->alg == HB_KT_RSA && operation == EVP_PKEY_OP_SIGN;
    ctx->mdctx = EVP_MD_CTX_new();
    if (ctx->mdctx == NULL || !EVP_DigestInit_ex2(ctx->mdctx, ctx->md, NULL)) {
        EVP_MD_CTX_free(ctx->mdctx);
        ctx->mdctx = NULL;
        HB_RAISE(ctx->provctx, HB_R_INTERNAL, "cannot start the digest");
        return 0;
    }
    return sig_set_ctx_params(ctx, params);
}

static int digest_sign_init(void *vctx, const char *mdname, void *vkey,
                            const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, vkey, params, EVP_PKEY_OP_SIGN);
}

static int digest_verify_init(void *vctx, const char *mdname, void *vkey,
                              const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, vkey, params, EVP_PKEY_OP_VERIFY);
}

static int digest_update(void *vctx, const unsigned char *data, size_t len)
{
    HB_SIG_CTX *ctx = vctx;

    if (ctx == NULL || ctx->mdctx == NULL)
        return 0;
    if (ctx->keep_msg) {
        unsigned char *grown = NULL;

        if (len <= HB_MAX_SIGN_MESSAGE - ctx->msglen
            && (grown = OPENSSL_realloc(ctx->msg, ctx->msglen + len + 1)) != NULL) {
            memcpy(grown + ctx->msglen, data, len);
            ctx->msg = grown;
            ctx->msglen += len;
        } else {
            drop_message(ctx); /* too long to send: digest only */
        }
    }
    return EVP_DigestUpdate(ctx->mdctx, data, len);
}

static int digest_final(HB_SIG_CTX *ctx, unsigned char *md, unsigned int *mdlen)
{
    if (ctx == NULL || ctx->mdctx == NULL) {
        HB_RAISE(ctx ? ctx->provctx : NULL, HB_R_OPERATION_NOT_INITIALIZED,
                 "digest operation not initialised");
        return 0;
    }
    return EVP_DigestFinal_ex(ctx->mdctx, md, mdlen);
}

static int digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
                             size_t sigsize)
{
    HB_SIG_CTX *ctx = vctx;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (sig == NULL)
        return sig_sign(vctx, NULL, siglen, sigsize, NULL, 0);
    int ok;

    if (!digest_final(ctx, md, &mdlen))
        return 0;
    ctx->send_msg = 1;
    ok = sig_sign(vctx, sig, siglen, sigsize, md, mdlen);
    ctx->send_msg = 0;
    return ok;
}

static int digest_verify_final(void *vctx, const unsigned char *sig,
                               size_t siglen)
{
    HB_SIG_CTX *ctx = vctx;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!digest_final(ctx, md, &mdlen))
        return 0;
    return sig_verify(vctx, sig, siglen, md, mdlen);
}

/* ---- parameters ---------------------------------------------------------- */

static int sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_SIG_CTX *ctx = vctx;
    const OSSL_PARAM *p;

    if (ctx == NULL)
        return 0;
    if (params == NULL)
        return 1;

    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL) {
        const char *name = NULL;

        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_digest(ctx, name))
            return 0;
    }
    if (ctx->alg != HB_KT_RSA)
        return 1;

    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL) {
        int pad = 0;
        const char *s = NULL;

        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
                return 0;
            if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0)
                pad = RSA_PKCS1_PADDING;
            else if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0)
                pad = RSA_PKCS1_PSS_PADDING;
        } else if (!OSSL_PARAM_get_int(p, &pad)) {
            return 0;
        }
        if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING) {
            HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_PADDING,
                     "RSA signature padding %s is not supported (pkcs1 or "
                     "pss only)", s != NULL ? s : "requested");
            return 0;
        }
        ctx->pad = pad;
    }

    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p != NULL) {
        int salt;

        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char *s = NULL;
            char *end;
            long v;

            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
                return 0;
            if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0) {
                salt = RSA_PSS_SALTLEN_DIGEST;
            } else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0) {
                salt = RSA_PSS_SALTLEN_MAX;
            } else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0) {
                salt = RSA_PSS_SALTLEN_AUTO;
            } else {
                v = strtol(s, &end, 10);
                if (*s == '\0' || *end != '\0' || v < -3 || v > 65535) {
                    HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                             "bad PSS salt length '%s'", s);
                    return 0;
                }
                salt = (int)v;
            }
        } else if (!OSSL_PARAM_get_int(p, &salt)) {
            return 0;
        }
        if (salt < RSA_PSS_SALTLEN_MAX) {
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "unsupported PSS salt length %d", salt);
            return 0;
        }
        ctx->saltlen = salt;
    }

    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        const char *name = NULL;
        EVP_MD *md;

        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        md = fetch_md(ctx, name, ctx->operation == EVP_PKEY_OP_SIGN);
        if (md == NULL)
            return 0;
        EVP_MD_free(ctx->mgf1md);
        ctx->mgf1md = md;
    }
    return 1;
}


static int get_aid(HB_SIG_CTX *ctx, OSSL_PARAM *p)
{
    EVP_PKEY_CTX *shadow;
    OSSL_PARAM one[2];
    int ok;

    if (ctx->key == NULL || ctx->md == NULL) {
        HB_RAISE(ctx->provctx, HB_R_OPERATION_NOT_INITIALIZED,
                 "the algorithm identifier needs a key and a digest");
        return 0;
    }
    shadow = shadow_ctx(ctx, ctx->operation == EVP_PKEY_OP_SIGN, 0);
    if (shadow == NULL)
        return 0;
    one[0] = *p;
    one[1] = OSSL_PARAM_construct_end();
    ok = EVP_PKEY_CTX_get_params(shadow, one) > 0;
    p->return_size = one[0].return_size;
    EVP_PKEY_CTX_free(shadow);
    return ok;
}

static int sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_SIG_CTX *ctx = vctx;
    OSSL_PARAM *p;

    if (ctx == NULL)
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
    if (p != NULL && !get_aid(ctx, p))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL
        && !OSSL_PARAM_set_utf8_string(p, ctx->md ? EVP_MD_get0_name(ctx->md)
                                                  : ""))
        return 0;
    p = OSSL_PARAM_locate(params, HB_PARAM_LAST_TOTAL);
    if (p != NULL && !OSSL_PARAM_set_uint64(p, ctx->last.total_ns))
        return 0;
    p = OSSL_PARAM_locate(params, HB_PARAM_LAST_HOST);
    if (p != NULL && !OSSL_PARAM_set_uint64(p, ctx->last.host_ns))
        return 0;
    p = OSSL_PARAM_locate(params, HB_PARAM_LAST_BACKEND);
    if (p != NULL && !OSSL_PARAM_set_uint64(p, ctx->last.backend_ns))
        return 0;
    p = OSSL_PARAM_locate(params, HB_PARAM_LAST_PLUGIN);
    if (p != NULL && !OSSL_PARAM_set_uint64(p, ctx->last.plugin_ns))
        return 0;
    if (ctx->alg != HB_KT_RSA)
        return 1;

    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (!OSSL_PARAM_set_utf8_string(p, ctx->pad == RSA_PKCS1_PSS_PADDING
                                                   ? OSSL_PKEY_RSA_PAD_MODE_PSS
                                                   : OSSL_PKEY_RSA_PAD_MODE_PKCSV15))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->pad)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            char buf[16];
            const char *s = buf;

            switch (ctx->saltlen) {
            case RSA_PSS_SALTLEN_DIGEST: s = OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST; break;
            case RSA_PSS_SALTLEN_MAX: s = OSSL_PKEY_RSA_PSS_SALT_LEN_MAX; break;
            case RSA_PSS_SALTLEN_AUTO: s = OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO; break;
            default: snprintf(buf, sizeof(buf), "%d", ctx->saltlen);
            }
            if (!OSSL_PARAM_set_utf8_string(p, s))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->saltlen)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        const EVP_MD *m = ctx->mgf1md != NULL ? ctx->mgf1md : ctx->md;

        if (!OSSL_PARAM_set_utf8_string(p, m ? EVP_MD_get0_name(m) : ""))
            return 0;
    }
    return 1;
}

#define TIMING_PARAMS \
    OSSL_PARAM_uint64(HB_PARAM_LAST_TOTAL, NULL), \
    OSSL_PARAM_uint64(HB_PARAM_LAST_HOST, NULL), \
    OSSL_PARAM_uint64(HB_PARAM_LAST_BACKEND, NULL), \
    OSSL_PARAM_uint64(HB_PARAM_LAST_PLUGIN, NULL)

static const OSSL_PARAM rsa_gettable[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    TIMING_PARAMS,
    OSSL_PARAM_END
};

static const OSSL_PARAM ecdsa_gettable[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    TIMING_PARAMS,
    OSSL_PARAM_END
};

static const OSSL_PARAM rsa_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM ecdsa_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return rsa_gettable;
}

static const OSSL_PARAM *ecdsa_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return ecdsa_gettable;
}

static const OSSL_PARAM *rsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return rsa_settable;
}

static const OSSL_PARAM *ecdsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return ecdsa_settable;
}

#define SIG_COMMON \
    { OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx }, \
    { OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx }, \
    { OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sign_init }, \
    { OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign }, \
    { OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))verify_init }, \
    { OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_update }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, \
      (void (*)(void))digest_verify_init }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))digest_update }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, \
      (void (*)(void))digest_verify_final }, \
    { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params }, \
    { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params }

const OSSL_DISPATCH hb_rsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx },
    SIG_COMMON,
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
      (void (*)(void))rsa_gettable_ctx_params },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
      (void (*)(void))rsa_settable_ctx_params },
    { 0, NULL }
};

const OSSL_DISPATCH hb_ecdsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ecdsa_newctx },
    SIG_COMMON,
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
      (void (*)(void))ecdsa_gettable_ctx_params },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
      (void (*)(void))ecdsa_settable_ctx_params },
    { 0, NULL }
};
