/*
 * Encoders for our RSA and EC key objects.
 *
 * OpenSSL tries the encoders of the provider that holds the key before any
 * other, and an encoder that fails ends the encoding (there is no fallback
 * to the next candidate), so these must produce the right output for every
 * key object of ours:
 *
 *   - SubjectPublicKeyInfo (DER, PEM): the public half, encoded by the
 *     default provider's encoder in the private library context, so the
 *     bytes are exactly what OpenSSL would write for the same public key.
 *   - PrivateKeyInfo as PEM (PEM_write_bio_PrivateKey) and type-specific
 *     as DER (i2d_PrivateKey, which asks for that first): a backend key's
 *     private half never leaves the backend, so what is written is the
 *     key-reference file that our decoders read back (HB_REF_FORM_PKCS8:
 *     see write_keyref), the way pkcs11-provider writes a URI and
 *     tpm2-openssl a TSS2 blob in place of PKCS#8. `openssl pkey -in
 *     managedhsm:V:K -out key.pem` therefore yields a key file any program
 *     can load once the provider is configured. The reference is the
 *     canonical, version-pinned one of the loaded key. No cipher is
 *     applied: the file holds nothing secret.
 *   - PrivateKeyInfo as DER is what EVP_PKEY2PKCS8 asks for to put the
 *     private key itself somewhere else (`openssl pkcs8 -topk8`, `openssl
 *     pkcs12 -export`, PKCS12_create, i2d_PKCS8PrivateKey_bio): refused,
 *     with an error that names the reference. (Its callers parse the output
 *     as a PKCS8_PRIV_KEY_INFO, so there is no way to hand them a reference
 *     without it ending up in a PKCS#12 as if it were the key.) libcrypto
 *     also asks our key manager to export the private half, silently
 *     refused there (keymgmt.c): it probes that on ordinary operations.
 *   - text: the public parts as the default provider prints them, preceded
 *     (when the private half is asked for) by where the private half lives.
 *
 * Local keys (made by our keymgmt on libcrypto's behalf, see keymgmt.c) are
 * encoded by the default provider, private half, cipher and passphrase
 * included, exactly as if they had never passed through us.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_object.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conn.h"
#include "errors.h"
#include "provider.h"

typedef enum { HB_ENC_SPKI, HB_ENC_PKI, HB_ENC_TS, HB_ENC_TEXT } hb_enc_kind;

typedef struct {
    HB_PROV_CTX *provctx;
    char *cipher;      /* set by OSSL_ENCODER_CTX_set_cipher, for local keys */
    char *cipher_propq;
} HB_ENC_CTX;

static void *enc_newctx(void *provctx)
{
    HB_ENC_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL)
        ctx->provctx = provctx;
    return ctx;
}

static void enc_freectx(void *vctx)
{
    HB_ENC_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    free(ctx->cipher);
    free(ctx->cipher_propq);
    free(ctx);
}

static const OSSL_PARAM *enc_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_utf8_string(OSSL_ENCODER_PARAM_CIPHER, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_ENCODER_PARAM_PROPERTIES, NULL, 0),
        OSSL_PARAM_END
    };

    (void)provctx;
    return settable;
}

static int enc_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    HB_ENC_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    const char *s = NULL;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_ENCODER_PARAM_CIPHER);
    if (p != NULL) {
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
            return 0;
        free(ctx->cipher);
        ctx->cipher = hb_strdup(s);
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ENCODER_PARAM_PROPERTIES);
    if (p != NULL) {
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
            return 0;
        free(ctx->cipher_propq);
        ctx->cipher_propq = hb_strdup(s);
    }
    return 1;
}

/*
 * Selections are levels, as in OpenSSL's own encoders: private implies
 * public implies parameters, and an encoder answers for the highest level
 * the caller asks for.
 */
static int check_selection(int selection, int supported)
{
    static const int levels[] = { OSSL_KEYMGMT_SELECT_PRIVATE_KEY,
                                  OSSL_KEYMGMT_SELECT_PUBLIC_KEY,
                                  OSSL_KEYMGMT_SELECT_ALL_PARAMETERS };
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (selection & levels[i])
            return (supported & levels[i]) != 0;
    return 0;
}

static int spki_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return check_selection(selection, OSSL_KEYMGMT_SELECT_PUBLIC_KEY);
}

static int pki_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return check_selection(selection, OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
}

static int text_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return check_selection(selection, OSSL_KEYMGMT_SELECT_ALL);
}

/* Encodes pkey (private libctx) with the default provider's encoders. */
static int encode_default(HB_ENC_CTX *ctx, BIO *out, const EVP_PKEY *pkey,
                          int selection, const char *type,
                          const char *structure, OSSL_PASSPHRASE_CALLBACK *cb,
                          void *cbarg)
{
    OSSL_ENCODER_CTX *ectx;
    int ok = 0;

    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, selection, type, structure,
                                         NULL);
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0) {
        HB_RAISE(ctx->provctx, HB_R_INTERNAL,
                 "no default %s%s%s encoder for this %s key", type,
                 structure != NULL ? " " : "",
                 structure != NULL ? structure : "", EVP_PKEY_get0_type_name(pkey));
        goto done;
    }
    if (ctx->cipher != NULL
        && !OSSL_ENCODER_CTX_set_cipher(ectx, ctx->cipher, ctx->cipher_propq))
        goto done;
    if (cb != NULL && !OSSL_ENCODER_CTX_set_passphrase_cb(ectx, cb, cbarg))
        goto done;
    ok = OSSL_ENCODER_to_bio(ectx, out);
done:
    OSSL_ENCODER_CTX_free(ectx);
    return ok;
}

/* DER of the key-reference file: SEQUENCE { UTF8String, UTF8String }. */
static unsigned char *keyref_der(const char *reference, int *outlen)
{
    ASN1_UTF8STRING *v = ASN1_UTF8STRING_new(), *r = ASN1_UTF8STRING_new();
    unsigned char *der = NULL, *p;
    int lv, lr, total;

    if (v == NULL || r == NULL
        || !ASN1_STRING_set(v, HB_REF_VERSION, -1)
        || !ASN1_STRING_set(r, reference, -1))
        goto done;
    lv = i2d_ASN1_UTF8STRING(v, NULL);
    lr = i2d_ASN1_UTF8STRING(r, NULL);
    if (lv <= 0 || lr <= 0)
        goto done;
    total = ASN1_object_size(1, lv + lr, V_ASN1_SEQUENCE);
    if (total <= 0 || (der = OPENSSL_malloc((size_t)total)) == NULL)
        goto done;
    p = der;
    ASN1_put_object(&p, 1, lv + lr, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    i2d_ASN1_UTF8STRING(v, &p);
    i2d_ASN1_UTF8STRING(r, &p);
    *outlen = total;
done:
    ASN1_UTF8STRING_free(v);
    ASN1_UTF8STRING_free(r);
    return der;
}

/*
 * Which key-reference form a backend key's "private key" is written in: 1
 * the PKCS#8 form (label "PRIVATE KEY", a PrivateKeyInfo of algorithm
 * HB_REF_OID holding the DER above), which every program that loads PKCS#8
 * keys takes; 0 our own label ("HSMBRIDGE KEY REFERENCE", the DER alone).
 * `hsmhost key ref` has the same default (cmd/hsmhost/key.go).
 */
#define HB_REF_FORM_PKCS8 1

/* The PKCS#8 form's DER: PrivateKeyInfo { 0, { HB_REF_OID }, keyref DER }. */
static unsigned char *keyref_pkcs8_der(const char *reference, int *outlen)
{
    PKCS8_PRIV_KEY_INFO *p8 = PKCS8_PRIV_KEY_INFO_new();
    const unsigned char *oid = NULL;
    ASN1_OBJECT *aobj = NULL;
    unsigned char *inner = NULL, *der = NULL, *p;
    int inner_len = 0, len;

    if (p8 == NULL || (inner = keyref_der(reference, &inner_len)) == NULL)
        goto done;
    /* The OID's full DER: tag, length, then its 20 contents octets. */
    {
        unsigned char full[2 + sizeof(hb_ref_oid_der)];

        full[0] = V_ASN1_OBJECT;
        full[1] = sizeof(hb_ref_oid_der);
        memcpy(full + 2, hb_ref_oid_der, sizeof(hb_ref_oid_der));
        oid = full;
        aobj = d2i_ASN1_OBJECT(NULL, &oid, sizeof(full));
    }
    if (aobj == NULL
        || !PKCS8_pkey_set0(p8, aobj, 0, V_ASN1_UNDEF, NULL, inner, inner_len))
        goto done;
    aobj = NULL; /* p8 owns both now */
    inner = NULL;
    if ((len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL)) <= 0
        || (der = OPENSSL_malloc((size_t)len)) == NULL)
        goto done;
    p = der;
    i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
    *outlen = len;
done:
    ASN1_OBJECT_free(aobj);
    OPENSSL_free(inner);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return der;
}

static int write_keyref(HB_ENC_CTX *ctx, BIO *out, const HB_KEY *key, int pem)
{
    unsigned char *der;
    int len = 0, ok;

    der = HB_REF_FORM_PKCS8 ? keyref_pkcs8_der(key->reference, &len)
        : keyref_der(key->reference, &len);
    if (der == NULL) {
        HB_RAISE(ctx->provctx, HB_R_MALLOC_FAILURE,
                 "cannot encode the key reference %s", key->reference);
        return 0;
    }
    if (pem)
        ok = PEM_write_bio(out, HB_REF_FORM_PKCS8 ? HB_REF_PKCS8_PEM_LABEL
                           : HB_REF_PEM_LABEL, "", der, len) > 0;
    else
        ok = BIO_write(out, der, len) == len;
    OPENSSL_free(der);
    HB_DEBUG("wrote a key reference (%s%s) for %s", pem ? "PEM" : "DER",
             HB_REF_FORM_PKCS8 ? ", PKCS#8" : "", key->reference);
    return ok;
}

/*
 * Where the private half lives. Asks the host (best effort) for the
 * backend's name and the allowed operations; the reference alone is enough
 * if the host cannot be reached, and its error is then dropped.
 */
static int write_private_location(HB_ENC_CTX *ctx, BIO *out, const HB_KEY *key)
{
    Hsmbridge__Host__V1__Response *resp;
    const char *backend = NULL;
    int ok;

    ERR_set_mark();
    resp = hb_get_key(ctx->provctx, key->reference);
    ERR_pop_to_mark();
    if (resp != NULL && resp->key->backend != NULL && *resp->key->backend)
        backend = resp->key->backend;
    ok = BIO_printf(out, "Private-Key: (%d bit) held by backend%s%s%s, "
                    "not in this process\n", EVP_PKEY_get_bits(key->pkey),
                    backend ? " \"" : "", backend ? backend : "",
                    backend ? "\"" : "") > 0
        && BIO_printf(out, "Key reference: %s\n", key->reference) > 0;
    if (ok && resp != NULL && resp->key->n_allowed_ops > 0) {
        size_t i;

        ok = BIO_printf(out, "Allowed operations:") > 0;
        for (i = 0; ok && i < resp->key->n_allowed_ops; i++)
            ok = BIO_printf(out, " %s", resp->key->allowed_ops[i]) > 0;
        ok = ok && BIO_printf(out, "\n") > 0;
    }
    if (resp != NULL)
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return ok;
}

static int do_encode(hb_enc_kind kind, int pem, void *vctx,
                     OSSL_CORE_BIO *cout, const void *obj,
                     const OSSL_PARAM obj_abstract[], int selection,
                     OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    HB_ENC_CTX *ctx = vctx;
    const HB_KEY *key = obj;
    const char *type = kind == HB_ENC_TEXT ? "TEXT" : pem ? "PEM" : "DER";
    BIO *out;
    int ok = 0;

    /* We only ever get our own key objects: no import_object is offered. */
    if (key == NULL || obj_abstract != NULL || key->magic != HB_KEY_MAGIC
        || key->pkey == NULL) {
        HB_RAISE(ctx->provctx, HB_R_INVALID_ARGUMENT,
                 "nothing to encode: not an hsmbridge key object");
        return 0;
    }
    out = BIO_new_from_core_bio(ctx->provctx->libctx, cout);
    if (out == NULL)
        return 0;
    if (key->reference == NULL) {
        /* A local key: exactly what the default provider would write. */
        HB_DEBUG("encoding a local key as %s (selection %d%s)", type,
                 selection, ctx->cipher != NULL ? ", encrypted" : "");
        ok = encode_default(ctx, out, key->pkey, selection, type,
                            kind == HB_ENC_SPKI ? "SubjectPublicKeyInfo"
                            : kind == HB_ENC_PKI ? "PrivateKeyInfo"
                            : kind == HB_ENC_TS ? "type-specific" : NULL,
                            cb, cbarg);
    } else if (kind == HB_ENC_PKI && !pem) {
        HB_RAISE(ctx->provctx, HB_R_PRIVATE_KEY_NOT_EXPORTABLE,
                 "the private key of %s is held by the backend and cannot be "
                 "exported (as PKCS#8, into a PKCS#12 file or otherwise); "
                 "a key file that only names the key is written by `hsmhost "
                 "key ref` or `openssl pkey -in <reference> -out key.pem`",
                 key->reference);
    } else if (kind == HB_ENC_PKI || kind == HB_ENC_TS) {
        ok = write_keyref(ctx, out, key, pem);
    } else if (kind == HB_ENC_SPKI) {
        ok = encode_default(ctx, out, key->pkey, EVP_PKEY_PUBLIC_KEY, type,
                            "SubjectPublicKeyInfo", NULL, NULL);
    } else {
        /* The public half is all there is to print, whatever was asked. */
        ok = (!(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
              || write_private_location(ctx, out, key))
            && encode_default(ctx, out, key->pkey, EVP_PKEY_PUBLIC_KEY,
                              "TEXT", NULL, NULL, NULL);
    }
    BIO_free(out);
    return ok;
}

#define HB_ENCODER(name, kind, pem, does) \
    static int name##_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj, \
                             const OSSL_PARAM obj_abstract[], int selection, \
                             OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg) \
    { \
        return do_encode(kind, pem, vctx, cout, obj, obj_abstract, selection, \
                         cb, cbarg); \
    } \
    const OSSL_DISPATCH hb_##name##_encoder_functions[] = { \
        { OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx }, \
        { OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx }, \
        { OSSL_FUNC_ENCODER_SETTABLE_CTX_PARAMS, \
          (void (*)(void))enc_settable_ctx_params }, \
        { OSSL_FUNC_ENCODER_SET_CTX_PARAMS, (void (*)(void))enc_set_ctx_params }, \
        { OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))does }, \
        { OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))name##_encode }, \
        { 0, NULL } \
    };

HB_ENCODER(spki_der, HB_ENC_SPKI, 0, spki_does_selection)
HB_ENCODER(spki_pem, HB_ENC_SPKI, 1, spki_does_selection)
HB_ENCODER(pki_der, HB_ENC_PKI, 0, pki_does_selection)
HB_ENCODER(pki_pem, HB_ENC_PKI, 1, pki_does_selection)
HB_ENCODER(ts_der, HB_ENC_TS, 0, pki_does_selection)
HB_ENCODER(text, HB_ENC_TEXT, 0, text_does_selection)
