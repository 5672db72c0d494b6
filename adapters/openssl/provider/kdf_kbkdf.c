/*
 * KBKDF (NIST SP 800-108) in the backend, from a masked input to a masked
 * output: the masked-KDF core (kdf_masked.c) with KBKDF's parameters.
 *
 * The backend runs counter mode with an HMAC PRF (SHA-256/384/512) in
 * OpenSSL's KBKDF layout with its defaults: a 32-bit counter before the
 * fixed data, which is label || 0x00 || context || [L]_32. The names and
 * meanings are OpenSSL's: salt is the label, info the context, digest the
 * HMAC's hash; mac defaults to HMAC here (OpenSSL's own KBKDF has no
 * default, and still requires it for raw keys). With a masked input,
 * anything else the device cannot do is refused with a clear error: mode
 * feedback, a mac other than HMAC (CMAC, KMAC), use-l or use-separator 0, a
 * counter length r other than 32, and a seed (feedback mode's IV). A raw
 * key gets OpenSSL's KBKDF with every parameter as given.
 */
#include <stdio.h>
#include <string.h>

#include <strings.h>

#include <openssl/kdf.h>

#include "errors.h"
#include "kdf_masked.h"

/* OpenSSL 3.1's OSSL_KDF_PARAM_KBKDF_R (the counter's length in bits). */
#define HB_KBKDF_PARAM_R "r"

typedef struct {
    char mode[24];  /* as given, when not counter */
    char mac[24];   /* as given, when not HMAC */
    int no_l;       /* use-l 0 */
    int no_sep;     /* use-separator 0 */
    int r;          /* counter length in bits, when not 32 */
    int seed;       /* a seed was given */
} KBKDF_EXT;

/* Keeps p's value in dst unless it is want (any case); "" when it is. */
static void keep_unless(char *dst, size_t size, const OSSL_PARAM *p,
                        const char *want)
{
    const char *s = NULL;

    if (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || s == NULL)
        snprintf(dst, size, "(not a string)");
    else if (strcasecmp(s, want) == 0)
        dst[0] = '\0';
    else
        snprintf(dst, size, "%s", s);
}

static int kbkdf_set_param(HB_PROV_CTX *provctx, void *vext,
                           const OSSL_PARAM *p)
{
    KBKDF_EXT *ext = vext;
    int v = 0;

    if (strcmp(p->key, OSSL_KDF_PARAM_MODE) == 0) {
        keep_unless(ext->mode, sizeof(ext->mode), p, "counter");
    } else if (strcmp(p->key, OSSL_KDF_PARAM_MAC) == 0) {
        keep_unless(ext->mac, sizeof(ext->mac), p, "HMAC");
    } else if (strcmp(p->key, OSSL_KDF_PARAM_KBKDF_USE_L) == 0
               || strcmp(p->key, OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR) == 0
               || strcmp(p->key, HB_KBKDF_PARAM_R) == 0) {
        if (!hb_param_int(p, &v)) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "KBKDF parameter %s must be an integer", p->key);
            return 0;
        }
        if (strcmp(p->key, OSSL_KDF_PARAM_KBKDF_USE_L) == 0)
            ext->no_l = v == 0;
        else if (strcmp(p->key, OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR) == 0)
            ext->no_sep = v == 0;
        else
            ext->r = v == 32 ? 0 : v;
    } else if (strcmp(p->key, OSSL_KDF_PARAM_SEED) == 0) {
        ext->seed = 1;
    }
    return 1;
}

static int kbkdf_check_masked(HB_PROV_CTX *provctx, const void *vext)
{
    const KBKDF_EXT *ext = vext;
    const char *why = NULL;
    char buf[160];

    if (ext->mode[0] != '\0') {
        snprintf(buf, sizeof(buf), "mode %s is not supported: the backend "
                 "runs counter mode only (mode:counter, the default)",
                 ext->mode);
        why = buf;
    } else if (ext->mac[0] != '\0') {
        snprintf(buf, sizeof(buf), "mac %s is not supported: the backend's "
                 "PRF is HMAC (mac:HMAC, the default, with digest SHA256, "
                 "SHA384 or SHA512)", ext->mac);
        why = buf;
    } else if (ext->no_l) {
        why = "use-l:0 is not supported: the backend always ends the fixed "
              "data with the output length [L]_32";
    } else if (ext->no_sep) {
        why = "use-separator:0 is not supported: the backend always puts "
              "0x00 between label and context";
    } else if (ext->r != 0) {
        snprintf(buf, sizeof(buf), "r:%d is not supported: the backend's "
                 "counter has 32 bits", ext->r);
        why = buf;
    } else if (ext->seed) {
        why = "seed is feedback mode's IV; counter mode takes none";
    }
    if (why == NULL)
        return 1;
    HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "KBKDF from a masked key: %s",
             why);
    return 0;
}

static const HB_MKDF_KIND kbkdf_kind = {
    "KBKDF", "kbkdf", 0, sizeof(KBKDF_EXT), kbkdf_set_param,
    kbkdf_check_masked
};

static void *kbkdf_newctx(void *provctx)
{
    return hb_mkdf_newctx(provctx, &kbkdf_kind);
}

static const OSSL_PARAM kbkdf_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_MAC, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_CIPHER, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, NULL, 0),
    OSSL_PARAM_int(OSSL_KDF_PARAM_KBKDF_USE_L, NULL),
    OSSL_PARAM_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, NULL),
    /*
     * Not r: OpenSSL 3.0's KBKDF does not know it and would ignore it for a
     * raw key, so it is not offered (a caller that sets it anyway gets the
     * check above for masked keys, and its libcrypto's KBKDF for raw ones).
     */
    HB_MKDF_SETTABLE_COMMON,
    OSSL_PARAM_END
};

static const OSSL_PARAM *kbkdf_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return kbkdf_settable;
}

const OSSL_DISPATCH hb_kbkdf_kdf_functions[] = {
    { OSSL_FUNC_KDF_NEWCTX, (void (*)(void))kbkdf_newctx },
    { OSSL_FUNC_KDF_DUPCTX, (void (*)(void))hb_mkdf_dupctx },
    { OSSL_FUNC_KDF_FREECTX, (void (*)(void))hb_mkdf_freectx },
    { OSSL_FUNC_KDF_RESET, (void (*)(void))hb_mkdf_reset },
    { OSSL_FUNC_KDF_DERIVE, (void (*)(void))hb_mkdf_derive },
    { OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS,
      (void (*)(void))kbkdf_settable_ctx_params },
    { OSSL_FUNC_KDF_SET_CTX_PARAMS, (void (*)(void))hb_mkdf_set_ctx_params },
    { OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS,
      (void (*)(void))hb_mkdf_gettable_ctx_params },
    { OSSL_FUNC_KDF_GET_CTX_PARAMS, (void (*)(void))hb_mkdf_get_ctx_params },
    { 0, NULL }
};
