/*
 * AES keys held by a backend (Key Vault "oct"/"oct-HSM") and key wrapping
 * with them: declarations shared by keymgmt_aes.c, cipher_aeskw.c and the
 * tables in provider.c.
 */
#ifndef HSMBRIDGE_AESKW_H
#define HSMBRIDGE_AESKW_H

#include "provider.h"

/*
 * The keymgmt and asym_cipher name. Deliberately not an OpenSSL name:
 * OpenSSL's name map is shared by all operations, so a keymgmt called
 * "id-aes256-wrap" or "AES-256-WRAP" would alias the default provider's
 * symmetric ciphers of that name (the seed's provider does that).
 */
#define HB_AES_KW_NAME "HSMBRIDGE-AES-KW"

/*
 * Largest input we wrap. Key wrap carries keys (an RSA-4096 PKCS#8 key is
 * about 2.4 KB); the limit also gives EVP_PKEY_get_size() a meaning, which
 * `openssl pkeyutl` uses to bound what it reads (10 times that size).
 */
#define HB_AES_KW_MAX_INPUT 8192
/* Largest output: RFC 5649 rounds up to 8 bytes and adds 8. */
#define HB_AES_KW_MAX_OUTPUT (HB_AES_KW_MAX_INPUT + 16)

/* A key object for an oct key from GetKey (no public key; bits kept). */
HB_KEY *hb_oct_key_from_info(HB_PROV_CTX *provctx, const void *keyinfo);

extern const OSSL_DISPATCH hb_aes_kw_keymgmt_functions[];
extern const OSSL_DISPATCH hb_aes_kw_asym_cipher_functions[];

#endif
