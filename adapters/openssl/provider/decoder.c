/*
 * Decoders for the key-reference file:
 *
 *   -----BEGIN HSMBRIDGE KEY REFERENCE-----
 *   base64(DER of SEQUENCE { UTF8String "hsmbridge-keyref-v1",
 *                            UTF8String reference })
 *   -----END HSMBRIDGE KEY REFERENCE-----
 *
 * Two stages, the way OpenSSL chains decoders: a PEM decoder (registered as
 * "DER" with input=pem) passes the block's DER on, marked with our own data
 * structure name; DER decoders for RSA and EC (input=der,
 * structure=hsmbridge-keyref) parse it with an ASN.1 template, ask the host
 * for the key and hand the key object on by reference, which libcrypto
 * gives to our keymgmt's load(). So PEM_read_bio_PrivateKey, the file: store
 * and SSL_CTX_use_PrivateKey_file find the block even after other blocks.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_object.h>
#include <openssl/pem.h>

#include "errors.h"
#include "provider.h"

typedef struct {
    ASN1_UTF8STRING *version;
    ASN1_UTF8STRING *reference;
} HB_KEYREF;

ASN1_SEQUENCE(HB_KEYREF) = {
    ASN1_SIMPLE(HB_KEYREF, version, ASN1_UTF8STRING),
    ASN1_SIMPLE(HB_KEYREF, reference, ASN1_UTF8STRING),
} ASN1_SEQUENCE_END(HB_KEYREF)

DECLARE_ASN1_FUNCTIONS(HB_KEYREF)
IMPLEMENT_ASN1_FUNCTIONS(HB_KEYREF)

static void *dec_newctx(void *provctx)
{
    return provctx; /* stateless: the provider context is all we need */
}

static void dec_freectx(void *ctx)
{
    (void)ctx;
}

static int pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                      OSSL_CALLBACK *object_cb, void *object_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    BIO *in;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    int ret = 1;

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    in = BIO_new_from_core_bio(provctx->libctx, cin);
    if (in == NULL)
        return 1;
    if (PEM_read_bio(in, &name, &header, &data, &len) > 0
        && strcmp(name, HB_REF_PEM_LABEL) == 0) {
        OSSL_PARAM params[3];

        HB_DEBUG("found a %s block", HB_REF_PEM_LABEL);
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
                                                      data, (size_t)len);
        params[1] = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)HB_REF_STRUCTURE, 0);
        params[2] = OSSL_PARAM_construct_end();
        ret = object_cb(params, object_cbarg);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(in);
    return ret;
}

static unsigned char *read_all(BIO *in, long *len)
{
    unsigned char *buf = NULL, *nbuf;
    size_t cap = 0, n = 0;
    int r;

    for (;;) {
        if (n == cap) {
            if (cap >= 65536) /* a reference file is a few hundred bytes */
                break;
            cap = cap ? cap * 2 : 1024;
            nbuf = realloc(buf, cap);
            if (nbuf == NULL)
                break;
            buf = nbuf;
        }
        r = BIO_read(in, buf + n, (int)(cap - n));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    *len = (long)n;
    return buf;
}

static int der_decode(const char *want_type, void *vctx, OSSL_CORE_BIO *cin,
                      OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    BIO *in;
    unsigned char *der = NULL;
    const unsigned char *p;
    long len = 0;
    HB_KEYREF *ref = NULL;
    char *reference = NULL;
    int ret = 1, delivered = 0;

    in = BIO_new_from_core_bio(provctx->libctx, cin);
    if (in == NULL)
        return 1;
    der = read_all(in, &len);
    BIO_free(in);
    if (der == NULL || len <= 0)
        goto done;
    p = der;
    ref = d2i_HB_KEYREF(NULL, &p, len);
    if (ref == NULL || p != der + len)
        goto done; /* not ours: let other decoders try */
    if (ASN1_STRING_length(ref->version) != (int)strlen(HB_REF_VERSION)
        || memcmp(ASN1_STRING_get0_data(ref->version), HB_REF_VERSION,
                  strlen(HB_REF_VERSION)) != 0) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key reference file version '%.*s' is not '%s'",
                 ASN1_STRING_length(ref->version),
                 (const char *)ASN1_STRING_get0_data(ref->version),
                 HB_REF_VERSION);
        ret = 0;
        goto done;
    }
    reference = OPENSSL_strndup((const char *)ASN1_STRING_get0_data(ref->reference),
                                (size_t)ASN1_STRING_length(ref->reference));
    if (reference == NULL || *reference == '\0'
        || strlen(reference) != (size_t)ASN1_STRING_length(ref->reference)) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key reference file holds an empty or malformed reference");
        ret = 0;
        goto done;
    }
    HB_DEBUG("key reference file names %s (wanted as %s)", reference,
             want_type);
    /* A host failure is final for this file: stop with its message. */
    ret = hb_load_key_object(provctx, reference, want_type, object_cb,
                             object_cbarg, &delivered);
done:
    OPENSSL_free(reference);
    HB_KEYREF_free(ref);
    free(der);
    return ret;
}

static int der_rsa_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                          OSSL_CALLBACK *object_cb, void *object_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection; (void)pw_cb; (void)pw_cbarg;
    return der_decode("RSA", vctx, cin, object_cb, object_cbarg);
}

static int der_ec_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                         OSSL_CALLBACK *object_cb, void *object_cbarg,
                         OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection; (void)pw_cb; (void)pw_cbarg;
    return der_decode("EC", vctx, cin, object_cb, object_cbarg);
}

const OSSL_DISPATCH hb_pem_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_decode },
    { 0, NULL }
};

const OSSL_DISPATCH hb_der_rsa_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))der_rsa_decode },
    { 0, NULL }
};

const OSSL_DISPATCH hb_der_ec_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))der_ec_decode },
    { 0, NULL }
};
