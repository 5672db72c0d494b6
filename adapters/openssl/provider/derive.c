/*
 * Algorithm tables for ECDH, HKDF and HMAC on masked keys (derive.h).
 *
 * They exist only when the module is loaded under the azihsm name: masked
 * keys are the Integrated HSM's model, and under the other names an
 * unqualified "ECDH", "HKDF" or "HMAC" fetch keeps reaching the default
 * provider directly, as before.
 */
#include <stdlib.h>
#include <string.h>

#include "derive.h"

static OSSL_ALGORITHM *table(const char *names, const OSSL_DISPATCH *fns,
                             const char *desc, const char *propq)
{
    OSSL_ALGORITHM *a = calloc(2, sizeof(*a));

    if (a != NULL) {
        a[0].algorithm_names = names;
        a[0].property_definition = propq;
        a[0].implementation = fns;
        a[0].algorithm_description = desc;
    }
    return a;
}

int hb_derive_tables(HB_PROV_CTX *ctx)
{
    if (strcmp(ctx->propq, "provider=azihsm") != 0)
        return 1;
    ctx->keyexch_algs = table("ECDH", hb_ecdh_keyexch_functions,
                              "ECDH with a backend key, masked output",
                              ctx->propq);
    ctx->kdf_algs = table("HKDF", hb_hkdf_kdf_functions,
                          "HKDF in the backend, masked input and output",
                          ctx->propq);
    ctx->mac_algs = table("HMAC", hb_hmac_mac_functions,
                          "HMAC with a masked key, in the backend",
                          ctx->propq);
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
