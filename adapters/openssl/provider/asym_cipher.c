/*
 * RSA encryption and decryption (the asym_cipher operation).
 *
 * Only decryption with a backend key crosses the socket: the ciphertext and
 * a fully resolved EncryptionScheme (padding, OAEP digest, MGF1 digest,
 * label) go to hsmhost, the plaintext comes back. Encryption needs nothing
 * but the public key, so it runs here, on the key's public EVP_PKEY in the
 * private library context (default provider), configured with the same
 * parameters; so does everything done with a local key (see keymgmt.c),
 * which is what TLS RSA key exchange with ordinary keys meets when this
 * provider is activated first.
 *
 * Decryption failures are reported with a single message whatever the cause
 * (the host and the simulator take care to say only "decryption failed"),
 * so that the error queue is not a padding oracle. What is public anyway --
 * the ciphertext length, the key's permissions, the chosen scheme -- is
 * checked and named precisely.
 *
 * TLS 1.2 RSA key exchange (RSA_PKCS1_WITH_TLS_PADDING) with a backend key
 * follows RFC 5246 7.4.7.1: any padding or version failure yields a random
 * 48-byte premaster secret instead of an error, and the handshake fails
 * later at Finished, indistinguishably.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "conn.h"
#include "errors.h"
#include "provider.h"

#define HB_TLS_PREMASTER_LEN 48

typedef struct {
    HB_PROV_CTX *provctx;
    HB_KEY *key;
    int operation;          /* EVP_PKEY_OP_ENCRYPT or EVP_PKEY_OP_DECRYPT */
    int pad;                /* RSA_*_PADDING */
    EVP_MD *oaep_md;        /* NULL: SHA-1, OpenSSL's default */
    EVP_MD *mgf1_md;        /* NULL: same as oaep_md */
    unsigned char *label;
    size_t label_len;
    unsigned int tls_client_version;
    unsigned int tls_negotiated_version;
    HB_TIMING last;         /* timing of the last Decrypt request */
} HB_ASYM_CTX;

static Hsmbridge__Host__V1__Hash host_hash(const EVP_MD *md)
{
    if (EVP_MD_is_a(md, "SHA1"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA1;
    if (EVP_MD_is_a(md, "SHA2-224"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA224;
    if (EVP_MD_is_a(md, "SHA2-256"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA256;
    if (EVP_MD_is_a(md, "SHA2-384"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA384;
    if (EVP_MD_is_a(md, "SHA2-512"))
        return HSMBRIDGE__HOST__V1__HASH__HASH_SHA512;
    return HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
}

static const char *pad_name(int pad)
{
    switch (pad) {
    case RSA_PKCS1_PADDING: return "PKCS#1 v1.5";
    case RSA_PKCS1_OAEP_PADDING: return "OAEP";
    case RSA_NO_PADDING: return "none (raw RSA)";
    case RSA_PKCS1_WITH_TLS_PADDING: return "PKCS#1 v1.5 for TLS";
    }
    return "unknown";
}

static const char *key_name(const HB_ASYM_CTX *ctx)
{
    return ctx->key != NULL && ctx->key->reference != NULL
        ? ctx->key->reference : "local key";
}

static void *asym_newctx(void *provctx)
{
    HB_ASYM_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->provctx = provctx;
    ctx->pad = RSA_PKCS1_PADDING;
    return ctx;
}

static void asym_freectx(void *vctx)
{
    HB_ASYM_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    hb_key_free(ctx->key);
    EVP_MD_free(ctx->oaep_md);
    EVP_MD_free(ctx->mgf1_md);
    OPENSSL_clear_free(ctx->label, ctx->label_len);
    free(ctx);
}

static void *asym_dupctx(void *vctx)
{
    HB_ASYM_CTX *src = vctx, *ctx;

    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    *ctx = *src;
    ctx->label = NULL;
    if (src->label != NULL) {
        ctx->label = OPENSSL_malloc(src->label_len > 0 ? src->label_len : 1);
        if (ctx->label == NULL) {
            free(ctx);
            return NULL;
        }
        memcpy(ctx->label, src->label, src->label_len);
    }
    if (ctx->key != NULL)
        hb_key_up_ref(ctx->key);
    if (ctx->oaep_md != NULL)
        EVP_MD_up_ref(ctx->oaep_md);
    if (ctx->mgf1_md != NULL)
        EVP_MD_up_ref(ctx->mgf1_md);
    return ctx;
}

static int asym_set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int asym_init(void *vctx, void *vkey, const OSSL_PARAM params[],
                     int operation)
{
    HB_ASYM_CTX *ctx = vctx;
    HB_KEY *key = vkey;

    if (ctx == NULL
        || !hb_ctx_take_key(ctx->provctx, &ctx->key, key, HB_KT_RSA, 1,
                            "RSA encryption needs an RSA key"))
        return 0;
    if (operation == EVP_PKEY_OP_DECRYPT && !hb_key_can_sign(ctx->key)
        && !ctx->key->local_private) {
        HB_RAISE(ctx->provctx, HB_R_NOT_AN_HSM_KEY,
                 "cannot decrypt: this key is public only (it was not loaded "
                 "from a backend reference)");
        return 0;
    }
    if (operation == EVP_PKEY_OP_ENCRYPT && ctx->key->no_encrypt) {
        HB_RAISE(ctx->provctx, HB_R_HOST_OPERATION_NOT_ALLOWED,
                 "%s: the key does not allow encrypt (a masked key encrypts "
                 "only if made with azihsm.key_usage:keyEncipherment)",
                 key_name(ctx));
        return 0;
    }
    ctx->operation = operation;
    return asym_set_ctx_params(ctx, params);
}

static int encrypt_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return asym_init(vctx, vkey, params, EVP_PKEY_OP_ENCRYPT);
}

static int decrypt_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    return asym_init(vctx, vkey, params, EVP_PKEY_OP_DECRYPT);
}

/*
 * The Integrated HSM refuses OAEP with SHA-1 (its documented digests are
 * SHA-256/384/512); under that provider name a backend key behaves the same,
 * for encryption too, so no ciphertext is made that it would not decrypt.
 * OpenSSL's default OAEP digest is SHA-1, so an unset digest is refused.
 */
static int scheme_allowed(HB_ASYM_CTX *ctx)
{
    if (ctx->pad != RSA_PKCS1_OAEP_PADDING || ctx->key->reference == NULL
        || strcmp(ctx->provctx->propq, "provider=azihsm") != 0)
        return 1;
    if (ctx->oaep_md == NULL || EVP_MD_is_a(ctx->oaep_md, "SHA1")) {
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                 "%s: RSA-OAEP with SHA-1 is refused by %s, as by the Azure "
                 "Integrated HSM; choose the OAEP digest with -pkeyopt "
                 "rsa_oaep_md:sha256 (or sha384, sha512)", key_name(ctx),
                 ctx->provctx->name);
        return 0;
    }
    return 1;
}

/* A context on the public (or local) key, set up like ours. */
static EVP_PKEY_CTX *shadow_ctx(HB_ASYM_CTX *ctx)
{
    EVP_PKEY_CTX *p;
    OSSL_PARAM params[7], *q = params;
    int pad = ctx->pad;
    int enc = ctx->operation == EVP_PKEY_OP_ENCRYPT;

    p = EVP_PKEY_CTX_new_from_pkey(hb_priv_libctx(), ctx->key->pkey, NULL);
    if (p == NULL
        || (enc ? EVP_PKEY_encrypt_init(p) : EVP_PKEY_decrypt_init(p)) <= 0)
        goto err;
    *q++ = OSSL_PARAM_construct_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad);
    if (ctx->oaep_md != NULL)
        *q++ = OSSL_PARAM_construct_utf8_string(
            OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
            (char *)EVP_MD_get0_name(ctx->oaep_md), 0);
    if (ctx->mgf1_md != NULL)
        *q++ = OSSL_PARAM_construct_utf8_string(
            OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
            (char *)EVP_MD_get0_name(ctx->mgf1_md), 0);
    if (ctx->label != NULL)
        *q++ = OSSL_PARAM_construct_octet_string(
            OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, ctx->label, ctx->label_len);
    if (ctx->tls_client_version != 0)
        *q++ = OSSL_PARAM_construct_uint(
            OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION,
            &ctx->tls_client_version);
    if (ctx->tls_negotiated_version != 0)
        *q++ = OSSL_PARAM_construct_uint(
            OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION,
            &ctx->tls_negotiated_version);
    *q = OSSL_PARAM_construct_end();
    /* The label is copied by the default provider: ours stays ours. */
    if (EVP_PKEY_CTX_set_params(p, params) <= 0)
        goto err;
    return p;
err:
    HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
             "%s: RSA %s parameters (padding %s) rejected for this key",
             key_name(ctx), enc ? "encryption" : "decryption",
             pad_name(ctx->pad));
    EVP_PKEY_CTX_free(p);
    return NULL;
}

static int local_cipher(HB_ASYM_CTX *ctx, unsigned char *out, size_t *outlen,
                        size_t outsize, const unsigned char *in, size_t inlen)
{
    EVP_PKEY_CTX *p = shadow_ctx(ctx);
    size_t len = outsize;
    int rc;

    if (p == NULL)
        return 0;
    if (ctx->operation == EVP_PKEY_OP_ENCRYPT) {
        HB_DEBUG("encrypt locally with the public key of %s: padding %s, "
                 "%zu bytes", key_name(ctx), pad_name(ctx->pad), inlen);
        rc = EVP_PKEY_encrypt(p, out, &len, in, inlen);
    } else {
        rc = EVP_PKEY_decrypt(p, out, &len, in, inlen);
    }
    EVP_PKEY_CTX_free(p);
    if (rc <= 0) {
        if (ctx->operation == EVP_PKEY_OP_ENCRYPT)
            HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                     "%s: RSA encryption (padding %s) of %zu bytes failed; "
                     "the input may be too long for the key and padding",
                     key_name(ctx), pad_name(ctx->pad), inlen);
        return 0;
    }
    *outlen = len;
    return 1;
}

static int asym_encrypt(void *vctx, unsigned char *out, size_t *outlen,
                        size_t outsize, const unsigned char *in, size_t inlen)
{
    HB_ASYM_CTX *ctx = vctx;

    if (ctx == NULL || ctx->key == NULL
        || ctx->operation != EVP_PKEY_OP_ENCRYPT) {
        HB_RAISE(ctx ? ctx->provctx : NULL, HB_R_OPERATION_NOT_INITIALIZED,
                 "encrypt called before encrypt_init");
        return 0;
    }
    if (out == NULL) {
        *outlen = (size_t)EVP_PKEY_get_size(ctx->key->pkey);
        return 1;
    }
    if (!scheme_allowed(ctx))
        return 0;
    return local_cipher(ctx, out, outlen, outsize, in, inlen);
}

/*
 * One Decrypt request: the host's response, which the caller releases with
 * release_plaintext, or NULL with an error on the queue.
 */
static Hsmbridge__Host__V1__Response *
host_decrypt(HB_ASYM_CTX *ctx, int pad, const unsigned char *in, size_t inlen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__DecryptRequest d =
        HSMBRIDGE__HOST__V1__DECRYPT_REQUEST__INIT;
    Hsmbridge__Host__V1__EncryptionScheme scheme =
        HSMBRIDGE__HOST__V1__ENCRYPTION_SCHEME__INIT;
    Hsmbridge__Host__V1__Response *resp;

    if (pad == RSA_PKCS1_OAEP_PADDING) {
        const EVP_MD *md = ctx->oaep_md, *mgf;
        EVP_MD *sha1 = NULL;

        if (md == NULL)
            md = sha1 = EVP_MD_fetch(hb_priv_libctx(), "SHA1", NULL);
        mgf = ctx->mgf1_md != NULL ? ctx->mgf1_md : md;
        scheme.padding = HSMBRIDGE__HOST__V1__ENCRYPTION_PADDING__ENCRYPTION_PADDING_OAEP;
        scheme.oaep_hash = md != NULL ? host_hash(md)
                                      : HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
        scheme.mgf1_hash = mgf != NULL ? host_hash(mgf)
                                       : HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
        EVP_MD_free(sha1);
        if (scheme.oaep_hash == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED
            || scheme.mgf1_hash == HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED) {
            HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST,
                     "%s: OAEP decryption by a backend needs SHA-1, SHA-224, "
                     "SHA-256, SHA-384 or SHA-512 as OAEP and MGF1 digests",
                     key_name(ctx));
            return NULL;
        }
        scheme.label.data = ctx->label;
        scheme.label.len = ctx->label_len;
    } else {
        scheme.padding = HSMBRIDGE__HOST__V1__ENCRYPTION_PADDING__ENCRYPTION_PADDING_PKCS1V15;
    }
    d.reference = ctx->key->reference;
    d.version = ctx->key->version != NULL ? ctx->key->version : "";
    d.ciphertext.data = (uint8_t *)in;
    d.ciphertext.len = inlen;
    d.scheme = &scheme;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_DECRYPT;
    req.decrypt = &d;
    HB_DEBUG("decrypt %s: padding %s, oaep=%d mgf1=%d label=%zu bytes, "
             "%zu-byte ciphertext", ctx->key->reference, pad_name(pad),
             scheme.oaep_hash, scheme.mgf1_hash, scheme.label.len, inlen);
    /* Decryption has no side effect: retrying on a fresh connection is safe. */
    resp = hb_call(ctx->provctx, &req, 1, &ctx->last);
    if (resp == NULL)
        return NULL;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_DECRYPT
        || resp->decrypt == NULL) {
        HB_RAISE(ctx->provctx, HB_R_PROTOCOL,
                 "hsmhost answered Decrypt for %s without a plaintext",
                 ctx->key->reference);
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

static void release_plaintext(Hsmbridge__Host__V1__Response *resp)
{
    if (resp == NULL)
        return;
    if (resp->decrypt != NULL && resp->decrypt->plaintext.data != NULL)
        OPENSSL_cleanse(resp->decrypt->plaintext.data,
                        resp->decrypt->plaintext.len);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
}

/* All ones when a == b, else zero, without a branch on the values. */
static unsigned int ct_eq(unsigned int a, unsigned int b)
{
    unsigned int x = a ^ b;

    return (unsigned int)0 - (1u & ((x - 1) >> 31) & ~(x >> 31));
}

/*
 * TLS RSA key exchange with a backend key. The result is always 48 bytes:
 * the premaster secret when the padding and the version check pass, else a
 * random one. Only failures unrelated to the ciphertext (host unreachable,
 * key not allowed to decrypt) are errors.
 */
static int tls_decrypt(HB_ASYM_CTX *ctx, unsigned char *out, size_t *outlen,
                       size_t outsize, const unsigned char *in, size_t inlen)
{
    unsigned char fake[HB_TLS_PREMASTER_LEN];
    Hsmbridge__Host__V1__Response *resp;
    const unsigned char *pt = NULL;
    unsigned int good = 0, cv = ctx->tls_client_version,
                 nv = ctx->tls_negotiated_version;
    size_t i;

    if (cv == 0 || outsize < HB_TLS_PREMASTER_LEN) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: TLS RSA key exchange needs the client version and a "
                 "48-byte buffer", key_name(ctx));
        return 0;
    }
    if (RAND_priv_bytes_ex(hb_priv_libctx(), fake, sizeof(fake), 0) <= 0) {
        HB_RAISE(ctx->provctx, HB_R_INTERNAL, "no random bytes for TLS");
        return 0;
    }
    ERR_set_mark();
    resp = host_decrypt(ctx, RSA_PKCS1_PADDING, in, inlen);
    if (resp == NULL) {
        if (ERR_GET_REASON(ERR_peek_last_error()) != HB_R_HOST_INVALID_INPUT) {
            ERR_clear_last_mark();
            return 0;
        }
        ERR_pop_to_mark();
    } else {
        ERR_clear_last_mark();
        if (resp->decrypt->plaintext.len == HB_TLS_PREMASTER_LEN) {
            pt = resp->decrypt->plaintext.data;
            good = ct_eq(pt[0], (cv >> 8) & 0xff) & ct_eq(pt[1], cv & 0xff);
            /* The rollback-bug workaround: the negotiated version instead. */
            if (nv != 0)
                good |= ct_eq(pt[0], (nv >> 8) & 0xff)
                    & ct_eq(pt[1], nv & 0xff);
        }
    }
    for (i = 0; i < HB_TLS_PREMASTER_LEN; i++)
        out[i] = (unsigned char)(((pt != NULL ? pt[i] : 0) & good)
                                 | (fake[i] & ~good));
    *outlen = HB_TLS_PREMASTER_LEN;
    OPENSSL_cleanse(fake, sizeof(fake));
    release_plaintext(resp);
    return 1;
}

static int asym_decrypt(void *vctx, unsigned char *out, size_t *outlen,
                        size_t outsize, const unsigned char *in, size_t inlen)
{
    HB_ASYM_CTX *ctx = vctx;
    Hsmbridge__Host__V1__Response *resp;
    size_t keysize, ptlen;

    if (ctx == NULL || ctx->key == NULL
        || ctx->operation != EVP_PKEY_OP_DECRYPT) {
        HB_RAISE(ctx ? ctx->provctx : NULL, HB_R_OPERATION_NOT_INITIALIZED,
                 "decrypt called before decrypt_init");
        return 0;
    }
    keysize = (size_t)EVP_PKEY_get_size(ctx->key->pkey);
    if (out == NULL) {
        *outlen = ctx->pad == RSA_PKCS1_WITH_TLS_PADDING
            ? HB_TLS_PREMASTER_LEN : keysize;
        return 1;
    }
    if (!scheme_allowed(ctx))
        return 0;
    if (ctx->key->reference == NULL)
        return local_cipher(ctx, out, outlen, outsize, in, inlen);
    if (inlen != keysize) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "%s: ciphertext is %zu bytes, a %d-bit RSA key needs "
                 "exactly %zu", ctx->key->reference, inlen,
                 EVP_PKEY_get_bits(ctx->key->pkey), keysize);
        return 0;
    }
    switch (ctx->pad) {
    case RSA_PKCS1_PADDING:
    case RSA_PKCS1_OAEP_PADDING:
        break;
    case RSA_PKCS1_WITH_TLS_PADDING:
        return tls_decrypt(ctx, out, outlen, outsize, in, inlen);
    default:
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_PADDING,
                 "%s: RSA decryption with padding %s is not offered by a "
                 "backend (rsa_padding_mode:oaep or pkcs1)",
                 ctx->key->reference, pad_name(ctx->pad));
        return 0;
    }
    resp = host_decrypt(ctx, ctx->pad, in, inlen);
    if (resp == NULL)
        return 0;
    ptlen = resp->decrypt->plaintext.len;
    if (ptlen > outsize) {
        HB_RAISE(ctx->provctx, HB_R_BUFFER_TOO_SMALL,
                 "plaintext from %s is %zu bytes, buffer holds %zu",
                 ctx->key->reference, ptlen, outsize);
        release_plaintext(resp);
        return 0;
    }
    if (ptlen > 0)
        memcpy(out, resp->decrypt->plaintext.data, ptlen);
    *outlen = ptlen;
    release_plaintext(resp);
    return 1;
}

/* ---- parameters ---------------------------------------------------------- */

static EVP_MD *fetch_md(HB_ASYM_CTX *ctx, const OSSL_PARAM *p)
{
    const char *name = NULL;
    EVP_MD *md;

    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
        return NULL;
    md = EVP_MD_fetch(hb_priv_libctx(), name, NULL);
    if (md == NULL)
        HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_DIGEST, "unknown digest %s",
                 name);
    return md;
}

static int set_pad(HB_ASYM_CTX *ctx, const OSSL_PARAM *p)
{
    const char *s = NULL;
    int pad = -1;

    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
            return 0;
        if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0)
            pad = RSA_PKCS1_PADDING;
        else if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_OAEP) == 0)
            pad = RSA_PKCS1_OAEP_PADDING;
        else if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_NONE) == 0)
            pad = RSA_NO_PADDING;
    } else if (!OSSL_PARAM_get_int(p, &pad)) {
        return 0;
    }
    switch (pad) {
    case RSA_PKCS1_PADDING:
    case RSA_PKCS1_OAEP_PADDING:
    case RSA_NO_PADDING:
    case RSA_PKCS1_WITH_TLS_PADDING:
        ctx->pad = pad;
        return 1;
    }
    HB_RAISE(ctx->provctx, HB_R_UNSUPPORTED_PADDING,
             "RSA encryption padding %s is not supported (oaep or pkcs1)",
             s != NULL ? s : "requested");
    return 0;
}

static int asym_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_ASYM_CTX *ctx = vctx;
    const OSSL_PARAM *p;

    if (ctx == NULL)
        return 0;
    if (params == NULL)
        return 1;

    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL && !set_pad(ctx, p))
        return 0;

    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
    if (p != NULL) {
        EVP_MD *md = fetch_md(ctx, p);

        if (md == NULL)
            return 0;
        EVP_MD_free(ctx->oaep_md);
        ctx->oaep_md = md;
    }

    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        EVP_MD *md = fetch_md(ctx, p);

        if (md == NULL)
            return 0;
        EVP_MD_free(ctx->mgf1_md);
        ctx->mgf1_md = md;
    }

    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
    if (p != NULL) {
        void *label = NULL;
        size_t len = 0;

        if (!OSSL_PARAM_get_octet_string(p, &label, 0, &len))
            return 0;
        OPENSSL_clear_free(ctx->label, ctx->label_len);
        ctx->label = label;
        ctx->label_len = len;
    }

    p = OSSL_PARAM_locate_const(params,
                                OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
    if (p != NULL && !OSSL_PARAM_get_uint(p, &ctx->tls_client_version))
        return 0;
    p = OSSL_PARAM_locate_const(params,
                                OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION);
    if (p != NULL && !OSSL_PARAM_get_uint(p, &ctx->tls_negotiated_version))
        return 0;
    return 1;
}

static int asym_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    HB_ASYM_CTX *ctx = vctx;
    OSSL_PARAM *p;

    if (ctx == NULL)
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char *s = ctx->pad == RSA_PKCS1_OAEP_PADDING
                ? OSSL_PKEY_RSA_PAD_MODE_OAEP
                : ctx->pad == RSA_NO_PADDING ? OSSL_PKEY_RSA_PAD_MODE_NONE
                                             : OSSL_PKEY_RSA_PAD_MODE_PKCSV15;

            if (!OSSL_PARAM_set_utf8_string(p, s))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->pad)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
    if (p != NULL
        && !OSSL_PARAM_set_utf8_string(p, ctx->oaep_md != NULL
                                              ? EVP_MD_get0_name(ctx->oaep_md)
                                              : "SHA1"))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        const EVP_MD *m = ctx->mgf1_md != NULL ? ctx->mgf1_md : ctx->oaep_md;

        if (!OSSL_PARAM_set_utf8_string(p, m != NULL ? EVP_MD_get0_name(m)
                                                     : "SHA1"))
            return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
    if (p != NULL && !OSSL_PARAM_set_octet_ptr(p, ctx->label, ctx->label_len))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
    if (p != NULL && !OSSL_PARAM_set_uint(p, ctx->tls_client_version))
        return 0;
    p = OSSL_PARAM_locate(params,
                          OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION);
    if (p != NULL && !OSSL_PARAM_set_uint(p, ctx->tls_negotiated_version))
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
    return 1;
}

static const OSSL_PARAM asym_gettable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_octet_ptr(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_uint64(HB_PARAM_LAST_TOTAL, NULL),
    OSSL_PARAM_uint64(HB_PARAM_LAST_HOST, NULL),
    OSSL_PARAM_uint64(HB_PARAM_LAST_BACKEND, NULL),
    OSSL_PARAM_uint64(HB_PARAM_LAST_PLUGIN, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM asym_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *asym_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return asym_gettable;
}

static const OSSL_PARAM *asym_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx; (void)provctx;
    return asym_settable;
}

const OSSL_DISPATCH hb_rsa_asym_cipher_functions[] = {
    { OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))asym_newctx },
    { OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))asym_freectx },
    { OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))asym_dupctx },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))encrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))asym_encrypt },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))decrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))asym_decrypt },
    { OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS,
      (void (*)(void))asym_get_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
      (void (*)(void))asym_gettable_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS,
      (void (*)(void))asym_set_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
      (void (*)(void))asym_settable_ctx_params },
    { 0, NULL }
};
