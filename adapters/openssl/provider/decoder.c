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
#include <openssl/err.h>
#include <openssl/pem.h>

#include "errors.h"
#include "provider.h"

/*
 * The most a key-reference file's DER may be. A reference is a few hundred
 * bytes (an azihsm:// path at most PATH_MAX); anything near this is not
 * one, and is refused here, naming the limit, rather than sent to hsmhost.
 */
#define HB_REF_MAX_DER 65536L

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

static void raise_too_large(HB_PROV_CTX *provctx, long len)
{
    HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
             "key reference file holds %ld bytes of DER, more than any key "
             "reference file (%ld)", len, HB_REF_MAX_DER);
}

/*
 * Parses a key-reference file's DER. 1: *reference is its reference (free
 * with OPENSSL_free); 0: not a key-reference file; -1: one, but unusable
 * (too large, another version, no reference), raised.
 */
static int parse_keyref(HB_PROV_CTX *provctx, const unsigned char *der,
                        long len, char **reference)
{
    const unsigned char *p = der;
    HB_KEYREF *ref;
    int ret = -1;

    *reference = NULL;
    if (len > HB_REF_MAX_DER) {
        raise_too_large(provctx, len);
        return -1;
    }
    ref = d2i_HB_KEYREF(NULL, &p, len);
    if (ref == NULL || p != der + len) {
        HB_KEYREF_free(ref);
        return 0;
    }
    if (ASN1_STRING_length(ref->version) != (int)strlen(HB_REF_VERSION)
        || memcmp(ASN1_STRING_get0_data(ref->version), HB_REF_VERSION,
                  strlen(HB_REF_VERSION)) != 0) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key reference file version '%.*s' is not '%s'",
                 ASN1_STRING_length(ref->version),
                 (const char *)ASN1_STRING_get0_data(ref->version),
                 HB_REF_VERSION);
        goto done;
    }
    *reference = OPENSSL_strndup(
        (const char *)ASN1_STRING_get0_data(ref->reference),
        (size_t)ASN1_STRING_length(ref->reference));
    if (*reference == NULL || **reference == '\0'
        || strlen(*reference) != (size_t)ASN1_STRING_length(ref->reference)) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key reference file holds an empty or malformed reference");
        OPENSSL_free(*reference);
        *reference = NULL;
        goto done;
    }
    ret = 1;
done:
    HB_KEYREF_free(ref);
    return ret;
}

/*
 * The block's label says it is ours, so what is wrong with it is said here,
 * and decoding stops: in the DER stage it would be lost when the caller is
 * OSSL_STORE (the openssl CLI's file loader), which first tries the DER as
 * a key in a nested decoder and discards that decoder's errors. (A host
 * failure, found only in the DER stage, is lost there the same way.)
 */
static int pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                      OSSL_CALLBACK *object_cb, void *object_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    BIO *in;
    char *name = NULL, *header = NULL, *reference = NULL;
    unsigned char *data = NULL;
    long len = 0;
    int ret = 1, ok;

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
        ok = parse_keyref(provctx, data, len, &reference);
        OPENSSL_free(reference);
        if (ok == 0)
            HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                     "the %s block holds no key reference", HB_REF_PEM_LABEL);
        if (ok <= 0) {
            ret = 0;
            goto done;
        }
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
                                                      data, (size_t)len);
        params[1] = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)HB_REF_STRUCTURE, 0);
        params[2] = OSSL_PARAM_construct_end();
        ret = object_cb(params, object_cbarg);
    }
done:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(in);
    return ret;
}

/*
 * Reads at most max bytes; *more says there was more. realloc, not
 * OPENSSL_realloc: the buffer holds a reference, nothing secret.
 */
static unsigned char *read_all(BIO *in, long max, long *len, int *more)
{
    unsigned char *buf = NULL, *nbuf;
    size_t cap = 0, n = 0;
    int r;

    *more = 0;
    for (;;) {
        if (n == cap) {
            if (cap > (size_t)max) { /* one byte past max: there is more */
                *more = 1;
                n = (size_t)max;
                break;
            }
            cap = cap ? cap * 2 : 1024;
            if (cap > (size_t)max)
                cap = (size_t)max + 1;
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

/*
 * Whether der, the start of something larger, begins as a key-reference
 * file does (SEQUENCE { UTF8String "hsmbridge-keyref-v1", ...): enough to
 * say that a file too large to parse is ours. *total is the SEQUENCE's
 * declared size.
 */
static int starts_as_keyref(const unsigned char *der, long len, long *total)
{
    const unsigned char *p = der;
    long n = 0, vlen = (long)strlen(HB_REF_VERSION);
    int tag, xclass, r, ours = 0;

    ERR_set_mark(); /* "too long" is expected here: the rest is unread */
    r = ASN1_get_object(&p, &n, &tag, &xclass, len);
    if (r != 0x80 && (r & V_ASN1_CONSTRUCTED) && tag == V_ASN1_SEQUENCE
        && xclass == V_ASN1_UNIVERSAL) {
        *total = n + (long)(p - der);
        r = ASN1_get_object(&p, &n, &tag, &xclass, len - (long)(p - der));
        ours = (r & 0x80) == 0 && tag == V_ASN1_UTF8STRING
            && xclass == V_ASN1_UNIVERSAL && n == vlen
            && memcmp(p, HB_REF_VERSION, (size_t)vlen) == 0;
    }
    ERR_pop_to_mark();
    return ours;
}

/* DER from our PEM decoder, or a DER-form file (pkey -outform DER). */
static int der_decode(const char *want_type, void *vctx, OSSL_CORE_BIO *cin,
                      OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    BIO *in;
    unsigned char *der = NULL;
    long len = 0, total = 0;
    char *reference = NULL;
    int ret = 1, delivered = 0, more, ok;

    in = BIO_new_from_core_bio(provctx->libctx, cin);
    if (in == NULL)
        return 1;
    der = read_all(in, HB_REF_MAX_DER, &len, &more);
    BIO_free(in);
    if (der == NULL || len <= 0)
        goto done;
    if (more) {
        /* Not ours unless it starts as ours: other decoders may want it. */
        if (starts_as_keyref(der, len, &total)) {
            raise_too_large(provctx, total);
            ret = 0;
        }
        goto done;
    }
    ok = parse_keyref(provctx, der, len, &reference);
    if (ok <= 0) {
        ret = ok == 0; /* not ours: let other decoders try */
        goto done;
    }
    HB_DEBUG("key reference file names %s (wanted as %s)", reference,
             want_type);
    /* A host failure is final for this file: stop with its message. */
    ret = hb_load_key_object(provctx, reference, want_type, object_cb,
                             object_cbarg, &delivered);
done:
    OPENSSL_free(reference);
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
