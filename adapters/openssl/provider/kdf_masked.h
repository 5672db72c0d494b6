/*
 * The masked-key KDF core (kdf_masked.c), shared by the HKDF (kdf_hkdf.c)
 * and KBKDF (kdf_kbkdf.c) front ends.
 *
 * The core owns everything the two have in common: the context, the
 * parameters (digest, salt, info, key, and the seed's azihsm.ikm_file,
 * output_file, derived_key_type, derived_key_bits), the DeriveRequest to
 * hsmhost, where the masked output goes (output_file or the caller's
 * buffer), and the hand-over of raw keys to the default provider's KDF of
 * the same name. A front end describes itself with an HB_MKDF_KIND: its
 * name, the DeriveRequest.kdf value, how several info parameters combine,
 * and two hooks for the parameters only it has (HKDF's mode; KBKDF's mode,
 * mac, use-l, use-separator, r, seed): one records them, the other refuses,
 * before a masked derivation, the values the backend cannot do. Raw keys
 * get OpenSSL's own handling of those parameters.
 */
#ifndef HSMBRIDGE_KDF_MASKED_H
#define HSMBRIDGE_KDF_MASKED_H

#include "derive.h"

typedef struct hb_mkdf_ctx HB_MKDF_CTX;

typedef struct hb_mkdf_kind {
    const char *name; /* "HKDF": messages, and the default provider's KDF */
    const char *kdf;  /* DeriveRequest.kdf: "hkdf", "kbkdf" */
    /*
     * 1: several info parameters in one call are concatenated (OpenSSL's
     * HKDF); 0: the first counts (its KBKDF), like every other parameter.
     */
    int info_concat;
    size_t ext_size;  /* the front end's own state: plain data, copied */
    /*
     * A parameter the core does not know (it is also passed on to the
     * default provider): record it in ext. 0 (raised) only for a value of
     * the wrong type; values the backend cannot do are for check_masked.
     */
    int (*set_param)(HB_PROV_CTX *provctx, void *ext, const OSSL_PARAM *p);
    /* Before a masked derivation: 0 (raised) if ext asks for what cannot be. */
    int (*check_masked)(HB_PROV_CTX *provctx, const void *ext);
} HB_MKDF_KIND;

void *hb_mkdf_newctx(void *provctx, const HB_MKDF_KIND *kind);
void *hb_mkdf_dupctx(void *vctx);
void hb_mkdf_freectx(void *vctx);
void hb_mkdf_reset(void *vctx);
int hb_mkdf_set_ctx_params(void *vctx, const OSSL_PARAM params[]);
int hb_mkdf_derive(void *vctx, unsigned char *key, size_t keylen,
                   const OSSL_PARAM params[]);
const OSSL_PARAM *hb_mkdf_gettable_ctx_params(void *vctx, void *provctx);
int hb_mkdf_get_ctx_params(void *vctx, OSSL_PARAM params[]);

/*
 * The settable parameters every masked KDF has (to put in a front end's
 * list): the seed's four and the standard digest, key, salt, info and
 * properties.
 */
#define HB_MKDF_SETTABLE_COMMON                                         \
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_PROPERTIES, NULL, 0),         \
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, NULL, 0),             \
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, NULL, 0),               \
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, NULL, 0),              \
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, NULL, 0),              \
    OSSL_PARAM_utf8_string(HB_PARAM_IKM_FILE, NULL, 0),                 \
    OSSL_PARAM_utf8_string(HB_PARAM_OUTPUT_FILE, NULL, 0),              \
    OSSL_PARAM_utf8_string(HB_PARAM_DERIVED_TYPE, NULL, 0),             \
    OSSL_PARAM_int(HB_PARAM_DERIVED_BITS, NULL)

/* An int parameter given as an int or as the text the CLI may pass. */
int hb_param_int(const OSSL_PARAM *p, int *v);

#endif
