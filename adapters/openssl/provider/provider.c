/*
 * Provider entry point: configuration, algorithm tables, provider params.
 *
 * One shared object serves three provider names (hsmbridge, akv_provider,
 * azihsm_provider). The name the core loaded us under picks the property
 * string all algorithms are registered with, so that applications written
 * for the Azure providers keep working with their "provider=akv" queries.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/provider.h>

#include "aeskw.h"
#include "conn.h"
#include "derive.h"
#include "errors.h"
#include "provider.h"

char *hb_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* ---- private library context ------------------------------------------- */

/*
 * One per process, shared by every instance of the module (it may be loaded
 * under several names, in several library contexts): created on first use,
 * freed when the last instance is torn down, so that a process that unloads
 * us does not keep its memory (80 KB, the default provider's tables).
 * priv_users counts the instances; a later instance makes a new context.
 */
static pthread_mutex_t priv_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_LIB_CTX *priv_libctx;
static OSSL_PROVIDER *priv_default; /* our reference, unloaded with it */
static int priv_users;

OSSL_LIB_CTX *hb_priv_libctx(void)
{
    OSSL_LIB_CTX *ctx;

    pthread_mutex_lock(&priv_lock);
    if (priv_libctx == NULL && (ctx = OSSL_LIB_CTX_new()) != NULL) {
        /* A fresh context reads no config: it cannot load us recursively. */
        if ((priv_default = OSSL_PROVIDER_load(ctx, "default")) == NULL)
            OSSL_LIB_CTX_free(ctx);
        else
            priv_libctx = ctx;
    }
    ctx = priv_libctx;
    pthread_mutex_unlock(&priv_lock);
    return ctx;
}

static void priv_hold(void)
{
    pthread_mutex_lock(&priv_lock);
    priv_users++;
    pthread_mutex_unlock(&priv_lock);
}

static void priv_release(void)
{
    OSSL_LIB_CTX *ctx = NULL;
    OSSL_PROVIDER *dflt = NULL;

    pthread_mutex_lock(&priv_lock);
    if (--priv_users == 0) {
        ctx = priv_libctx;
        dflt = priv_default;
        priv_libctx = NULL;
        priv_default = NULL;
    }
    pthread_mutex_unlock(&priv_lock);
    if (ctx != NULL) {
        /* What holds references into it goes first. */
        hb_digest_release();
        hb_keymgmt_release();
    }
    if (dflt != NULL)
        OSSL_PROVIDER_unload(dflt);
    OSSL_LIB_CTX_free(ctx);
}

/* ---- provider params ---------------------------------------------------- */

static const OSSL_PARAM hb_gettable_params[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *hb_gettable_params_fn(void *provctx)
{
    (void)provctx;
    return hb_gettable_params;
}

static int hb_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    (void)provctx;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, HB_PROV_NAME))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, HB_PROV_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, HB_PROV_BUILDINFO))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

static const OSSL_ITEM *hb_get_reason_strings(void *provctx)
{
    (void)provctx;
    return hb_reason_strings;
}

/* ---- algorithms ---------------------------------------------------------- */

static OSSL_ALGORITHM *make_algs(const OSSL_ALGORITHM *tmpl, size_t n,
                                 const char *propq, const char *extra[])
{
    OSSL_ALGORITHM *a = calloc(n + 1, sizeof(*a));
    size_t i;

    if (a == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        a[i] = tmpl[i];
        if (extra != NULL && extra[i] != NULL) {
            size_t len = strlen(propq) + strlen(extra[i]) + 2;
            char *s = malloc(len);

            if (s == NULL)
                return a; /* a shorter table is still a valid table */
            snprintf(s, len, "%s,%s", propq, extra[i]);
            a[i].property_definition = s;
        } else {
            a[i].property_definition = propq;
        }
    }
    return a;
}

static void free_algs(OSSL_ALGORITHM *a, const char *propq)
{
    size_t i;

    if (a == NULL)
        return;
    for (i = 0; a[i].algorithm_names != NULL; i++)
        if (a[i].property_definition != propq)
            free((char *)a[i].property_definition);
    free(a);
}

/* OpenSSL's names for RSA-PSS keys (and our signature for them). */
#define HB_RSA_PSS_NAMES "RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10"

static int build_tables(HB_PROV_CTX *ctx)
{
    static const OSSL_ALGORITHM keymgmt[] = {
        { "RSA:rsaEncryption", NULL, hb_rsa_keymgmt_functions,
          "hsmbridge RSA keys held by a backend" },
        { "EC:id-ecPublicKey", NULL, hb_ec_keymgmt_functions,
          "hsmbridge EC keys held by a backend" },
        { HB_RSA_PSS_NAMES, NULL, hb_rsapss_keymgmt_functions,
          "hsmbridge RSA-PSS keys held by a backend" },
        { HB_AES_KW_NAME, NULL, hb_aes_kw_keymgmt_functions,
          "hsmbridge AES keys held by a backend (aeskw.h)" },
        { HB_REF_ALG_NAMES, NULL, hb_keyref_keymgmt_functions,
          "hsmbridge key-reference PKCS#8 algorithm: holds no keys, names "
          "the PKCS#8 decoder (decoder.c)" },
    };
    static const OSSL_ALGORITHM signature[] = {
        { "RSA:rsaEncryption", NULL, hb_rsa_signature_functions,
          "RSA PKCS#1 v1.5 and PSS signatures by a backend" },
        { "ECDSA", NULL, hb_ecdsa_signature_functions,
          "ECDSA signatures by a backend" },
        /* What our RSA-PSS keymgmt names: RSA, PSS by default (sig_pss.c). */
        { HB_RSA_PSS_NAMES, NULL, hb_rsapss_signature_functions,
          "RSA-PSS signatures by a backend" },
    };
    /* Decryption by a backend; encryption is local, with the public key. */
    static const OSSL_ALGORITHM asym_cipher[] = {
        { "RSA:rsaEncryption", NULL, hb_rsa_asym_cipher_functions,
          "RSA OAEP and PKCS#1 v1.5 decryption by a backend" },
        { HB_AES_KW_NAME, NULL, hb_aes_kw_asym_cipher_functions,
          "AES key wrap and unwrap by a backend" },
    };
    /* The first three name the same key spaces; pkcs11: URIs are parsed by
     * hsmhost; azihsm:// names files. */
    static const OSSL_ALGORITHM store[] = {
        { "managedhsm", NULL, hb_store_functions, "managedhsm: references" },
        { "akv", NULL, hb_store_functions, "akv: references" },
        { "hsmbridge", NULL, hb_store_functions, "hsmbridge: references" },
        { "pkcs11", NULL, hb_store_functions,
          "RFC 7512 pkcs11: URIs, parsed by hsmhost" },
        { "azihsm", NULL, hb_store_functions,
          "azihsm:// masked-key files (store_azihsm.c)" },
    };
    /*
     * The PEM decoder outputs "DER" with our own data structure; the DER
     * decoders accept only that structure. This is how a key-reference file
     * plugs into OpenSSL's decoder chains (PEM_read_bio_PrivateKey, the file
     * store) next to the default provider's decoders. The PKCS#8 form's
     * PrivateKeyInfo goes to the decoder named for its algorithm, which
     * needs a key manager of that name to be considered at all (decoder.c).
     */
    static const OSSL_ALGORITHM decoder[] = {
        { "DER", NULL, hb_pem_decoder_functions,
          "hsmbridge key reference PEM to DER" },
        { "RSA:rsaEncryption", NULL, hb_der_rsa_decoder_functions,
          "hsmbridge key reference to RSA key" },
        { "EC:id-ecPublicKey", NULL, hb_der_ec_decoder_functions,
          "hsmbridge key reference to EC key" },
        { HB_REF_ALG_NAMES, NULL, hb_pki_decoder_functions,
          "hsmbridge key-reference PKCS#8 to RSA or EC key" },
    };
    static const char *decoder_extra[] = {
        "input=pem",
        "input=der,structure=" HB_REF_STRUCTURE,
        "input=der,structure=" HB_REF_STRUCTURE,
        "input=der,structure=PrivateKeyInfo",
    };

    /* Local hashing (digest.c); the names are the default provider's. */
    static const OSSL_ALGORITHM digest[] = {
        { "SHA1:SHA-1:SSL3-SHA1:1.3.14.3.2.26", NULL,
          hb_sha1_digest_functions, "SHA-1, computed locally" },
        { "SHA2-256:SHA-256:SHA256:2.16.840.1.101.3.4.2.1", NULL,
          hb_sha256_digest_functions, "SHA-256, computed locally" },
        { "SHA2-384:SHA-384:SHA384:2.16.840.1.101.3.4.2.2", NULL,
          hb_sha384_digest_functions, "SHA-384, computed locally" },
        { "SHA2-512:SHA-512:SHA512:2.16.840.1.101.3.4.2.3", NULL,
          hb_sha512_digest_functions, "SHA-512, computed locally" },
    };
    /*
     * encoder.c: public key, key-reference "private key" (PEM PrivateKeyInfo
     * and DER type-specific: what PEM_write_bio_PrivateKey and
     * i2d_PrivateKey ask for; DER PrivateKeyInfo is EVP_PKEY2PKCS8's
     * export, refused), text.
     */
    static const OSSL_ALGORITHM encoder[] = {
        { "RSA:rsaEncryption", NULL, hb_spki_der_encoder_functions, NULL },
        { "RSA:rsaEncryption", NULL, hb_spki_pem_encoder_functions, NULL },
        { "RSA:rsaEncryption", NULL, hb_pki_der_encoder_functions, NULL },
        { "RSA:rsaEncryption", NULL, hb_pki_pem_encoder_functions, NULL },
        { "RSA:rsaEncryption", NULL, hb_text_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_spki_der_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_spki_pem_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_pki_der_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_pki_pem_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_text_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_spki_der_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_spki_pem_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_pki_der_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_pki_pem_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_text_encoder_functions, NULL },
        { "RSA:rsaEncryption", NULL, hb_ts_der_encoder_functions, NULL },
        { "EC:id-ecPublicKey", NULL, hb_ts_der_encoder_functions, NULL },
        { HB_RSA_PSS_NAMES, NULL, hb_ts_der_encoder_functions, NULL },
    };
    static const char *encoder_extra[] = {
        "output=der,structure=SubjectPublicKeyInfo",
        "output=pem,structure=SubjectPublicKeyInfo",
        "output=der,structure=PrivateKeyInfo",
        "output=pem,structure=PrivateKeyInfo",
        "output=text",
        "output=der,structure=SubjectPublicKeyInfo",
        "output=pem,structure=SubjectPublicKeyInfo",
        "output=der,structure=PrivateKeyInfo",
        "output=pem,structure=PrivateKeyInfo",
        "output=text",
        "output=der,structure=SubjectPublicKeyInfo",
        "output=pem,structure=SubjectPublicKeyInfo",
        "output=der,structure=PrivateKeyInfo",
        "output=pem,structure=PrivateKeyInfo",
        "output=text",
        "output=der,structure=type-specific",
        "output=der,structure=type-specific",
        "output=der,structure=type-specific",
    };
    /* Its own name, never "CTR-DRBG": used only when asked for (rand.c). */
    static const OSSL_ALGORITHM rng[] = {
        { "HSMBRIDGE-RAND", NULL, hb_rand_functions,
          "random bytes drawn from the backend" },
    };

    hb_rsapss_signature_init();
#define HB_NELEM(a) (sizeof(a) / sizeof((a)[0]))
    ctx->keymgmt_algs = make_algs(keymgmt, HB_NELEM(keymgmt), ctx->propq, NULL);
    ctx->signature_algs = make_algs(signature, HB_NELEM(signature), ctx->propq, NULL);
    ctx->asym_cipher_algs = make_algs(asym_cipher, HB_NELEM(asym_cipher), ctx->propq, NULL);
    ctx->store_algs = make_algs(store, HB_NELEM(store), ctx->propq, NULL);
    ctx->decoder_algs = make_algs(decoder, HB_NELEM(decoder), ctx->propq, decoder_extra);
    ctx->digest_algs = make_algs(digest, HB_NELEM(digest), ctx->propq, NULL);
    ctx->encoder_algs = make_algs(encoder, HB_NELEM(encoder), ctx->propq, encoder_extra);
    ctx->rand_algs = make_algs(rng, HB_NELEM(rng), ctx->propq, NULL);
    if (!hb_derive_tables(ctx))
        return 0;
    return ctx->keymgmt_algs != NULL && ctx->signature_algs != NULL
        && ctx->asym_cipher_algs != NULL && ctx->store_algs != NULL
        && ctx->decoder_algs != NULL && ctx->digest_algs != NULL
        && ctx->encoder_algs != NULL && ctx->rand_algs != NULL;
}

static const OSSL_ALGORITHM *hb_query_operation(void *provctx, int op,
                                                int *no_cache)
{
    HB_PROV_CTX *ctx = provctx;

    *no_cache = 0;
    switch (op) {
    case OSSL_OP_KEYMGMT:
        return ctx->keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return ctx->signature_algs;
    case OSSL_OP_ASYM_CIPHER:
        return ctx->asym_cipher_algs;
    case OSSL_OP_STORE:
        return ctx->store_algs;
    case OSSL_OP_DECODER:
        return ctx->decoder_algs;
    case OSSL_OP_DIGEST:
        return ctx->digest_algs;
    case OSSL_OP_ENCODER:
        return ctx->encoder_algs;
    case OSSL_OP_RAND:
        return ctx->rand_algs;
    case OSSL_OP_KEYEXCH:
        return ctx->keyexch_algs;
    case OSSL_OP_KDF:
        return ctx->kdf_algs;
    case OSSL_OP_MAC:
        return ctx->mac_algs;
    }
    return NULL;
}

/*
 * TLS groups for EC key shares. libssl only offers a group whose keymgmt,
 * fetched without properties, comes from the provider that declared it; when
 * we are activated before the default provider our EC keymgmt is the one
 * fetched, so without these the NIST curves would vanish from TLS. Key
 * shares are then generated as local keys (keymgmt.c) and the ECDH itself is
 * done by the default provider. secp256k1 (a backend curve: Managed HSM's
 * P-256K) is declared as the default provider declares it, for TLS 1.2 and
 * DTLS 1.2 at most (RFC 8446 dropped it); without it a server could not even
 * name the group its certificate's key is on (-groups secp256k1).
 */
typedef struct {
    const char *name, *internal;
    unsigned int id, secbits;
    int maxtls, maxdtls; /* 0: no upper bound */
} HB_GROUP;

static const HB_GROUP hb_groups[] = {
    { "secp256r1", "prime256v1", 23, 128, 0, 0 },
    { "P-256", "prime256v1", 23, 128, 0, 0 },
    { "secp384r1", "secp384r1", 24, 192, 0, 0 },
    { "P-384", "secp384r1", 24, 192, 0, 0 },
    { "secp521r1", "secp521r1", 25, 256, 0, 0 },
    { "P-521", "secp521r1", 25, 256, 0, 0 },
    { "secp256k1", "secp256k1", 22, 128, 0x0303, 0xFEFD },
};

static int hb_get_capabilities(void *provctx, const char *capability,
                               OSSL_CALLBACK *cb, void *arg)
{
    size_t i;

    (void)provctx;
    if (strcasecmp(capability, "TLS-GROUP") != 0)
        return 1;
    for (i = 0; i < sizeof(hb_groups) / sizeof(hb_groups[0]); i++) {
        unsigned int id = hb_groups[i].id, sec = hb_groups[i].secbits;
        int mintls = 0x0301, maxtls = hb_groups[i].maxtls, mindtls = 0xFEFF,
            maxdtls = hb_groups[i].maxdtls, kem = 0;
        OSSL_PARAM p[] = {
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME,
                                   (char *)hb_groups[i].name,
                                   strlen(hb_groups[i].name)),
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL,
                                   (char *)hb_groups[i].internal,
                                   strlen(hb_groups[i].internal)),
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG, "EC", 2),
            OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
            OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &sec),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &mintls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &maxtls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &mindtls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &maxdtls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &kem),
            OSSL_PARAM_END
        };

        if (!cb(p, arg))
            return 0;
    }
    return 1;
}

static void hb_teardown(void *provctx)
{
    HB_PROV_CTX *ctx = provctx;

    if (ctx == NULL)
        return;
    HB_DEBUG("teardown of %s", ctx->name ? ctx->name : "?");
    hb_pool_free(ctx);
    free_algs(ctx->keymgmt_algs, ctx->propq);
    free_algs(ctx->signature_algs, ctx->propq);
    free_algs(ctx->asym_cipher_algs, ctx->propq);
    free_algs(ctx->store_algs, ctx->propq);
    free_algs(ctx->decoder_algs, ctx->propq);
    free_algs(ctx->digest_algs, ctx->propq);
    free_algs(ctx->encoder_algs, ctx->propq);
    free_algs(ctx->rand_algs, ctx->propq);
    hb_derive_tables_free(ctx);
    OSSL_LIB_CTX_free(ctx->libctx);
    free(ctx->name);
    free(ctx->module_path);
    free(ctx->socket_path);
    free(ctx->hsmhost_path);
    free(ctx);
    priv_release();
}

static const OSSL_DISPATCH hb_dispatch[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))hb_teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))hb_gettable_params_fn },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))hb_get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))hb_query_operation },
    { OSSL_FUNC_PROVIDER_GET_CAPABILITIES,
      (void (*)(void))hb_get_capabilities },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
      (void (*)(void))hb_get_reason_strings },
    { 0, NULL }
};

/* ---- configuration ------------------------------------------------------- */

static int parse_bool(const char *s, int dflt)
{
    if (s == NULL || *s == '\0')
        return dflt;
    if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on")
        || !strcmp(s, "1"))
        return 1;
    if (!strcasecmp(s, "no") || !strcasecmp(s, "false")
        || !strcasecmp(s, "off") || !strcmp(s, "0"))
        return 0;
    return dflt;
}

static char *find_hsmhost(const char *config, const char *module_path)
{
    const char *env = getenv("HSMBRIDGE_HSMHOST");
    char buf[4096];
    const char *slash;

    if (config != NULL && *config != '\0')
        return hb_strdup(config);
    if (env != NULL && *env != '\0')
        return hb_strdup(env);
    /* Installed layout: <prefix>/ossl-modules/x.so next to <prefix>/bin. */
    if (module_path != NULL && (slash = strrchr(module_path, '/')) != NULL) {
        snprintf(buf, sizeof(buf), "%.*s/../bin/hsmhost",
                 (int)(slash - module_path), module_path);
        if (access(buf, X_OK) == 0)
            return hb_strdup(buf);
    }
    return hb_strdup("hsmhost"); /* searched in PATH by the spawning shell */
}

static const char *property_for(const char *name)
{
    if (name != NULL && strncasecmp(name, "akv", 3) == 0)
        return "provider=akv";
    if (name != NULL && strncasecmp(name, "azihsm", 6) == 0)
        return "provider=azihsm";
    return "provider=hsmbridge";
}

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    HB_PROV_CTX *ctx;
    const OSSL_DISPATCH *d;
    char *name = NULL, *module = NULL, *sock = NULL, *autostart = NULL,
         *hsmhost = NULL, *host_uid = NULL, *tmo_ms = NULL, *retry_ms = NULL;
    const char *tmo;
    OSSL_PARAM params[9];

    hb_debug_init();
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return 0;
    priv_hold(); /* every context torn down has held: see priv_release() */
    ctx->handle = handle;
    for (d = in; d->function_id != 0; d++) {
        switch (d->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            ctx->core_get_params = OSSL_FUNC_core_get_params(d);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            ctx->core_new_error = OSSL_FUNC_core_new_error(d);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            ctx->core_set_error_debug = OSSL_FUNC_core_set_error_debug(d);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            ctx->core_vset_error = OSSL_FUNC_core_vset_error(d);
            break;
        }
    }

    params[0] = OSSL_PARAM_construct_utf8_ptr(OSSL_PROV_PARAM_CORE_PROV_NAME,
                                              &name, 0);
    params[1] = OSSL_PARAM_construct_utf8_ptr(
        OSSL_PROV_PARAM_CORE_MODULE_FILENAME, &module, 0);
    params[2] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_socket", &sock, 0);
    params[3] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_autostart",
                                              &autostart, 0);
    params[4] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_hsmhost", &hsmhost, 0);
    params[5] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_host_uid", &host_uid, 0);
    params[6] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_timeout_ms", &tmo_ms, 0);
    params[7] = OSSL_PARAM_construct_utf8_ptr("hsmbridge_retry_ms", &retry_ms, 0);
    params[8] = OSSL_PARAM_construct_end();
    if (ctx->core_get_params == NULL || !ctx->core_get_params(handle, params)) {
        HB_RAISE(ctx, HB_R_INTERNAL, "cannot read the provider configuration");
        hb_teardown(ctx);
        return 0;
    }

    ctx->name = hb_strdup(name != NULL ? name : HB_PROV_NAME);
    ctx->module_path = hb_strdup(module);
    ctx->propq = property_for(ctx->name);
    ctx->socket_path = (sock != NULL && *sock != '\0') ? hb_strdup(sock)
                                                        : hb_default_socket_path();
    ctx->autostart = parse_bool(autostart, 1);
    ctx->hsmhost_path = find_hsmhost(hsmhost, module);
    ctx->timeout_ms = 30000;
    tmo = getenv("HSMBRIDGE_TIMEOUT_MS");
    if (tmo != NULL && atoi(tmo) > 0)
        ctx->timeout_ms = atoi(tmo);
    hb_conn_configure(ctx, host_uid, tmo_ms, retry_ms); /* conn.c */

    ctx->libctx = OSSL_LIB_CTX_new_from_dispatch(handle, in);
    if (ctx->name == NULL || ctx->socket_path == NULL
        || ctx->hsmhost_path == NULL || ctx->libctx == NULL
        || !hb_pool_init(ctx) || !build_tables(ctx)) {
        HB_RAISE(ctx, HB_R_MALLOC_FAILURE, "provider initialisation failed");
        hb_teardown(ctx);
        return 0;
    }
    HB_DEBUG("init name=%s module=%s property=%s socket=%s autostart=%d "
             "hsmhost=%s timeout=%dms", ctx->name,
             ctx->module_path ? ctx->module_path : "(builtin)", ctx->propq,
             ctx->socket_path, ctx->autostart, ctx->hsmhost_path,
             ctx->timeout_ms);
    *out = hb_dispatch;
    *provctx = ctx;
    return 1;
}
