/*
 * The signature for RSA-PSS keys: our RSA signature (signature.c) with PSS
 * as the default padding, the way OpenSSL treats RSA-PSS keys. The RSA-PSS
 * keymgmt names it for OSSL_OP_SIGNATURE. The table is the RSA one with
 * newctx replaced, filled in once when the provider builds its tables.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>

#include "provider.h"

#define HB_SIG_TABLE_MAX 32

OSSL_DISPATCH hb_rsapss_signature_functions[HB_SIG_TABLE_MAX];

static OSSL_FUNC_signature_newctx_fn *rsa_newctx;
static OSSL_FUNC_signature_freectx_fn *rsa_freectx;
static OSSL_FUNC_signature_set_ctx_params_fn *rsa_set_ctx_params;

static void *pss_newctx(void *provctx, const char *propq)
{
    void *ctx = rsa_newctx(provctx, propq);
    OSSL_PARAM params[2];

    if (ctx == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_PAD_MODE, (char *)OSSL_PKEY_RSA_PAD_MODE_PSS, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!rsa_set_ctx_params(ctx, params)) {
        rsa_freectx(ctx);
        return NULL;
    }
    return ctx;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    const OSSL_DISPATCH *d;
    size_t n = 0;

    for (d = hb_rsa_signature_functions;
         d->function_id != 0 && n < HB_SIG_TABLE_MAX - 1; d++) {
        hb_rsapss_signature_functions[n] = *d;
        switch (d->function_id) {
        case OSSL_FUNC_SIGNATURE_NEWCTX:
            rsa_newctx = OSSL_FUNC_signature_newctx(d);
            hb_rsapss_signature_functions[n].function =
                (void (*)(void))pss_newctx;
            break;
        case OSSL_FUNC_SIGNATURE_FREECTX:
            rsa_freectx = OSSL_FUNC_signature_freectx(d);
            break;
        case OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS:
            rsa_set_ctx_params = OSSL_FUNC_signature_set_ctx_params(d);
            break;
        }
        n++;
    }
    hb_rsapss_signature_functions[n].function_id = 0;
    hb_rsapss_signature_functions[n].function = NULL;
}

void hb_rsapss_signature_init(void)
{
    pthread_once(&once, build);
}
