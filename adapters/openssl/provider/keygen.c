/*
 * Key generation and import into the backend, as masked keys (the
 * Integrated HSM seed's `openssl genpkey ... -pkeyopt azihsm.masked_key:`).
 *
 * keymgmt.c hands every generation parameter to hb_mgen_set_params; once an
 * azihsm.* parameter is seen, gen() comes here instead of making a local
 * key:
 *
 *   group               EC curve: P-256, P-384, P-521 (OpenSSL's aliases too)
 *   bits                RSA size (rsa_keygen_bits): must match the input key
 *   azihsm.masked_key   the blob file to write (required), relative to the
 *                       application's working directory; mode 0600
 *   azihsm.key_usage    digitalSignature (default), keyAgreement (EC),
 *                       keyEncipherment (RSA); passed to the host as is
 *   azihsm.session      true/false/yes/no/1/0: a session key, which stops
 *                       working when this process's session ends
 *   azihsm.input_key    a DER private key to import instead of generating
 *
 * Generation (EC only: the HSM cannot generate RSA keys) is one
 * GenerateMaskedRequest. Import never sends the private key in clear: it is
 * parsed and re-encoded as PKCS#8 here (default provider, private library
 * context), wrapped with CKM_RSA_AES_KEY_WRAP under the backend's import
 * key (ImportWrappingKeyRequest) — RSA-OAEP SHA-256 of a fresh AES-256
 * key, then RFC 5649 of the PKCS#8 under it — and sent as
 * ImportMaskedRequest. Every buffer that held key material is wiped.
 *
 * The reference of both requests is the azihsm:// URI of the output file,
 * which is also how the key is loaded later. The provider, not hsmhost,
 * writes the blob; the returned key object is the same as the store's.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "conn.h"
#include "errors.h"
#include "masked.h"
#include "provider.h"

#define P_MASKED_KEY "azihsm.masked_key"
#define P_KEY_USAGE "azihsm.key_usage"
#define P_SESSION "azihsm.session"
#define P_INPUT_KEY "azihsm.input_key"

#define HB_MAX_INPUT_KEY (64u * 1024u)

struct hb_mgen {
    char *group;
    int bits;          /* 0: not given */
    char *masked_key;
    char *usage;
    char *input_key;
    int session;
    int active;        /* an azihsm.* parameter was given */
};

struct hb_mgen *hb_mgen_new(void)
{
    return calloc(1, sizeof(struct hb_mgen));
}

void hb_mgen_free(struct hb_mgen *mg)
{
    if (mg == NULL)
        return;
    free(mg->group);
    free(mg->masked_key);
    free(mg->usage);
    free(mg->input_key);
    free(mg);
}

int hb_mgen_active(const struct hb_mgen *mg)
{
    return mg != NULL && mg->active;
}

static int get_string(HB_PROV_CTX *provctx, const OSSL_PARAM *p, char **out)
{
    const char *s = NULL;
    char *copy;

    if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "%s must be a string", p->key);
        return 0;
    }
    copy = hb_strdup(s);
    if (copy == NULL)
        return 0;
    free(*out);
    *out = copy;
    return 1;
}

int hb_mgen_set_params(HB_PROV_CTX *provctx, struct hb_mgen *mg,
                       const OSSL_PARAM params[])
{
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
    if (p != NULL && !get_string(provctx, p, &mg->group))
        return 0;
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_BITS);
    if (p != NULL && !OSSL_PARAM_get_int(p, &mg->bits))
        return 0;
    p = OSSL_PARAM_locate_const(params, P_MASKED_KEY);
    if (p != NULL && !get_string(provctx, p, &mg->masked_key))
        return 0;
    mg->active |= p != NULL;
    p = OSSL_PARAM_locate_const(params, P_KEY_USAGE);
    if (p != NULL && !get_string(provctx, p, &mg->usage))
        return 0;
    mg->active |= p != NULL;
    p = OSSL_PARAM_locate_const(params, P_INPUT_KEY);
    if (p != NULL && !get_string(provctx, p, &mg->input_key))
        return 0;
    mg->active |= p != NULL;
    p = OSSL_PARAM_locate_const(params, P_SESSION);
    if (p != NULL) {
        const char *s = NULL;

        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
                return 0;
            if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))
                mg->session = 1;
            else if (!strcasecmp(s, "false") || !strcasecmp(s, "no")
                     || !strcmp(s, "0"))
                mg->session = 0;
            else {
                HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                         P_SESSION " is true, false, yes, no, 1 or 0, not '%s'",
                         s);
                return 0;
            }
        } else if (!OSSL_PARAM_get_int(p, &mg->session)) {
            return 0;
        }
        mg->active = 1;
    }
    return 1;
}

/* ---- settable parameters ------------------------------------------------- */

static pthread_mutex_t settable_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_PARAM *settable[3]; /* RSA, RSA-PSS, EC; kept for the process */

const OSSL_PARAM *hb_mgen_settable(hb_key_type type, int pss,
                                   const OSSL_PARAM *base)
{
    static const OSSL_PARAM ours[] = {
        OSSL_PARAM_utf8_string(P_MASKED_KEY, NULL, 0),
        OSSL_PARAM_utf8_string(P_KEY_USAGE, NULL, 0),
        OSSL_PARAM_utf8_string(P_SESSION, NULL, 0),
        OSSL_PARAM_utf8_string(P_INPUT_KEY, NULL, 0),
        /* The import checks these; declared in case base lacks them. */
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_size_t(OSSL_PKEY_PARAM_RSA_BITS, NULL),
    };
    int i = type == HB_KT_EC ? 2 : pss ? 1 : 0;
    size_t nbase = 0, n = 0, j;
    OSSL_PARAM *all;

    pthread_mutex_lock(&settable_lock);
    if (settable[i] != NULL) {
        pthread_mutex_unlock(&settable_lock);
        return settable[i];
    }
    while (base != NULL && base[nbase].key != NULL)
        nbase++;
    all = calloc(nbase + sizeof(ours) / sizeof(ours[0]) + 1, sizeof(*all));
    if (all != NULL) {
        for (j = 0; j < nbase; j++)
            all[n++] = base[j];
        for (j = 0; j < sizeof(ours) / sizeof(ours[0]); j++) {
            if (j >= 4 && OSSL_PARAM_locate_const(base, ours[j].key) != NULL)
                continue;
            if (j == 4 && type != HB_KT_EC)
                continue;
            if (j == 5 && type == HB_KT_EC)
                continue;
            all[n++] = ours[j];
        }
        all[n] = OSSL_PARAM_construct_end();
        settable[i] = all;
    }
    pthread_mutex_unlock(&settable_lock);
    return all != NULL ? all : base;
}

/* ---- checks ---------------------------------------------------------------- */

/* The HSM's curve name for any of OpenSSL's names of P-256/384/521. */
static const char *curve_of(const char *name, int *bits)
{
    static const struct { const char *names[3]; const char *curve; int bits; }
        curves[] = {
            { { "P-256", "prime256v1", "secp256r1" }, "P-256", 256 },
            { { "P-384", "secp384r1", NULL }, "P-384", 384 },
            { { "P-521", "secp521r1", NULL }, "P-521", 521 },
        };
    size_t i, j;

    for (i = 0; name != NULL && i < sizeof(curves) / sizeof(curves[0]); i++)
        for (j = 0; j < 3 && curves[i].names[j] != NULL; j++)
            if (strcasecmp(name, curves[i].names[j]) == 0) {
                if (bits != NULL)
                    *bits = curves[i].bits;
                return curves[i].curve;
            }
    return NULL;
}

/* One usage per key, as the Integrated HSM has it; the host maps the word. */
static const char *usage_for(HB_PROV_CTX *provctx, const char *usage,
                             hb_key_type type, int pss)
{
    if (usage == NULL || strcasecmp(usage, "digitalSignature") == 0)
        return "digitalSignature";
    if (strcasecmp(usage, "keyAgreement") == 0) {
        if (type == HB_KT_EC)
            return "keyAgreement";
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 P_KEY_USAGE " keyAgreement is for EC keys only; an %s key "
                 "takes digitalSignature%s", pss ? "RSA-PSS" : "RSA",
                 pss ? "" : " or keyEncipherment");
        return NULL;
    }
    if (strcasecmp(usage, "keyEncipherment") == 0) {
        if (type == HB_KT_RSA && !pss)
            return "keyEncipherment";
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 P_KEY_USAGE " keyEncipherment is for RSA keys only; %s",
                 pss ? "an RSA-PSS key only signs (digitalSignature)"
                     : "an EC key takes digitalSignature or keyAgreement");
        return NULL;
    }
    HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
             P_KEY_USAGE " is digitalSignature, keyAgreement (EC) or "
             "keyEncipherment (RSA), not '%s'", usage);
    return NULL;
}

/* ---- after the host answered ---------------------------------------------- */

/* Writes the blob and makes the key object from the response's KeyInfo. */
static HB_KEY *finish(HB_PROV_CTX *provctx, const struct hb_mgen *mg,
                      const char *uri, const char *type,
                      const Hsmbridge__Host__V1__Response *resp,
                      const EVP_PKEY *imported)
{
    const Hsmbridge__Host__V1__MaskedKeyResponse *m = resp->masked;
    const Hsmbridge__Host__V1__KeyInfo *info;

    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_MASKED
        || m == NULL || m->blob.len == 0) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered without a masked key", uri);
        return NULL;
    }
    info = m->key;
    if (imported != NULL) {
        /* What the backend holds must be the key we were given. */
        const unsigned char *p = info != NULL ? info->public_key_der.data : NULL;
        EVP_PKEY *pub = p == NULL ? NULL
            : d2i_PUBKEY_ex(NULL, &p, (long)info->public_key_der.len,
                            hb_priv_libctx(), NULL);
        int same = pub != NULL && EVP_PKEY_eq(pub, imported) == 1;

        EVP_PKEY_free(pub);
        if (!same) {
            HB_RAISE(provctx, HB_R_BAD_KEY,
                     "%s: the key the backend imported does not match %s", uri,
                     mg->input_key);
            return NULL;
        }
    }
    if (!hb_write_private_file(provctx, mg->masked_key, "masked key file",
                               m->blob.data, m->blob.len))
        return NULL;
    HB_DEBUG("wrote %zu-byte masked key %s", m->blob.len, mg->masked_key);
    if (info == NULL || info->version == NULL || *info->version == '\0'
        || info->public_key_der.len == 0)
        /* No handle in the answer: open the blob we just wrote. */
        return hb_masked_open(provctx, uri, type, mg->masked_key, m->blob.data,
                              m->blob.len);
    return hb_masked_key_new(provctx, info, uri, type, mg->masked_key,
                             m->blob.data, m->blob.len);
}

/* ---- generation ------------------------------------------------------------ */

static HB_KEY *generate_ec(HB_PROV_CTX *provctx, const struct hb_mgen *mg,
                           const char *uri, const char *usage)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__GenerateMaskedRequest g =
        HSMBRIDGE__HOST__V1__GENERATE_MASKED_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    char *ops[1] = { (char *)usage };
    const char *curve;
    int bits = 0;
    HB_KEY *key;

    if (mg->group == NULL) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "an EC key needs its curve: -pkeyopt group:P-256, P-384 or "
                 "P-521");
        return NULL;
    }
    curve = curve_of(mg->group, &bits);
    if (curve == NULL) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "group %s is not offered: the HSM has P-256, P-384 and P-521",
                 mg->group);
        return NULL;
    }
    g.reference = (char *)uri;
    g.key_type = HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_EC;
    g.bits = bits;
    g.curve = (char *)curve;
    g.n_ops = 1;
    g.ops = ops;
    g.session = mg->session != 0;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_GENERATE_MASKED;
    req.generate_masked = &g;
    HB_DEBUG("generating %s %s key%s for %s", curve, usage,
             mg->session ? " (session)" : "", uri);
    /* Not idempotent: a retry after a lost answer would make a second key. */
    resp = hb_call(provctx, &req, 0, NULL);
    if (resp == NULL)
        return NULL;
    key = finish(provctx, mg, uri, "ec", resp, NULL);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return key;
}

/* ---- import ------------------------------------------------------------------ */

static EVP_PKEY *decode_private(HB_PROV_CTX *provctx, const char *path,
                                const unsigned char *der, size_t len)
{
    OSSL_DECODER_CTX *dctx;
    EVP_PKEY *pkey = NULL;
    const unsigned char *p = der;
    size_t left = len;

    /* Any DER private key: SEC1, PKCS#1 or PKCS#8 (unencrypted). */
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", NULL, NULL,
                                         EVP_PKEY_KEYPAIR, hb_priv_libctx(),
                                         NULL);
    if (dctx == NULL || !OSSL_DECODER_from_data(dctx, &p, &left)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    if (pkey == NULL)
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "input key file %s is not a DER private key (EC: SEC1 or "
                 "PKCS#8; RSA: PKCS#1 or PKCS#8; unencrypted)", path);
    return pkey;
}

/* An RSA-PSS private key as a plain RSA one: PKCS#8 rsaEncryption. */
static EVP_PKEY *as_plain_rsa(EVP_PKEY *pss)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *rsa = NULL;

    if (EVP_PKEY_todata(pss, EVP_PKEY_KEYPAIR, &params) > 0
        && (pctx = EVP_PKEY_CTX_new_from_name(hb_priv_libctx(), "RSA", NULL))
               != NULL
        && EVP_PKEY_fromdata_init(pctx) > 0
        && EVP_PKEY_fromdata(pctx, &rsa, EVP_PKEY_KEYPAIR, params) <= 0)
        rsa = NULL;
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params); /* private parts are in secure, cleared memory */
    return rsa;
}

/* Checks the key against the algorithm and parameters asked for. */
static int check_input(HB_PROV_CTX *provctx, const struct hb_mgen *mg,
                       EVP_PKEY *pkey, hb_key_type type, int pss)
{
    const char *path = mg->input_key;

    if (type == HB_KT_EC) {
        char group[64];
        const char *have, *want;

        if (!EVP_PKEY_is_a(pkey, "EC")) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "input key file %s holds a key of type %s, not EC", path,
                     EVP_PKEY_get0_type_name(pkey));
            return 0;
        }
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL)
            || (have = curve_of(group, NULL)) == NULL) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "input key file %s holds an EC key on a curve the HSM "
                     "does not offer (P-256, P-384, P-521 only)", path);
            return 0;
        }
        if (mg->group != NULL) {
            want = curve_of(mg->group, NULL);
            if (want == NULL || strcmp(want, have) != 0) {
                HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                         "input key file %s holds a %s key, but group is %s",
                         path, have, mg->group);
                return 0;
            }
        }
        return 1;
    }
    if (EVP_PKEY_is_a(pkey, "RSA-PSS") ? !pss : !EVP_PKEY_is_a(pkey, "RSA")) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "input key file %s holds a key of type %s, not %s%s", path,
                 EVP_PKEY_get0_type_name(pkey), pss ? "RSA or RSA-PSS" : "RSA",
                 EVP_PKEY_is_a(pkey, "RSA-PSS")
                     ? " (import it with -algorithm RSA-PSS)" : "");
        return 0;
    }
    {
        int bits = EVP_PKEY_get_bits(pkey);

        if (bits != 2048 && bits != 3072 && bits != 4096) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "input key file %s holds a %d-bit RSA key; the HSM takes "
                     "2048, 3072 or 4096 bits", path, bits);
            return 0;
        }
        if (mg->bits != 0 && mg->bits != bits) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "input key file %s holds a %d-bit RSA key, but "
                     "rsa_keygen_bits is %d", path, bits, mg->bits);
            return 0;
        }
    }
    return 1;
}

/* The backend's import key, as an RSA public key in the private libctx. */
static EVP_PKEY *wrapping_key(HB_PROV_CTX *provctx, const char *uri)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__ImportWrappingKeyRequest w =
        HSMBRIDGE__HOST__V1__IMPORT_WRAPPING_KEY_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    const unsigned char *p;
    EVP_PKEY *pub = NULL;

    w.reference = (char *)uri;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_IMPORT_WRAPPING_KEY;
    req.import_wrapping_key = &w;
    resp = hb_call(provctx, &req, 1, NULL);
    if (resp == NULL)
        return NULL;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_WRAPPING_KEY
        || resp->wrapping_key == NULL) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered without a wrapping key", uri);
    } else if (resp->wrapping_key->algorithm == NULL
               || strcmp(resp->wrapping_key->algorithm,
                         "CKM_RSA_AES_KEY_WRAP") != 0) {
        HB_RAISE(provctx, HB_R_UNSUPPORTED_PADDING,
                 "%s: the backend wants imports wrapped with %s; this "
                 "provider wraps with CKM_RSA_AES_KEY_WRAP only", uri,
                 resp->wrapping_key->algorithm ? resp->wrapping_key->algorithm
                                               : "(nothing named)");
    } else {
        p = resp->wrapping_key->public_key_der.data;
        pub = p == NULL ? NULL
            : d2i_PUBKEY_ex(NULL, &p,
                            (long)resp->wrapping_key->public_key_der.len,
                            hb_priv_libctx(), NULL);
        if (pub == NULL || !EVP_PKEY_is_a(pub, "RSA")) {
            EVP_PKEY_free(pub);
            pub = NULL;
            HB_RAISE(provctx, HB_R_PROTOCOL,
                     "%s: the backend's wrapping key is not an RSA public key",
                     uri);
        }
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return pub;
}

/*
 * CKM_RSA_AES_KEY_WRAP: RSA-OAEP (SHA-256, MGF1 SHA-256, no label) of a
 * fresh AES-256 key, then the RFC 5649 wrap of data under that key.
 */
static unsigned char *rsa_aes_wrap(HB_PROV_CTX *provctx, EVP_PKEY *wpub,
                                   const unsigned char *data, size_t len,
                                   size_t *outlen)
{
    OSSL_LIB_CTX *priv = hb_priv_libctx();
    unsigned char aes[32], *out = NULL;
    size_t rsalen = 0, cap;
    int l1 = 0, l2 = 0, ok = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_CIPHER *kw = NULL;
    EVP_CIPHER_CTX *cctx = NULL;
    OSSL_PARAM params[4];

    if (RAND_priv_bytes_ex(priv, aes, sizeof(aes), 0) <= 0)
        goto done;
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_ASYM_CIPHER_PARAM_PAD_MODE, (char *)OSSL_PKEY_RSA_PAD_MODE_OAEP, 0);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_utf8_string(
        OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, (char *)"SHA256", 0);
    params[3] = OSSL_PARAM_construct_end();
    pctx = EVP_PKEY_CTX_new_from_pkey(priv, wpub, NULL);
    if (pctx == NULL || EVP_PKEY_encrypt_init_ex(pctx, params) <= 0
        || EVP_PKEY_encrypt(pctx, NULL, &rsalen, aes, sizeof(aes)) <= 0)
        goto done;
    cap = rsalen + len + 16; /* RFC 5649: rounded up to 8, plus 8 */
    out = OPENSSL_malloc(cap);
    if (out == NULL
        || EVP_PKEY_encrypt(pctx, out, &rsalen, aes, sizeof(aes)) <= 0)
        goto done;
    kw = EVP_CIPHER_fetch(priv, "id-aes256-wrap-pad", NULL);
    cctx = EVP_CIPHER_CTX_new();
    if (kw == NULL || cctx == NULL)
        goto done;
    EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (!EVP_EncryptInit_ex2(cctx, kw, aes, NULL, NULL)
        || !EVP_EncryptUpdate(cctx, out + rsalen, &l1, data, (int)len)
        || !EVP_EncryptFinal_ex(cctx, out + rsalen + l1, &l2))
        goto done;
    *outlen = rsalen + (size_t)l1 + (size_t)l2;
    ok = 1;
done:
    OPENSSL_cleanse(aes, sizeof(aes));
    EVP_CIPHER_CTX_free(cctx);
    EVP_CIPHER_free(kw);
    EVP_PKEY_CTX_free(pctx);
    if (!ok) {
        HB_RAISE(provctx, HB_R_INTERNAL,
                 "cannot wrap the key for import (CKM_RSA_AES_KEY_WRAP)");
        if (out != NULL)
            OPENSSL_clear_free(out, rsalen + len + 16);
        return NULL;
    }
    return out;
}

static HB_KEY *import_key(HB_PROV_CTX *provctx, const struct hb_mgen *mg,
                          const char *uri, const char *type, hb_key_type kt,
                          int pss, const char *usage)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__ImportMaskedRequest im =
        HSMBRIDGE__HOST__V1__IMPORT_MASKED_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp = NULL;
    unsigned char *file = NULL, *pkcs8 = NULL, *wrapped = NULL;
    size_t filelen = 0, pkcs8len = 0, wrappedlen = 0;
    char *ops[1] = { (char *)usage };
    EVP_PKEY *pkey = NULL, *wpub = NULL;
    OSSL_ENCODER_CTX *ectx = NULL;
    HB_KEY *key = NULL;

    file = hb_read_file(provctx, mg->input_key, "input key file",
                        HB_MAX_INPUT_KEY, &filelen);
    if (file == NULL)
        goto done;
    pkey = decode_private(provctx, mg->input_key, file, filelen);
    if (pkey == NULL || !check_input(provctx, mg, pkey, kt, pss))
        goto done;
    if (EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        /* The backend takes rsaEncryption PKCS#8; the URI says RSA-PSS. */
        EVP_PKEY *rsa = as_plain_rsa(pkey);

        EVP_PKEY_free(pkey);
        pkey = rsa;
        if (pkey == NULL) {
            HB_RAISE(provctx, HB_R_INTERNAL,
                     "cannot convert the RSA-PSS key in %s", mg->input_key);
            goto done;
        }
    }
    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER",
                                         "PrivateKeyInfo", NULL);
    if (ectx == NULL || !OSSL_ENCODER_to_data(ectx, &pkcs8, &pkcs8len)) {
        HB_RAISE(provctx, HB_R_INTERNAL,
                 "cannot encode the key in %s as PKCS#8", mg->input_key);
        goto done;
    }
    wpub = wrapping_key(provctx, uri);
    if (wpub == NULL)
        goto done;
    wrapped = rsa_aes_wrap(provctx, wpub, pkcs8, pkcs8len, &wrappedlen);
    if (wrapped == NULL)
        goto done;
    OPENSSL_clear_free(pkcs8, pkcs8len);
    pkcs8 = NULL;

    im.reference = (char *)uri;
    im.wrapped.data = wrapped;
    im.wrapped.len = wrappedlen;
    im.n_ops = 1;
    im.ops = ops;
    im.session = mg->session != 0;
    /* What the command line says the key is, so that the backend (the
     * device) enforces it too; what the file holds where it says nothing. */
    im.key_type = kt == HB_KT_EC ? HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_EC
                                  : HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_RSA;
    if (kt == HB_KT_EC) {
        char group[64];

        if (mg->group != NULL)
            im.curve = (char *)curve_of(mg->group, NULL);
        else if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL))
            im.curve = (char *)curve_of(group, NULL);
    } else {
        im.bits = mg->bits != 0 ? mg->bits : EVP_PKEY_get_bits(pkey);
    }
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_IMPORT_MASKED;
    req.import_masked = &im;
    HB_DEBUG("importing %s (%s, %d bits) as a %s key for %s", mg->input_key,
             EVP_PKEY_get0_type_name(pkey), EVP_PKEY_get_bits(pkey), usage, uri);
    resp = hb_call(provctx, &req, 0, NULL);
    if (resp != NULL)
        key = finish(provctx, mg, uri, type, resp, pkey);
done:
    if (resp != NULL)
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    if (file != NULL)
        OPENSSL_clear_free(file, filelen);
    if (pkcs8 != NULL)
        OPENSSL_clear_free(pkcs8, pkcs8len);
    OPENSSL_free(wrapped); /* nothing readable without the backend's key */
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_free(wpub);
    EVP_PKEY_free(pkey);
    return key;
}

HB_KEY *hb_mgen_generate(HB_PROV_CTX *provctx, struct hb_mgen *mg,
                         hb_key_type type, int pss)
{
    const char *tword = type == HB_KT_EC ? "ec" : pss ? "rsa-pss" : "rsa";
    const char *usage;
    char *uri;
    HB_KEY *key;

    if (mg->masked_key == NULL || *mg->masked_key == '\0') {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 P_MASKED_KEY " is required: it names the file the masked key "
                 "is written to (-pkeyopt " P_MASKED_KEY ":./key.bin)");
        return NULL;
    }
    usage = usage_for(provctx, mg->usage, type, pss);
    if (usage == NULL)
        return NULL;
    if (type != HB_KT_EC && (mg->input_key == NULL || *mg->input_key == '\0')) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "the HSM cannot generate %s keys: generate one elsewhere "
                 "(openssl genpkey -algorithm %s -outform DER -out key.der) "
                 "and import it with -pkeyopt " P_INPUT_KEY ":key.der",
                 pss ? "RSA-PSS" : "RSA", pss ? "RSA-PSS" : "RSA");
        return NULL;
    }
    uri = hb_azihsm_uri(mg->masked_key, tword);
    if (uri == NULL)
        return NULL;
    if (mg->input_key != NULL && *mg->input_key != '\0')
        key = import_key(provctx, mg, uri, tword, type, pss, usage);
    else
        key = generate_ec(provctx, mg, uri, usage);
    free(uri);
    return key;
}
