//go:build ignore

/*
 * Small helpers every part of the emulator uses: the buffer conventions of
 * the API, algorithm and curve tables, DER public keys, randomness.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "emu.h"

azihsm_status emu_in(const struct azihsm_buffer *b, const uint8_t **p, uint32_t *len)
{
    if (b == NULL || (b->ptr == NULL && b->len != 0))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    *p = b->ptr;
    *len = b->len;
    return AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_in_opt(const struct azihsm_buffer *b, const uint8_t **p, uint32_t *len)
{
    if (b == NULL) {
        *p = NULL;
        *len = 0;
        return AZIHSM_STATUS_SUCCESS;
    }
    return emu_in(b, p, len);
}

azihsm_status emu_out_check(struct azihsm_buffer *b, uint32_t need)
{
    if (b == NULL || (b->ptr == NULL && b->len != 0))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    if (b->len < need) {
        b->len = need;
        return AZIHSM_STATUS_BUFFER_TOO_SMALL;
    }
    return AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_prop_out(void *val, uint32_t *len, const void *src, uint32_t n)
{
    if (val == NULL && *len != 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    if (*len < n) {
        *len = n;
        return AZIHSM_STATUS_BUFFER_TOO_SMALL;
    }
    if (n != 0)
        memcpy(val, src, n);
    *len = n;
    return AZIHSM_STATUS_SUCCESS;
}

const EVP_MD *emu_md_for_hash(azihsm_algo_id id)
{
    switch (id) {
    case AZIHSM_ALGO_ID_SHA1:
        return EVP_sha1();
    case AZIHSM_ALGO_ID_SHA256:
        return EVP_sha256();
    case AZIHSM_ALGO_ID_SHA384:
        return EVP_sha384();
    case AZIHSM_ALGO_ID_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

azihsm_mgf1_id emu_mgf1_for_hash(azihsm_algo_id id)
{
    switch (id) {
    case AZIHSM_ALGO_ID_SHA1:
        return AZIHSM_MGF1_ID_SHA1;
    case AZIHSM_ALGO_ID_SHA256:
        return AZIHSM_MGF1_ID_SHA256;
    case AZIHSM_ALGO_ID_SHA384:
        return AZIHSM_MGF1_ID_SHA384;
    case AZIHSM_ALGO_ID_SHA512:
        return AZIHSM_MGF1_ID_SHA512;
    default:
        return 0;
    }
}

const EVP_MD *emu_md_for_hmac_algo(azihsm_algo_id id)
{
    switch (id) {
    case AZIHSM_ALGO_ID_HMAC_SHA256:
        return EVP_sha256();
    case AZIHSM_ALGO_ID_HMAC_SHA384:
        return EVP_sha384();
    case AZIHSM_ALGO_ID_HMAC_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

const EVP_MD *emu_md_for_hmac_kind(azihsm_key_kind kind)
{
    switch (kind) {
    case AZIHSM_KEY_KIND_HMAC_SHA256:
        return EVP_sha256();
    case AZIHSM_KEY_KIND_HMAC_SHA384:
        return EVP_sha384();
    case AZIHSM_KEY_KIND_HMAC_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

int emu_is_hmac_kind(azihsm_key_kind kind)
{
    return emu_md_for_hmac_kind(kind) != NULL;
}

const char *emu_curve_group(azihsm_ecc_curve c)
{
    switch (c) {
    case AZIHSM_ECC_CURVE_P256:
        return "prime256v1";
    case AZIHSM_ECC_CURVE_P384:
        return "secp384r1";
    case AZIHSM_ECC_CURVE_P521:
        return "secp521r1";
    default:
        return NULL;
    }
}

uint32_t emu_curve_bits(azihsm_ecc_curve c)
{
    switch (c) {
    case AZIHSM_ECC_CURVE_P256:
        return 256;
    case AZIHSM_ECC_CURVE_P384:
        return 384;
    case AZIHSM_ECC_CURVE_P521:
        return 521;
    default:
        return 0;
    }
}

uint32_t emu_curve_field_bytes(azihsm_ecc_curve c)
{
    return (emu_curve_bits(c) + 7u) / 8u;
}

azihsm_ecc_curve emu_curve_of(const EVP_PKEY *pkey)
{
    char name[64];
    size_t n = 0;

    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name,
                                        sizeof(name), &n))
        return 0;
    if (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0)
        return AZIHSM_ECC_CURVE_P256;
    if (strcmp(name, "secp384r1") == 0 || strcmp(name, "P-384") == 0)
        return AZIHSM_ECC_CURVE_P384;
    if (strcmp(name, "secp521r1") == 0 || strcmp(name, "P-521") == 0)
        return AZIHSM_ECC_CURVE_P521;
    return 0;
}

azihsm_status emu_spki(EVP_PKEY *pkey, uint8_t **der, uint32_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_PUBKEY(pkey, &p);

    if (n <= 0)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_free(p);
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    memcpy(*der, p, (size_t)n);
    OPENSSL_free(p);
    *len = (uint32_t)n;
    return AZIHSM_STATUS_SUCCESS;
}

void emu_random(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        abort(); /* a device without randomness must not hand out keys */
}

void emu_wipe_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

azihsm_status emu_hmac(const EVP_MD *md, const uint8_t *key, size_t keylen,
                       const uint8_t *data, size_t len, uint8_t *out)
{
    size_t outlen = 0;
    /* Empty keys are legal in HMAC (HKDF's default salt is one). */
    static const uint8_t zero = 0;

    if (EVP_Q_mac(NULL, "HMAC", NULL, EVP_MD_get0_name(md), NULL,
                  keylen ? key : &zero, keylen, data, len, out,
                  (size_t)EVP_MD_get_size(md), &outlen) == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    return AZIHSM_STATUS_SUCCESS;
}
