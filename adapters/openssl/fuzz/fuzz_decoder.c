/*
 * libFuzzer harness for the key-reference decoders (provider/decoder.c).
 *
 * decoder.c is compiled into this file, not linked, so that its static
 * functions (parse_keyref, starts_as_keyref) can be called directly; the
 * rest of the provider is linked from its objects, without decoder.o. Each
 * input goes six ways:
 *
 *   1. parse_keyref() on the input as DER, checking what it promises: 1 and
 *      a non-empty reference without NUL, or 0/-1 and no reference; never
 *      1 for more than HB_REF_MAX_DER, for trailing bytes or for another
 *      version; the DER that parses and is canonical
 *      is also recognised by starts_as_keyref() with its exact size;
 *   2. the input as a reference: encoded by OpenSSL's own encoder of the
 *      same template, it must parse back to itself (if non-empty, no NUL);
 *   3. the input through libcrypto's decoder chain (OSSL_DECODER, asking
 *      for our provider's keys), as PEM and as DER (pem_decode, der_decode,
 *      read_all; other providers' decoders try it too);
 *   4. the input wrapped in our own PEM label, so that the DER mutations
 *      reach pem_decode's label branch: a block that is not a usable key
 *      reference must fail with HB_R_BAD_REFERENCE_FILE on the queue;
 *   5. parse_keyref_pkcs8() on the input as DER (the PKCS#8 form): 1 only
 *      for what starts as a key-reference PKCS#8, holds a reference and is
 *      within the size limit; what does not start as one is never ours (0);
 *   6. the input as the privateKey of a key-reference PKCS#8 in a "PRIVATE
 *      KEY" block, through the PEM and the DER decoder chains (pem_decode's
 *      PKCS#8 branch, pki_decode): never a key without a host, and a
 *      privateKey that is no usable reference fails with
 *      HB_R_BAD_REFERENCE_FILE.
 *
 * No host answers (hbfuzz.c): a reference that decodes fails in the DER
 * stage with "no host", so no input may yield a key.
 */
#define _GNU_SOURCE /* memmem */
#include "../provider/decoder.c"

#include <openssl/decoder.h>

#include "hbfuzz.h"

static OSSL_LIB_CTX *libctx;
static HB_PROV_CTX *provctx;

static int has_reason(int reason)
{
    unsigned long e;
    int found = 0;

    while ((e = ERR_get_error()) != 0)
        found |= ERR_GET_REASON(e) == reason;
    return found;
}

static void check_parse(const uint8_t *data, size_t size)
{
    char *ref = NULL;
    unsigned char *der = NULL;
    HB_KEYREF *kr;
    long total = -1;
    int ok, n;

    ok = parse_keyref(provctx, data, (long)size, &ref);
    ERR_clear_error();
    HBFUZZ_CHECK(ok == 1 || ok == 0 || ok == -1, "parse_keyref gave %d", ok);
    if (ok != 1) {
        HBFUZZ_CHECK(ref == NULL, "no reference expected after %d", ok);
        return;
    }
    HBFUZZ_CHECK(ref != NULL && *ref != '\0', "empty reference accepted");
    HBFUZZ_CHECK(size <= (size_t)HB_REF_MAX_DER, "%zu bytes accepted", size);
    HBFUZZ_CHECK(memmem(data, size, HB_REF_VERSION, strlen(HB_REF_VERSION))
                 != NULL, "accepted without the version string");

    /* Canonical DER of what was parsed: is it the input? */
    const unsigned char *p = data;
    kr = d2i_HB_KEYREF(NULL, &p, (long)size);
    HBFUZZ_CHECK(kr != NULL && p == data + size,
                 "accepted, but not exactly one key-reference structure");
    HBFUZZ_CHECK(ASN1_STRING_length(kr->version) == (int)strlen(HB_REF_VERSION)
                 && memcmp(ASN1_STRING_get0_data(kr->version), HB_REF_VERSION,
                           strlen(HB_REF_VERSION)) == 0,
                 "accepted with another version");
    HBFUZZ_CHECK(strlen(ref) == (size_t)ASN1_STRING_length(kr->reference)
                 && memcmp(ref, ASN1_STRING_get0_data(kr->reference),
                           strlen(ref)) == 0, "the reference is not the file's");
    n = i2d_HB_KEYREF(kr, &der);
    if (n == (int)size && memcmp(der, data, size) == 0)
        HBFUZZ_CHECK(starts_as_keyref(data, (long)size, &total)
                     && total == (long)size,
                     "DER key reference not recognised (total %ld of %zu)",
                     total, size);
    OPENSSL_free(der);
    HB_KEYREF_free(kr);
    OPENSSL_free(ref);
}

/* The input taken as a reference string: encode, then parse back. */
static void check_round_trip(const uint8_t *data, size_t size)
{
    HB_KEYREF *kr = HB_KEYREF_new();
    unsigned char *der = NULL;
    char *ref = NULL;
    int n, ok, want;

    if (kr == NULL || size > 4096)
        goto done;
    if (!ASN1_STRING_set(kr->version, HB_REF_VERSION, -1)
        || !ASN1_STRING_set(kr->reference, data, (int)size)
        || (n = i2d_HB_KEYREF(kr, &der)) <= 0)
        goto done;
    want = size > 0 && memchr(data, 0, size) == NULL;
    ok = parse_keyref(provctx, der, n, &ref);
    ERR_clear_error();
    HBFUZZ_CHECK(ok == (want ? 1 : -1), "parse_keyref gave %d, want %d", ok,
                 want ? 1 : -1);
    if (want)
        HBFUZZ_CHECK(strlen(ref) == size && memcmp(ref, data, size) == 0,
                     "the reference changed in the round trip");
done:
    OPENSSL_free(ref);
    OPENSSL_free(der);
    HB_KEYREF_free(kr);
}

/*
 * Our decoders only, from PEM or from DER to a key. The contexts are made
 * once: OSSL_DECODER_CTX_new_for_pkey costs 2 ms under ASan in OpenSSL 3.0
 * (it collects every provider's decoders and key managers), 30 times the
 * decoding itself, and nothing in it depends on the input. A context keeps
 * no state between decodings but the pointer to the key it delivers.
 */
static OSSL_DECODER_CTX *dec_pem, *dec_der, *dec_pem_default, *dec_der_default;
static EVP_PKEY *decoded;

static OSSL_DECODER_CTX *new_decoder(const char *input_type, const char *propq)
{
    OSSL_DECODER_CTX *dctx;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&decoded, input_type, NULL, NULL,
                                         OSSL_KEYMGMT_SELECT_ALL, libctx,
                                         propq);
    HBFUZZ_CHECK(dctx != NULL, "no %s decoder context", input_type);
    return dctx;
}

/* 1 if a key came out. */
static int decode(OSSL_DECODER_CTX *dctx, const uint8_t *data, size_t size)
{
    BIO *bio = BIO_new_mem_buf(data, (int)size);
    int got;

    HBFUZZ_CHECK(bio != NULL, "no BIO");
    (void)OSSL_DECODER_from_bio(dctx, bio);
    got = decoded != NULL;
    EVP_PKEY_free(decoded);
    decoded = NULL;
    BIO_free(bio);
    return got;
}

static void check_wrapped(const uint8_t *data, size_t size)
{
    BIO *mem = BIO_new(BIO_s_mem());
    BUF_MEM *pem;
    char *ref = NULL;
    int ok;

    HBFUZZ_CHECK(mem != NULL, "no BIO");
    if (PEM_write_bio(mem, HB_REF_PEM_LABEL, "", data, (long)size) <= 0) {
        BIO_free(mem);
        return;
    }
    BIO_get_mem_ptr(mem, &pem);
    ok = parse_keyref(provctx, data, (long)size, &ref);
    OPENSSL_free(ref);
    ERR_clear_error();
    HBFUZZ_CHECK(!decode(dec_pem, (const uint8_t *)pem->data, pem->length),
                 "a key without a host");
    if (ok <= 0)
        HBFUZZ_CHECK(has_reason(HB_R_BAD_REFERENCE_FILE),
                     "a bad key-reference block (%d) not refused as one", ok);
    BIO_free(mem);
}

/* The input as DER of the PKCS#8 form. */
static void check_parse_pkcs8(const uint8_t *data, size_t size)
{
    char *ref = NULL;
    long total = -1;
    int ok, starts;

    starts = starts_as_keyref_pkcs8(data, (long)size, &total);
    ok = parse_keyref_pkcs8(provctx, data, (long)size, &ref);
    ERR_clear_error();
    HBFUZZ_CHECK(ok == 1 || ok == 0 || ok == -1, "parse_keyref_pkcs8 gave %d", ok);
    HBFUZZ_CHECK((ok == 0) == !starts, "parse_keyref_pkcs8 gave %d, starts "
                 "as one: %d", ok, starts);
    if (ok != 1) {
        HBFUZZ_CHECK(ref == NULL, "no reference expected after %d", ok);
        return;
    }
    HBFUZZ_CHECK(ref != NULL && *ref != '\0', "empty reference accepted");
    HBFUZZ_CHECK(total == (long)size, "accepted %zu bytes, declared %ld",
                 size, total);
    HBFUZZ_CHECK(size <= (size_t)(HB_REF_MAX_DER + HB_PKI_HEAD_MAX),
                 "%zu bytes accepted", size);
    HBFUZZ_CHECK(memmem(data, size, HB_REF_VERSION, strlen(HB_REF_VERSION))
                 != NULL, "accepted without the version string");
    OPENSSL_free(ref);
}

/* The input as the privateKey of a key-reference PKCS#8. */
static void check_wrapped_pkcs8(const uint8_t *data, size_t size)
{
    unsigned char full[2 + sizeof(hb_ref_oid_der)], *der = NULL, *inner;
    const unsigned char *p = full;
    PKCS8_PRIV_KEY_INFO *p8 = PKCS8_PRIV_KEY_INFO_new();
    ASN1_OBJECT *aobj;
    BIO *mem = NULL;
    BUF_MEM *pem;
    char *ref = NULL;
    int ok, n;

    full[0] = V_ASN1_OBJECT;
    full[1] = sizeof(hb_ref_oid_der);
    memcpy(full + 2, hb_ref_oid_der, sizeof(hb_ref_oid_der));
    aobj = d2i_ASN1_OBJECT(NULL, &p, sizeof(full));
    inner = OPENSSL_memdup(data, size > 0 ? size : 1);
    HBFUZZ_CHECK(p8 != NULL && aobj != NULL && inner != NULL, "no PKCS#8");
    HBFUZZ_CHECK(PKCS8_pkey_set0(p8, aobj, 0, V_ASN1_UNDEF, NULL, inner,
                                 (int)size), "PKCS8_pkey_set0");
    n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return;
    ok = parse_keyref(provctx, data, (long)size, &ref);
    OPENSSL_free(ref);
    ERR_clear_error();
    /* DER alone: pki_decode, through the default provider's decoders. */
    HBFUZZ_CHECK(!decode(dec_der, der, (size_t)n), "a key without a host");
    if (ok <= 0 && n <= HB_REF_MAX_DER + HB_PKI_HEAD_MAX)
        HBFUZZ_CHECK(has_reason(HB_R_BAD_REFERENCE_FILE),
                     "a bad key-reference PKCS#8 (%d) not refused as one (DER)",
                     ok);
    ERR_clear_error();
    mem = BIO_new(BIO_s_mem());
    HBFUZZ_CHECK(mem != NULL, "no BIO");
    if (PEM_write_bio(mem, HB_REF_PKCS8_PEM_LABEL, "", der, n) > 0) {
        BIO_get_mem_ptr(mem, &pem);
        HBFUZZ_CHECK(!decode(dec_pem, (const uint8_t *)pem->data, pem->length),
                     "a key without a host");
        if (ok <= 0)
            HBFUZZ_CHECK(has_reason(HB_R_BAD_REFERENCE_FILE),
                         "a bad key-reference PKCS#8 (%d) not refused as one "
                         "(PEM)", ok);
    }
    BIO_free(mem);
    OPENSSL_free(der);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hbfuzz_init(&libctx, &provctx);
    dec_pem = new_decoder("PEM", "provider=" HB_PROV_NAME);
    dec_der = new_decoder("DER", "provider=" HB_PROV_NAME);
    dec_pem_default = new_decoder("PEM", "provider=default");
    dec_der_default = new_decoder("DER", "provider=default");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long total;

    if (size > INT_MAX / 2)
        return -1;
    check_parse(data, size);
    check_round_trip(data, size);
    (void)starts_as_keyref(data, (long)size, &total);
    /* A real private key (a seed has one) decodes: the default provider's. */
    HBFUZZ_CHECK(!decode(dec_pem, data, size)
                 || decode(dec_pem_default, data, size), "a key without a host");
    ERR_clear_error();
    HBFUZZ_CHECK(!decode(dec_der, data, size)
                 || decode(dec_der_default, data, size), "a key without a host");
    ERR_clear_error();
    check_wrapped(data, size);
    ERR_clear_error();
    check_parse_pkcs8(data, size);
    check_wrapped_pkcs8(data, size);
    ERR_clear_error();
    return 0;
}
