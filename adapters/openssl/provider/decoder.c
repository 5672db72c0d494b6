/*
 * Decoders for the key-reference file, in two forms that hold the same DER
 * (SEQUENCE { UTF8String "hsmbridge-keyref-v1", UTF8String reference }):
 *
 *   -----BEGIN HSMBRIDGE KEY REFERENCE-----       our own label
 *   base64(the DER)
 *
 *   -----BEGIN PRIVATE KEY-----                   the PKCS#8 form
 *   base64(PrivateKeyInfo { version 0, algorithm HB_REF_OID (no
 *          parameters), privateKey OCTET STRING { the DER } })
 *
 * The label form plugs into OpenSSL's decoder chains in two stages: a PEM
 * decoder (registered as "DER" with input=pem) passes the block's DER on,
 * marked with our own data structure name; DER decoders for RSA and EC
 * (input=der, structure=hsmbridge-keyref) parse it with an ASN.1 template,
 * ask the host for the key and hand the key object on by reference, which
 * libcrypto gives to our keymgmt's load(). So PEM_read_bio_PrivateKey, the
 * file: store and SSL_CTX_use_PrivateKey_file find the block even after
 * other blocks.
 *
 * Programs that pick PEM blocks by label (Apache's
 * SSLProxyMachineCertificateFile through PEM_X509_INFO_read_bio, Postfix's
 * smtpd_tls_chain_files) skip that label, so the PKCS#8 form exists. Its
 * PrivateKeyInfo reaches a decoder the way every PKCS#8 key does: the
 * default provider's PEM decoder (or ours, for the clearer errors) passes
 * the DER on as structure "PrivateKeyInfo", and its EncryptedPrivateKeyInfo
 * decoder (a DER file, d2i_AutoPrivateKey) and OpenSSL 3.2's PEM decoder
 * name the algorithm's OID as the data type. libcrypto only considers a
 * decoder whose name is that of some key manager, and then only one named
 * by the data type, so the PKCS#8 decoder (input=der,
 * structure=PrivateKeyInfo) is named HSMBRIDGE-KEYREF and by the OID, and
 * a key manager of that name exists that holds no keys: the decoder
 * delivers an RSA or EC key object (data type "RSA", "EC"), which
 * libcrypto hands to our RSA or EC key manager as before.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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

/* HB_REF_OID, 2.25.133896219887739542807793727763915612139, as DER. */
const unsigned char hb_ref_oid_der[20] = {
    0x69, 0x81, 0xc9, 0xbb, 0xbc, 0xd4, 0xf3, 0xef, 0xda, 0xa0,
    0x9d, 0xbd, 0xeb, 0xdb, 0xe5, 0x88, 0xb4, 0xa8, 0xbf, 0x6b
};

/*
 * The most the head of a key-reference PKCS#8 takes: the outer SEQUENCE's
 * tag and length (at most 5 bytes below HB_REF_MAX_DER), INTEGER 0 (3),
 * and the AlgorithmIdentifier SEQUENCE (2) holding only the OID (22).
 */
#define HB_PKI_HEAD_MAX 32

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
 * Whether der, the start of something larger, begins as a key-reference
 * PKCS#8 does: SEQUENCE { INTEGER 0, SEQUENCE { OID HB_REF_OID } ...,
 * parameters absent. Only this head is looked at, so that other programs'
 * private keys, which reach our decoders too, are not parsed by us. *total
 * is the outer SEQUENCE's declared size.
 */
static int starts_as_keyref_pkcs8(const unsigned char *der, long len,
                                  long *total)
{
    const unsigned char *p = der;
    long n = 0;
    int tag, xclass, r, ours = 0;

    ERR_set_mark(); /* "too long" is expected here: the rest is unread */
    r = ASN1_get_object(&p, &n, &tag, &xclass, len);
    if (r == 0x80 || !(r & V_ASN1_CONSTRUCTED) || tag != V_ASN1_SEQUENCE
        || xclass != V_ASN1_UNIVERSAL)
        goto done;
    *total = n + (long)(p - der);
    /* version: INTEGER 0 */
    if (len - (p - der) < 3 || p[0] != V_ASN1_INTEGER || p[1] != 1
        || p[2] != 0)
        goto done;
    p += 3;
    /* AlgorithmIdentifier: exactly our OID, nothing after it */
    if (len - (p - der) < 2 + 2 + (long)sizeof(hb_ref_oid_der)
        || p[0] != (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)
        || p[1] != 2 + sizeof(hb_ref_oid_der)
        || p[2] != V_ASN1_OBJECT || p[3] != sizeof(hb_ref_oid_der)
        || memcmp(p + 4, hb_ref_oid_der, sizeof(hb_ref_oid_der)) != 0)
        goto done;
    ours = 1;
done:
    ERR_pop_to_mark();
    return ours;
}

/*
 * Unwraps a key-reference PKCS#8 (exactly der..der+len). 1: *p8 holds it
 * (free with PKCS8_PRIV_KEY_INFO_free) and *inner, *inner_len point at its
 * key-reference DER inside *p8; 0: not a key-reference PKCS#8; -1: one (it
 * starts as one) but malformed, raised.
 */
static int unwrap_pkcs8(HB_PROV_CTX *provctx, const unsigned char *der,
                        long len, PKCS8_PRIV_KEY_INFO **p8,
                        const unsigned char **inner, int *inner_len)
{
    const unsigned char *p = der;
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *aobj = NULL;
    long total = 0;
    int ptype = 0;

    *p8 = NULL;
    if (!starts_as_keyref_pkcs8(der, len, &total))
        return 0;
    if (total > HB_REF_MAX_DER + HB_PKI_HEAD_MAX) {
        raise_too_large(provctx, total);
        return -1;
    }
    ERR_set_mark();
    *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len);
    ERR_pop_to_mark();
    if (*p8 == NULL || p != der + len
        || !PKCS8_pkey_get0(&aobj, inner, inner_len, &alg, *p8)
        || PKCS8_pkey_get0_attrs(*p8) != NULL) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key-reference PKCS#8 (algorithm %s) is malformed: not "
                 "exactly one PrivateKeyInfo without attributes",
                 HB_REF_OID);
        goto bad;
    }
    X509_ALGOR_get0(NULL, &ptype, NULL, alg);
    if (ptype != V_ASN1_UNDEF) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key-reference PKCS#8 has algorithm parameters; "
                 "%s takes none", HB_REF_OID);
        goto bad;
    }
    return 1;
bad:
    PKCS8_PRIV_KEY_INFO_free(*p8);
    *p8 = NULL;
    return -1;
}

/*
 * A key-reference PKCS#8's reference: 1 and *reference (OPENSSL_free), 0 not
 * ours, -1 ours but unusable (raised).
 */
static int parse_keyref_pkcs8(HB_PROV_CTX *provctx, const unsigned char *der,
                              long len, char **reference)
{
    PKCS8_PRIV_KEY_INFO *p8;
    const unsigned char *inner;
    int inner_len = 0, ok;

    *reference = NULL;
    ok = unwrap_pkcs8(provctx, der, len, &p8, &inner, &inner_len);
    if (ok <= 0)
        return ok;
    ok = parse_keyref(provctx, inner, inner_len, reference);
    if (ok == 0) {
        HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                 "key-reference PKCS#8 (algorithm %s) holds no key "
                 "reference", HB_REF_OID);
        ok = -1;
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    return ok;
}

/*
 * A block that is ours (our label, or "PRIVATE KEY" holding a PKCS#8 with
 * our algorithm) is checked here, and what is wrong with it is said here,
 * and decoding stops: in the DER stage it would be lost when the caller is
 * OSSL_STORE (the openssl CLI's file loader), which first tries the DER as
 * a key in a nested decoder and discards that decoder's errors. (A host
 * failure, found only in the DER stage, is lost there the same way.) Every
 * other block, other programs' private keys included, is left alone, and
 * wiped when freed.
 */
static int pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                      OSSL_CALLBACK *object_cb, void *object_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    BIO *in;
    char *name = NULL, *header = NULL, *reference = NULL;
    const char *structure;
    unsigned char *data = NULL;
    long len = 0;
    int ret = 1, ok;
    OSSL_PARAM params[3];

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    in = BIO_new_from_core_bio(provctx->libctx, cin);
    if (in == NULL)
        return 1;
    if (PEM_read_bio(in, &name, &header, &data, &len) <= 0)
        goto done;
    if (strcmp(name, HB_REF_PEM_LABEL) == 0) {
        HB_DEBUG("found a %s block", HB_REF_PEM_LABEL);
        structure = HB_REF_STRUCTURE;
        ok = parse_keyref(provctx, data, len, &reference);
        if (ok == 0)
            HB_RAISE(provctx, HB_R_BAD_REFERENCE_FILE,
                     "the %s block holds no key reference", HB_REF_PEM_LABEL);
    } else if (strcmp(name, HB_REF_PKCS8_PEM_LABEL) == 0) {
        /* Ours only with our algorithm; then the PKCS#8 decoder loads it. */
        structure = "PrivateKeyInfo";
        if ((ok = parse_keyref_pkcs8(provctx, data, len, &reference)) == 0)
            goto done;
        HB_DEBUG("found a %s block of algorithm %s", HB_REF_PKCS8_PEM_LABEL,
                 HB_REF_OID);
    } else {
        goto done;
    }
    OPENSSL_free(reference);
    if (ok <= 0) {
        ret = 0;
        goto done;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
                                                  data, (size_t)len);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)structure, 0);
    params[2] = OSSL_PARAM_construct_end();
    ret = object_cb(params, object_cbarg);
done:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, data != NULL ? (size_t)len : 0);
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

/*
 * A PrivateKeyInfo: from a PEM decoder (ours or the default provider's), a
 * DER file, EVP_PKCS82PKEY (Postfix) or d2i_AutoPrivateKey
 * (PEM_X509_INFO_read_bio: Apache's proxy certificates). Only its head is
 * read before it is known to be ours: anything else is another program's
 * private key, for the other decoders, and the head read is wiped.
 */
static int pki_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                      OSSL_CALLBACK *object_cb, void *object_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    HB_PROV_CTX *provctx = vctx;
    unsigned char head[HB_PKI_HEAD_MAX], *der = NULL;
    long n = 0, total = 0;
    char *reference = NULL;
    int r, ret = 1, ok, delivered = 0;
    BIO *in;

    (void)selection; (void)pw_cb; (void)pw_cbarg;
    in = BIO_new_from_core_bio(provctx->libctx, cin);
    if (in == NULL)
        return 1;
    while (n < (long)sizeof(head)
           && (r = BIO_read(in, head + n, (int)(sizeof(head) - (size_t)n))) > 0)
        n += r;
    if (!starts_as_keyref_pkcs8(head, n, &total))
        goto done;
    if (total > HB_REF_MAX_DER + HB_PKI_HEAD_MAX) {
        raise_too_large(provctx, total);
        ret = 0;
        goto done;
    }
    /* One byte more than declared, so that trailing bytes are seen. */
    if ((der = malloc((size_t)total + 1)) == NULL)
        goto done;
    if (n > total + 1)
        n = total + 1;
    memcpy(der, head, (size_t)n);
    while (n < total + 1 && (r = BIO_read(in, der + n, (int)(total + 1 - n))) > 0)
        n += r;
    ok = parse_keyref_pkcs8(provctx, der, n, &reference);
    if (ok <= 0) {
        ret = ok == 0;
        goto done;
    }
    HB_DEBUG("key-reference PKCS#8 names %s", reference);
    /* Any type: the object says which (RSA, RSA-PSS, EC) key manager. */
    ret = hb_load_key_object(provctx, reference, NULL, object_cb, object_cbarg,
                             &delivered);
done:
    OPENSSL_cleanse(head, sizeof(head));
    OPENSSL_free(reference);
    free(der);
    BIO_free(in);
    return ret;
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

const OSSL_DISPATCH hb_pki_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))pki_decode },
    { 0, NULL }
};

/*
 * The key manager of the key-reference algorithm (HB_REF_ALG_NAMES). It is
 * there so that libcrypto lists the PKCS#8 decoder above (it lists only
 * decoders named like a key manager) and holds no keys: the keys a
 * key-reference PKCS#8 names are RSA and EC keys of our other key managers,
 * which libcrypto picks by the data type the decoder gives. Loading one by
 * this name gives nothing.
 */
static void km_ref_free(void *keydata)
{
    (void)keydata;
}

static int km_ref_has(const void *keydata, int selection)
{
    (void)keydata;
    (void)selection;
    return 0;
}

static void *km_ref_load(const void *reference, size_t reference_sz)
{
    (void)reference;
    (void)reference_sz;
    return NULL;
}

const OSSL_DISPATCH hb_keyref_keymgmt_functions[] = {
    { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_ref_free },
    { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_ref_has },
    { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))km_ref_load },
    { 0, NULL }
};
