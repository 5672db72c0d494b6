/*
 * Algorithm tables for ECDH, HKDF, KBKDF and HMAC on masked keys (derive.h).
 *
 * ECDH, HKDF and KBKDF exist only when the module is loaded under the
 * azihsm name: masked keys are the Integrated HSM's model, and under the
 * other names an unqualified "ECDH", "HKDF" or "KBKDF" fetch keeps reaching
 * the default provider directly, as before.
 *
 * HMAC is registered under every name. Under azihsm it takes masked keys
 * (mac_hmac.c); under the others it is OpenSSL's HMAC in the private library
 * context, except that a key which is a masked blob, or names an existing
 * file, is refused instead of being used as raw key bytes: the upstream
 * Integrated HSM provider reads `key` as the masked key file's path, and an
 * HMAC keyed with that path would be a wrong answer with no error.
 */
#include <stdlib.h>
#include <string.h>

#include "derive.h"

/* n algorithms (names, functions, description) and the end marker. */
static OSSL_ALGORITHM *table(size_t n, const char *const names[],
                             const OSSL_DISPATCH *const fns[],
                             const char *const desc[], const char *propq)
{
    OSSL_ALGORITHM *a = calloc(n + 1, sizeof(*a));
    size_t i;

    for (i = 0; a != NULL && i < n; i++) {
        a[i].algorithm_names = names[i];
        a[i].property_definition = propq;
        a[i].implementation = fns[i];
        a[i].algorithm_description = desc[i];
    }
    return a;
}

int hb_derive_tables(HB_PROV_CTX *ctx)
{
    static const char *const ecdh[] = { "ECDH" };
    static const OSSL_DISPATCH *const ecdh_fns[] = { hb_ecdh_keyexch_functions };
    static const char *const ecdh_desc[] = {
        "ECDH with a backend key, masked output" };
    static const char *const kdf[] = { "HKDF", "KBKDF" };
    static const OSSL_DISPATCH *const kdf_fns[] = { hb_hkdf_kdf_functions,
                                                    hb_kbkdf_kdf_functions };
    static const char *const kdf_desc[] = {
        "HKDF in the backend, masked input and output",
        "KBKDF (SP 800-108 counter mode, HMAC) in the backend, masked input "
        "and output" };
    static const char *const mac[] = { "HMAC" };
    static const OSSL_DISPATCH *const mac_fns[] = { hb_hmac_mac_functions };
    static const char *const mac_desc[] = {
        "HMAC with a masked key, in the backend" };
    static const char *const mac_guard_desc[] = {
        "OpenSSL's HMAC; refuses masked keys (they are azihsm's)" };

    if (!hb_is_azihsm(ctx)) {
        ctx->mac_algs = table(1, mac, mac_fns, mac_guard_desc, ctx->propq);
        return ctx->mac_algs != NULL;
    }
    ctx->keyexch_algs = table(1, ecdh, ecdh_fns, ecdh_desc, ctx->propq);
    ctx->kdf_algs = table(2, kdf, kdf_fns, kdf_desc, ctx->propq);
    ctx->mac_algs = table(1, mac, mac_fns, mac_desc, ctx->propq);
    return ctx->keyexch_algs != NULL && ctx->kdf_algs != NULL
        && ctx->mac_algs != NULL;
}

void hb_derive_tables_free(HB_PROV_CTX *ctx)
{
    free(ctx->keyexch_algs);
    free(ctx->kdf_algs);
    free(ctx->mac_algs);
    ctx->keyexch_algs = ctx->kdf_algs = ctx->mac_algs = NULL;
}
