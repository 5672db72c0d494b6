/*
 * Key management for RSA and EC keys.
 *
 * A backend key object is a reference-counted handle: the host's canonical,
 * version-pinned reference plus a public-only EVP_PKEY parsed from the
 * SubjectPublicKeyInfo the host returned. Parameter queries and public
 * export are answered by that EVP_PKEY (default provider, private library
 * context), so bits, sizes, group names and encoded points are always what
 * OpenSSL itself would compute.
 *
 * Like a PKCS#11 token key, has(PRIVATE_KEY) is true for backend keys (the
 * private half exists, in the backend), and export refuses any selection
 * that includes the private key. That matters with OpenSSL 3.0: when an
 * operation's implementation is fetched from another provider, libcrypto
 * exports the key with OSSL_KEYMGMT_SELECT_ALL; refusing makes it fall back
 * to our own signature implementation instead of handing the default
 * provider a public-only key to sign with.
 *
 * libcrypto picks the keymgmt of the provider activated first when asked
 * for "RSA" or "EC" without properties, so with "-provider akv_provider
 * -provider default" every EVP_PKEY_fromdata, key generation (TLS key
 * shares included) and cross-provider comparison lands here. Such keys are
 * "local" keys: the work is delegated to the default provider in the private
 * library context and the result exported freely, so libcrypto can move them
 * to the default provider for operations we do not implement (ECDH).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_object.h>
#include <openssl/x509.h>

#include "aeskw.h"
#include "conn.h"
#include "errors.h"
#include "provider.h"

HB_KEY *hb_key_new(HB_PROV_CTX *provctx, hb_key_type type)
{
    HB_KEY *key = calloc(1, sizeof(*key));

    if (key == NULL)
        return NULL;
    key->magic = HB_KEY_MAGIC;
    key->refcnt = 1;
    key->provctx = provctx;
    key->type = type;
    return key;
}

int hb_key_up_ref(HB_KEY *key)
{
    __atomic_add_fetch(&key->refcnt, 1, __ATOMIC_RELAXED);
    return 1;
}

void hb_key_free(HB_KEY *key)
{
    if (key == NULL)
        return;
    if (__atomic_sub_fetch(&key->refcnt, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    EVP_PKEY_free(key->pkey);
    free(key->reference);
    free(key->version);
    hb_masked_free(key->masked);
    key->magic = 0;
    free(key);
}

int hb_key_can_sign(const HB_KEY *key)
{
    return key != NULL && key->reference != NULL && key->pkey != NULL;
}

HB_KEY *hb_key_from_info(HB_PROV_CTX *provctx, const void *keyinfo)
{
    const Hsmbridge__Host__V1__KeyInfo *info = keyinfo;
    OSSL_LIB_CTX *priv = hb_priv_libctx();
    const unsigned char *p;
    hb_key_type type;
    EVP_PKEY *pub;
    HB_KEY *key;

    switch (info->key_type) {
    case HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_RSA:
        type = HB_KT_RSA;
        break;
    case HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_EC:
        type = HB_KT_EC;
        break;
    case HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_OCT:
        return hb_oct_key_from_info(provctx, info); /* keymgmt_aes.c */
    default:
        HB_RAISE(provctx, HB_R_BAD_KEY,
                 "%s is not an RSA, EC or AES key; OpenSSL can only use those here",
                 info->reference);
        return NULL;
    }
    if (priv == NULL) {
        HB_RAISE(provctx, HB_R_INTERNAL,
                 "cannot create the private library context");
        return NULL;
    }
    p = info->public_key_der.data;
    pub = p == NULL ? NULL
                    : d2i_PUBKEY_ex(NULL, &p, (long)info->public_key_der.len,
                                    priv, NULL);
    if (pub == NULL || !EVP_PKEY_is_a(pub, type == HB_KT_RSA ? "RSA" : "EC")) {
        EVP_PKEY_free(pub);
        HB_RAISE(provctx, HB_R_BAD_KEY,
                 "hsmhost returned an unusable public key for %s",
                 info->reference);
        return NULL;
    }
    key = hb_key_new(provctx, type);
    if (key == NULL) {
        EVP_PKEY_free(pub);
        return NULL;
    }
    key->pkey = pub;
    key->reference = hb_strdup(info->reference);
    key->version = hb_strdup(info->version != NULL ? info->version : "");
    if (key->reference == NULL || key->version == NULL) {
        hb_key_free(key);
        return NULL;
    }
    HB_DEBUG("key %s version %s (%s, %d bits)", key->reference, key->version,
             type == HB_KT_RSA ? "RSA" : "EC", EVP_PKEY_get_bits(pub));
    return key;
}

/* ---- keymgmt functions ---------------------------------------------------- */

static void *rsa_new(void *provctx)
{
    return hb_key_new(provctx, HB_KT_RSA);
}

static void *ec_new(void *provctx)
{
    return hb_key_new(provctx, HB_KT_EC);
}

/* RSA-PSS keys are RSA keys to our signature code, with PSS by default. */
static void *rsapss_new(void *provctx)
{
    HB_KEY *key = hb_key_new(provctx, HB_KT_RSA);

    if (key != NULL)
        key->pss = 1;
    return key;
}

/* The default provider's name for a key of ours. */
static const char *alg_name(hb_key_type type, int pss)
{
    return type == HB_KT_EC ? "EC" : pss ? "RSA-PSS" : "RSA";
}

static void km_free(void *keydata)
{
    hb_key_free(keydata);
}

/* The reference is the address of a key object made by our store/decoder. */
static void *km_load(const void *reference, size_t reference_sz)
{
    HB_KEY *key;

    if (reference == NULL || reference_sz != sizeof(HB_KEY *))
        return NULL;
    key = *(HB_KEY *const *)reference;
    if (key == NULL || key->magic != HB_KEY_MAGIC)
        return NULL;
    hb_key_up_ref(key);
    HB_DEBUG("loaded %s", key->reference ? key->reference : "(public)");
    return key;
}

static int km_has(const void *keydata, int selection)
{
    const HB_KEY *key = keydata;

    if (key == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        && key->reference == NULL && !key->local_private)
        return 0;
    if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY
                      | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS))
        && key->pkey == NULL)
        return 0;
    return 1;
}

static int km_validate(const void *keydata, int selection, int checktype)
{
    const HB_KEY *key = keydata;
    EVP_PKEY_CTX *c;
    int ok;

    (void)checktype;
    if (!km_has(keydata, selection))
        return 0;
    if (key->pkey == NULL)
        return 1;
    c = EVP_PKEY_CTX_new_from_pkey(hb_priv_libctx(), key->pkey, NULL);
    if (c == NULL)
        return 0;
    /* A backend's private half cannot be checked here; its public half can. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->local_private)
        ok = EVP_PKEY_check(c);
    else if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        ok = EVP_PKEY_public_check(c);
    else
        ok = EVP_PKEY_param_check(c);
    EVP_PKEY_CTX_free(c);
    return ok == 1;
}

static int km_match(const void *keydata1, const void *keydata2, int selection)
{
    const HB_KEY *a = keydata1, *b = keydata2;

    if (a == NULL || b == NULL || a->type != b->type)
        return 0;
    if (a->pkey == NULL || b->pkey == NULL)
        return a->pkey == b->pkey;
    /* Backend keys are compared by their public halves, like HSM keys. */
    if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        return EVP_PKEY_eq(a->pkey, b->pkey) == 1;
    if (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)
        return EVP_PKEY_parameters_eq(a->pkey, b->pkey) == 1;
    return 1;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    HB_KEY *key = keydata;

    if (key == NULL || key->pkey == NULL)
        return 0;
    return EVP_PKEY_get_params(key->pkey, params);
}

static int km_set_params(void *keydata, const OSSL_PARAM params[])
{
    HB_KEY *key = keydata;

    if (key == NULL || key->pkey == NULL)
        return 0;
    if (params == NULL || params->key == NULL)
        return 1;
    /* A backend key's public half is shared between duplicates: read-only. */
    if (key->reference != NULL)
        return 0;
    return EVP_PKEY_set_params(key->pkey, (OSSL_PARAM *)params);
}

/* As digest.c's: fetched on first use, dropped by hb_keymgmt_release(). */
static pthread_mutex_t km_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_KEYMGMT *priv_rsa_km, *priv_ec_km, *priv_rsapss_km;
static int km_fetched;

static void kmfetch(void)
{
    OSSL_LIB_CTX *priv;

    pthread_mutex_lock(&km_lock);
    if (!km_fetched && (priv = hb_priv_libctx()) != NULL) {
        priv_rsa_km = EVP_KEYMGMT_fetch(priv, "RSA", NULL);
        priv_ec_km = EVP_KEYMGMT_fetch(priv, "EC", NULL);
        priv_rsapss_km = EVP_KEYMGMT_fetch(priv, "RSA-PSS", NULL);
        km_fetched = 1;
    }
    pthread_mutex_unlock(&km_lock);
}

void hb_keymgmt_release(void)
{
    pthread_mutex_lock(&km_lock);
    EVP_KEYMGMT_free(priv_rsa_km);
    EVP_KEYMGMT_free(priv_ec_km);
    EVP_KEYMGMT_free(priv_rsapss_km);
    priv_rsa_km = priv_ec_km = priv_rsapss_km = NULL;
    km_fetched = 0;
    pthread_mutex_unlock(&km_lock);
}

static EVP_KEYMGMT *priv_km(hb_key_type type)
{
    kmfetch();
    return type == HB_KT_RSA ? priv_rsa_km : priv_ec_km;
}

static EVP_KEYMGMT *priv_pss_km(void)
{
    kmfetch();
    return priv_rsapss_km;
}

static const OSSL_PARAM *rsapss_gettable_params(void *provctx)
{
    (void)provctx;
    return priv_pss_km() ? EVP_KEYMGMT_gettable_params(priv_pss_km()) : NULL;
}

static const OSSL_PARAM *rsapss_settable_params(void *provctx)
{
    (void)provctx;
    return priv_pss_km() ? EVP_KEYMGMT_settable_params(priv_pss_km()) : NULL;
}

/* Our RSA-PSS signature: the RSA one with PSS as the default padding. */
static const char *rsapss_query_operation_name(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "RSA-PSS" : NULL;
}

static const OSSL_PARAM *rsa_gettable_params(void *provctx)
{
    (void)provctx;
    return priv_km(HB_KT_RSA) ? EVP_KEYMGMT_gettable_params(priv_km(HB_KT_RSA))
                              : NULL;
}

static const OSSL_PARAM *ec_gettable_params(void *provctx)
{
    (void)provctx;
    return priv_km(HB_KT_EC) ? EVP_KEYMGMT_gettable_params(priv_km(HB_KT_EC))
                             : NULL;
}

static const OSSL_PARAM *rsa_settable_params(void *provctx)
{
    (void)provctx;
    return priv_km(HB_KT_RSA) ? EVP_KEYMGMT_settable_params(priv_km(HB_KT_RSA))
                              : NULL;
}

static const OSSL_PARAM *ec_settable_params(void *provctx)
{
    (void)provctx;
    return priv_km(HB_KT_EC) ? EVP_KEYMGMT_settable_params(priv_km(HB_KT_EC))
                             : NULL;
}

static const char *rsa_query_operation_name(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}

static const char *ec_query_operation_name(int operation_id)
{
    switch (operation_id) {
    case OSSL_OP_SIGNATURE:
        return "ECDSA";
    case OSSL_OP_KEYEXCH:
        return "ECDH"; /* local keys only; done by the default provider */
    }
    return NULL;
}

/* Private components, to tell a key pair from a public key on import. */
static const char *const private_names[] = {
    OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_PRIV_KEY, NULL
};

static int has_private_params(const OSSL_PARAM params[])
{
    int i;

    for (i = 0; private_names[i] != NULL; i++)
        if (OSSL_PARAM_locate_const(params, private_names[i]) != NULL)
            return 1;
    return 0;
}

static int evp_selection(int selection)
{
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        return EVP_PKEY_KEYPAIR;
    if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
        return EVP_PKEY_PUBLIC_KEY;
    return EVP_PKEY_KEY_PARAMETERS;
}

static EVP_PKEY *pkey_fromdata(hb_key_type type, int pss, int selection,
                               const OSSL_PARAM params[])
{
    EVP_PKEY_CTX *pctx;
    EVP_PKEY *pkey = NULL;

    pctx = EVP_PKEY_CTX_new_from_name(hb_priv_libctx(), alg_name(type, pss),
                                      NULL);
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0
        || EVP_PKEY_fromdata(pctx, &pkey, evp_selection(selection),
                             (OSSL_PARAM *)params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(pctx);
    return pkey;
}

/*
 * Import makes a local key. This is how EVP_PKEY_eq brings a certificate's
 * public key over to compare it with a backend key, and how EVP_PKEY_fromdata
 * works when libcrypto picked our keymgmt.
 */
static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    HB_KEY *key = keydata;
    EVP_PKEY *pkey;

    if (key == NULL || key->reference != NULL)
        return 0;
    pkey = pkey_fromdata(key->type, key->pss, selection, params);
    if (pkey == NULL)
        return 0;
    EVP_PKEY_free(key->pkey);
    key->pkey = pkey;
    key->local_private = (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        && has_private_params(params);
    return 1;
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *cb,
                     void *cbarg)
{
    HB_KEY *key = keydata;
    OSSL_PARAM *params = NULL;
    int ok;

    if (key == NULL || key->pkey == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->reference != NULL) {
        HB_DEBUG("refusing export of the private key of %s", key->reference);
        return 0;
    }
    if (EVP_PKEY_todata(key->pkey, evp_selection(selection), &params) <= 0)
        return 0;
    ok = cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

static void *km_dup(const void *keydata, int selection)
{
    const HB_KEY *src = keydata;
    HB_KEY *key;
    OSSL_PARAM *params = NULL;

    if (src == NULL)
        return NULL;
    key = hb_key_new(src->provctx, src->type);
    if (key == NULL)
        return NULL;
    key->pss = src->pss;
    if (src->reference != NULL) {
        /* The public half of a backend key is never modified: share it. */
        if (src->pkey != NULL) {
            EVP_PKEY_up_ref(src->pkey);
            key->pkey = src->pkey;
        }
        if (src->masked != NULL)
            key->masked = hb_masked_up_ref(src->masked);
        key->reference = hb_strdup(src->reference);
        key->version = hb_strdup(src->version);
        if (key->reference == NULL || key->version == NULL) {
            hb_key_free(key);
            return NULL;
        }
        return key;
    }
    if (src->pkey != NULL) {
        if (EVP_PKEY_todata(src->pkey, evp_selection(selection), &params) <= 0
            || (key->pkey = pkey_fromdata(src->type, src->pss, selection,
                                          params)) == NULL) {
            OSSL_PARAM_free(params);
            hb_key_free(key);
            return NULL;
        }
        OSSL_PARAM_free(params);
        key->local_private = src->local_private
            && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
    }
    return key;
}

/*
 * ---- generation -------------------------------------------------------------
 *
 * With an azihsm.* parameter (azihsm.masked_key, azihsm.input_key, ...) the
 * key is made in the backend and kept as a masked blob file (keygen.c).
 * Without, it is a local key, delegated to the default provider: that is
 * what libcrypto asks of us for TLS key shares when we are activated first.
 * Both paths get every parameter, so either can start at the last moment.
 */

typedef struct {
    HB_PROV_CTX *provctx;
    hb_key_type type;
    int pss;
    int selection;
    EVP_PKEY_CTX *pctx;
    struct hb_mgen *mg;
} HB_GEN_CTX;

static void *gen_init(HB_PROV_CTX *provctx, hb_key_type type, int pss,
                      int selection, const OSSL_PARAM params[])
{
    HB_GEN_CTX *g = calloc(1, sizeof(*g));
    int rc;

    if (g == NULL)
        return NULL;
    g->provctx = provctx;
    g->type = type;
    g->pss = pss;
    g->selection = selection;
    g->mg = hb_mgen_new();
    g->pctx = EVP_PKEY_CTX_new_from_name(hb_priv_libctx(), alg_name(type, pss),
                                         NULL);
    if (g->pctx == NULL || g->mg == NULL)
        goto err;
    if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        rc = EVP_PKEY_keygen_init(g->pctx);
    else
        rc = EVP_PKEY_paramgen_init(g->pctx);
    if (rc <= 0 || (params != NULL && EVP_PKEY_CTX_set_params(g->pctx, params) <= 0)
        || !hb_mgen_set_params(provctx, g->mg, params))
        goto err;
    return g;
err:
    EVP_PKEY_CTX_free(g->pctx);
    hb_mgen_free(g->mg);
    free(g);
    return NULL;
}

static void *rsa_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
    return gen_init(provctx, HB_KT_RSA, 0, selection, params);
}

static void *rsapss_gen_init(void *provctx, int selection,
                             const OSSL_PARAM params[])
{
    return gen_init(provctx, HB_KT_RSA, 1, selection, params);
}

static void *ec_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
    return gen_init(provctx, HB_KT_EC, 0, selection, params);
}

static int gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    HB_GEN_CTX *g = genctx;

    if (params == NULL || params->key == NULL)
        return 1;
    if (!hb_mgen_set_params(g->provctx, g->mg, params))
        return 0;
    return EVP_PKEY_CTX_set_params(g->pctx, params) > 0;
}

static const OSSL_PARAM *gen_settable_params(void *genctx, void *provctx)
{
    HB_GEN_CTX *g = genctx;

    (void)provctx;
    return g != NULL ? hb_mgen_settable(g->type, g->pss,
                                        EVP_PKEY_CTX_settable_params(g->pctx))
                     : NULL;
}

/* A template carries domain parameters (the EC group). */
static int gen_set_template(void *genctx, void *templ)
{
    HB_GEN_CTX *g = genctx;
    HB_KEY *t = templ;
    OSSL_PARAM *params = NULL;
    int ok;

    if (t == NULL || t->pkey == NULL)
        return 0;
    if (EVP_PKEY_todata(t->pkey, EVP_PKEY_KEY_PARAMETERS, &params) <= 0)
        return 0;
    ok = EVP_PKEY_CTX_set_params(g->pctx, params) > 0
        && hb_mgen_set_params(g->provctx, g->mg, params);
    OSSL_PARAM_free(params);
    return ok;
}

static void *gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    HB_GEN_CTX *g = genctx;
    EVP_PKEY *pkey = NULL;
    HB_KEY *key;

    (void)cb;
    (void)cbarg;
    if (hb_mgen_active(g->mg))
        return hb_mgen_generate(g->provctx, g->mg, g->type, g->pss);
    if (EVP_PKEY_generate(g->pctx, &pkey) <= 0)
        return NULL;
    key = hb_key_new(g->provctx, g->type);
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key->pss = g->pss;
    key->pkey = pkey;
    key->local_private = (g->selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
    HB_DEBUG("generated a local %s key (default provider)",
             alg_name(g->type, g->pss));
    return key;
}

static void gen_cleanup(void *genctx)
{
    HB_GEN_CTX *g = genctx;

    if (g == NULL)
        return;
    EVP_PKEY_CTX_free(g->pctx);
    hb_mgen_free(g->mg);
    free(g);
}

static const OSSL_PARAM rsa_key_types[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_D, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR1, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR2, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT1, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT2, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM ec_key_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_key_types_fn(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) ? rsa_key_types : NULL;
}

static const OSSL_PARAM *rsapss_key_types_fn(int selection)
{
    return rsa_key_types_fn(selection);
}

static const OSSL_PARAM *ec_key_types_fn(int selection)
{
    return (selection & (OSSL_KEYMGMT_SELECT_KEYPAIR
                         | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS))
        ? ec_key_types : NULL;
}

#define KM_COMMON(prefix) \
    { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))prefix##_new }, \
    { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free }, \
    { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))km_load }, \
    { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has }, \
    { OSSL_FUNC_KEYMGMT_VALIDATE, (void (*)(void))km_validate }, \
    { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match }, \
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params }, \
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, \
      (void (*)(void))prefix##_gettable_params }, \
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, \
      (void (*)(void))prefix##_query_operation_name }, \
    { OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import }, \
    { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))prefix##_key_types_fn }, \
    { OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export }, \
    { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))prefix##_key_types_fn }, \
    { OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup }, \
    { OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))km_set_params }, \
    { OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, \
      (void (*)(void))prefix##_settable_params }, \
    { OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))prefix##_gen_init }, \
    { OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))gen_set_params }, \
    { OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, \
      (void (*)(void))gen_settable_params }, \
    { OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE, (void (*)(void))gen_set_template }, \
    { OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))gen }, \
    { OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))gen_cleanup }

const OSSL_DISPATCH hb_rsa_keymgmt_functions[] = {
    KM_COMMON(rsa),
    { 0, NULL }
};

const OSSL_DISPATCH hb_rsapss_keymgmt_functions[] = {
    KM_COMMON(rsapss),
    { 0, NULL }
};

const OSSL_DISPATCH hb_ec_keymgmt_functions[] = {
    KM_COMMON(ec),
    { 0, NULL }
};

int hb_ctx_take_key(HB_PROV_CTX *provctx, HB_KEY **slot, HB_KEY *key,
                    hb_key_type type, int need_pkey, const char *refusal)
{
    if (key != NULL) {
        if (key->magic != HB_KEY_MAGIC || key->type != type
            || (need_pkey ? key->pkey == NULL : key->reference == NULL)) {
            HB_RAISE(provctx, HB_R_BAD_KEY, "%s", refusal);
            return 0;
        }
        hb_key_up_ref(key);
        hb_key_free(*slot);
        *slot = key;
    }
    if (*slot == NULL) {
        HB_RAISE(provctx, HB_R_OPERATION_NOT_INITIALIZED, "no key set");
        return 0;
    }
    return 1;
}
