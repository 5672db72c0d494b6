/*
 * ECDH, HKDF, KBKDF and HMAC on masked keys: the Integrated HSM seed's chain
 *
 *   keyAgreement EC key --ECDH--> masked secret --HKDF/KBKDF--> masked AES /
 *   HMAC key
 *
 * in which no secret ever reaches the application: each step sends a handle
 * or a masked blob to hsmhost and gets a masked blob (or, for HMAC, the MAC)
 * back. These algorithms are offered under the azihsm name (masked keys are
 * that seed's model), HMAC also under the others as a guard that refuses
 * masked keys (derive.c); with anything but masked keys (a local EC key, a
 * raw KDF or HMAC key) they hand the work to OpenSSL's default provider in
 * the private library context, so an application that fetches them without
 * properties gets ordinary results.
 */
#ifndef HSMBRIDGE_DERIVE_H
#define HSMBRIDGE_DERIVE_H

#include <string.h>

#include "conn.h"
#include "provider.h"

extern const OSSL_DISPATCH hb_ecdh_keyexch_functions[]; /* exchange_ecdh.c */
extern const OSSL_DISPATCH hb_hkdf_kdf_functions[];     /* kdf_hkdf.c */
extern const OSSL_DISPATCH hb_kbkdf_kdf_functions[];    /* kdf_kbkdf.c */
extern const OSSL_DISPATCH hb_hmac_mac_functions[];     /* mac_hmac.c */

/*
 * derive.c: fills provctx's keyexch/kdf/mac tables (only HMAC unless loaded
 * under the azihsm name); 0 only when out of memory.
 */
int hb_derive_tables(HB_PROV_CTX *provctx);
void hb_derive_tables_free(HB_PROV_CTX *provctx);

/* The parameter names the seed uses (and ours where it has none). */
#define HB_PARAM_OUTPUT_FILE "output_file"
#define HB_PARAM_IKM_FILE "azihsm.ikm_file"
#define HB_PARAM_DERIVED_TYPE "derived_key_type"
#define HB_PARAM_DERIVED_BITS "derived_key_bits"
#define HB_PARAM_MAC_KEY_FILE "azihsm.key_file"
/* Length of the masked blob the last buffer-mode HKDF derive wrote. */
#define HB_PARAM_BLOB_LEN "azihsm.blob_len"

/* Loaded under the azihsm name (provider=azihsm): masked keys are ours. */
static inline int hb_is_azihsm(const HB_PROV_CTX *provctx)
{
    return strcmp(provctx->propq, "provider=azihsm") == 0;
}

/*
 * docs/MASKED_KEYS.md: every hsmbridge blob starts with this magic (another
 * backend's blobs, the Integrated HSM device's, need not).
 */
#define HB_MASK_MAGIC "HSMBMASK"

static inline int hb_is_masked_blob(const unsigned char *p, size_t len)
{
    return p != NULL && len >= 8 && memcmp(p, HB_MASK_MAGIC, 8) == 0;
}

/*
 * The host's hash for a digest name (any of OpenSSL's spellings);
 * HASH_UNSPECIFIED if it is none of SHA-1/224/256/384/512. *size gets the
 * digest's output size when not NULL.
 */
static inline Hsmbridge__Host__V1__Hash hb_hash_by_name(const char *name,
                                                        size_t *size)
{
    static const struct {
        const char *alg;
        Hsmbridge__Host__V1__Hash h;
    } tab[] = {
        { "SHA1", HSMBRIDGE__HOST__V1__HASH__HASH_SHA1 },
        { "SHA2-224", HSMBRIDGE__HOST__V1__HASH__HASH_SHA224 },
        { "SHA2-256", HSMBRIDGE__HOST__V1__HASH__HASH_SHA256 },
        { "SHA2-384", HSMBRIDGE__HOST__V1__HASH__HASH_SHA384 },
        { "SHA2-512", HSMBRIDGE__HOST__V1__HASH__HASH_SHA512 },
    };
    Hsmbridge__Host__V1__Hash h = HSMBRIDGE__HOST__V1__HASH__HASH_UNSPECIFIED;
    EVP_MD *md;
    size_t i;

    md = name == NULL ? NULL : EVP_MD_fetch(hb_priv_libctx(), name, NULL);
    if (md == NULL)
        return h;
    for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (EVP_MD_is_a(md, tab[i].alg)) {
            h = tab[i].h;
            if (size != NULL)
                *size = (size_t)EVP_MD_get_size(md);
            break;
        }
    EVP_MD_free(md);
    return h;
}

#endif
