/*
 * HKDF (RFC 5869) in the backend, from a masked input to a masked output:
 * the masked-KDF core (kdf_masked.c) with HKDF's one parameter of its own.
 *
 * mode: a masked input runs extract-and-expand only (the seed's HKDF and
 * the device's); extract-only or expand-only is refused then, and passed
 * on to OpenSSL's HKDF for raw keys. Several info parameters in one call
 * are concatenated, as OpenSSL's HKDF does.
 */
#include <strings.h>

#include <openssl/kdf.h>

#include "errors.h"
#include "kdf_masked.h"

typedef struct {
    int mode_other; /* a mode other than extract-and-expand was set */
} HKDF_EXT;

static int hkdf_set_param(HB_PROV_CTX *provctx, void *vext, const OSSL_PARAM *p)
{
    HKDF_EXT *ext = vext;
    int mode = EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;

    (void)provctx;
    if (strcmp(p->key, OSSL_KDF_PARAM_MODE) != 0)
        return 1;
    if (p->data_type == OSSL_PARAM_UTF8_STRING)
        mode = p->data != NULL && strcasecmp(p->data, "EXTRACT_AND_EXPAND") == 0
            ? mode : -1;
    else if (!OSSL_PARAM_get_int(p, &mode))
        mode = -1;
    ext->mode_other = mode != EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
    return 1;
}

static int hkdf_check_masked(HB_PROV_CTX *provctx, const void *vext)
{
    const HKDF_EXT *ext = vext;

    if (ext->mode_other) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "HKDF from a masked key runs extract-and-expand only");
        return 0;
    }
    return 1;
}

static const HB_MKDF_KIND hkdf_kind = {
    "HKDF", "hkdf", 1, sizeof(HKDF_EXT), hkdf_set_param, hkdf_check_masked
};

static void *hkdf_newctx(void *provctx)
{
    return hb_mkdf_newctx(provctx, &hkdf_kind);
}

static const OSSL_PARAM hkdf_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_MODE, NULL, 0),
    OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, NULL),
    HB_MKDF_SETTABLE_COMMON,
    OSSL_PARAM_END
};

static const OSSL_PARAM *hkdf_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hkdf_settable;
}

const OSSL_DISPATCH hb_hkdf_kdf_functions[] = {
    { OSSL_FUNC_KDF_NEWCTX, (void (*)(void))hkdf_newctx },
    { OSSL_FUNC_KDF_DUPCTX, (void (*)(void))hb_mkdf_dupctx },
    { OSSL_FUNC_KDF_FREECTX, (void (*)(void))hb_mkdf_freectx },
    { OSSL_FUNC_KDF_RESET, (void (*)(void))hb_mkdf_reset },
    { OSSL_FUNC_KDF_DERIVE, (void (*)(void))hb_mkdf_derive },
    { OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS,
      (void (*)(void))hkdf_settable_ctx_params },
    { OSSL_FUNC_KDF_SET_CTX_PARAMS, (void (*)(void))hb_mkdf_set_ctx_params },
    { OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS,
      (void (*)(void))hb_mkdf_gettable_ctx_params },
    { OSSL_FUNC_KDF_GET_CTX_PARAMS, (void (*)(void))hb_mkdf_get_ctx_params },
    { 0, NULL }
};
