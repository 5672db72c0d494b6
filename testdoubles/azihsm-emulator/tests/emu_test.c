/*
 * Drives the emulated Azure Integrated HSM device
 * (build/emulator/libazihsm_api_native.so) as a client would: the library
 * is loaded with dlopen, every signature is verified and every derived
 * value recomputed with OpenSSL's default provider, never with the device.
 *
 *   emu_test <path of libazihsm_api_native.so>
 *
 * AZIHSM_EMU_STATE_DIR should name a fresh directory (one is made when it
 * is unset). Prints "N passed, 0 failed" and exits 0 when every check holds.
 * emulator_test.go in the folder above builds and runs it, also under
 * valgrind.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define AZIHSM_NO_PROTOTYPES
#include "azihsm_api.h"
#include "azihsm_emu.h"

/* ---- the library, through dlsym ----------------------------------------- */

#define FN_MEMBER(name, params) azihsm_status(*name) params;
struct lib {
    void *dl;
    AZIHSM_API_FUNCTIONS(FN_MEMBER)
    AZIHSM_EMU_FUNCTIONS(FN_MEMBER)
};
#undef FN_MEMBER

static struct lib *L; /* the device under test */

static int lib_open(struct lib *l, const char *path)
{
    memset(l, 0, sizeof(*l));
    l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (l->dl == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 0;
    }
#define FN_LOAD(name, params)                                                  \
    *(void **)&l->name = dlsym(l->dl, #name);                                  \
    if (l->name == NULL) {                                                     \
        fprintf(stderr, "dlsym %s: missing\n", #name);                         \
        return 0;                                                              \
    }
    AZIHSM_API_FUNCTIONS(FN_LOAD)
    AZIHSM_EMU_FUNCTIONS(FN_LOAD)
#undef FN_LOAD
    return 1;
}

/* ---- checks --------------------------------------------------------------- */

static int g_passed, g_failed;

static const char *status_name(azihsm_status s)
{
    switch (s) {
#define S(n) case AZIHSM_STATUS_##n: return #n;
    S(SUCCESS) S(INVALID_ARGUMENT) S(INVALID_HANDLE) S(INDEX_OUT_OF_RANGE)
    S(BUFFER_TOO_SMALL) S(INTERNAL_ERROR) S(INVALID_KEY_SIZE) S(PROPERTY_NOT_PRESENT)
    S(KEY_CLASS_NOT_SPECIFIED) S(KEY_KIND_NOT_SPECIFIED) S(INVALID_KEY)
    S(UNSUPPORTED_KEY_KIND) S(UNSUPPORTED_ALGORITHM) S(INVALID_SIGNATURE)
    S(INVALID_KEY_PROPS) S(UNSUPPORTED_PROPERTY) S(NOT_FOUND) S(IO_ABORTED)
    S(CREDENTIALS_NOT_ESTABLISHED) S(PARTITION_NOT_PROVISIONED)
    S(MASKED_KEY_DECODE_FAILED) S(SESSION_NEEDS_RENEGOTIATION) S(DEVICE_NOT_READY)
    S(UNSUPPORTED_API_REVISION) S(DEVICE_NOT_ACCESSIBLE) S(INVALID_CONTEXT_STATE)
    S(INVALID_SESSION) S(UNSUPPORTED_KEY_OPERATION)
#undef S
    default:
        return "?";
    }
}

static int check_(int ok, int line, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        g_passed++;
        ERR_clear_error(); /* what a failure prints is then its own */
        return 1;
    }
    g_failed++;
    fprintf(stderr, "FAIL emu_test.c:%d: ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_print_errors_fp(stderr);
    return 0;
}

static int check_st_(azihsm_status got, azihsm_status want, const char *expr, int line)
{
    return check_(got == want, line, "%s = %d (%s), want %d (%s)", expr, got,
                  status_name(got), want, status_name(want));
}

/* CHECK(cond, fmt, ...) and CHECK_ST(call, status) return whether they held. */
#define CHECK(cond, ...) check_(!!(cond), __LINE__, __VA_ARGS__)
#define CHECK_ST(expr, want) check_st_((expr), (want), #expr, __LINE__)
#define OK(expr) CHECK_ST((expr), AZIHSM_STATUS_SUCCESS)

/* ---- small helpers -------------------------------------------------------- */

static const struct azihsm_credentials k_creds = {
    .id = "emu-test-cred-id",
    .pin = "emu-test-pin-123",
};

static struct azihsm_buffer buf(const void *p, size_t n)
{
    struct azihsm_buffer b = {(void *)p, (uint32_t)n};
    return b;
}

/* A key property list under construction; values live in the list. */
struct plist {
    struct azihsm_key_prop p[12];
    uint32_t u32[12];
    uint8_t b[12];
    struct azihsm_key_prop_list list;
};

static struct plist *pl_u32(struct plist *l, azihsm_key_prop_id id, uint32_t v)
{
    uint32_t i = l->list.count++;

    l->u32[i] = v;
    l->p[i] = (struct azihsm_key_prop){id, &l->u32[i], sizeof(uint32_t)};
    l->list.props = l->p;
    return l;
}

static struct plist *pl_bool(struct plist *l, azihsm_key_prop_id id, int v)
{
    uint32_t i = l->list.count++;

    l->b[i] = (uint8_t)(v != 0);
    l->p[i] = (struct azihsm_key_prop){id, &l->b[i], 1};
    l->list.props = l->p;
    return l;
}

static void pl_init(struct plist *l, azihsm_key_class cls, azihsm_key_kind kind)
{
    memset(l, 0, sizeof(*l));
    pl_u32(l, AZIHSM_KEY_PROP_ID_CLASS, cls);
    pl_u32(l, AZIHSM_KEY_PROP_ID_KIND, kind);
}

/* A key property by the two-call convention; *val is malloc'd. */
static azihsm_status key_prop(azihsm_handle key, azihsm_key_prop_id id, uint8_t **val,
                              uint32_t *len)
{
    struct azihsm_key_prop p = {id, NULL, 0};
    azihsm_status st = L->azihsm_key_get_prop(key, &p);

    *val = NULL;
    *len = 0;
    if (st != AZIHSM_STATUS_BUFFER_TOO_SMALL)
        return st;
    p.val = malloc(p.len);
    st = L->azihsm_key_get_prop(key, &p);
    if (st != AZIHSM_STATUS_SUCCESS) {
        free(p.val);
        return st;
    }
    *val = p.val;
    *len = p.len;
    return st;
}

static uint32_t key_u32(azihsm_handle key, azihsm_key_prop_id id)
{
    uint32_t v = 0;
    struct azihsm_key_prop p = {id, &v, sizeof(v)};

    CHECK_ST(L->azihsm_key_get_prop(key, &p), AZIHSM_STATUS_SUCCESS);
    return v;
}

static int key_bool(azihsm_handle key, azihsm_key_prop_id id)
{
    uint8_t v = 0xff;
    struct azihsm_key_prop p = {id, &v, 1};

    CHECK_ST(L->azihsm_key_get_prop(key, &p), AZIHSM_STATUS_SUCCESS);
    return v;
}

/* The key's public half as OpenSSL sees it (default provider). */
static EVP_PKEY *pub_pkey(azihsm_handle key)
{
    uint8_t *der = NULL;
    uint32_t len = 0;
    const unsigned char *p;
    EVP_PKEY *k = NULL;

    if (OK(key_prop(key, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &der, &len))) {
        p = der;
        k = d2i_PUBKEY_ex(NULL, &p, (long)len, NULL, "provider=default");
        CHECK(k != NULL && p == der + len, "PUB_KEY_INFO is not one SubjectPublicKeyInfo");
    }
    free(der);
    return k;
}

static uint8_t *spki_of(EVP_PKEY *k, uint32_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);

    *len = n > 0 ? (uint32_t)n : 0;
    return der;
}

/* Signs with the two-call convention, checking the size asked for. */
static azihsm_status sign2(struct azihsm_algo *algo, azihsm_handle key, const void *data,
                           size_t len, uint8_t *sig, uint32_t *siglen)
{
    struct azihsm_buffer in = buf(data, len), out = {NULL, 0};
    azihsm_status st = L->azihsm_crypt_sign(algo, key, &in, &out);

    if (st != AZIHSM_STATUS_BUFFER_TOO_SMALL)
        return st;
    *siglen = out.len;
    out.ptr = sig;
    return L->azihsm_crypt_sign(algo, key, &in, &out);
}

static azihsm_status dverify(struct azihsm_algo *algo, azihsm_handle key, const void *data,
                             size_t len, const uint8_t *sig, uint32_t siglen)
{
    struct azihsm_buffer in = buf(data, len), s = buf(sig, siglen);

    return L->azihsm_crypt_verify(algo, key, &in, &s);
}

static azihsm_handle open_session(azihsm_handle part)
{
    azihsm_handle s = 0;

    OK(L->azihsm_sess_open(part, &k_creds, NULL, &s));
    return s;
}

static void digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out, size_t *outlen)
{
    unsigned int n = 0;

    EVP_Digest(data, len, out, &n, md, NULL);
    *outlen = n;
}

/* ---- local crypto (OpenSSL's default provider) ---------------------------- */

#define PROPQ "provider=default"

/* Verifies raw r‖s over a digest. */
static int local_verify_ecdsa(EVP_PKEY *pub, const uint8_t *dg, size_t dlen, const uint8_t *sig,
                              size_t siglen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    unsigned char *der = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pub, PROPQ);
    int n, ok = 0;

    ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)siglen / 2, NULL),
                   BN_bin2bn(sig + siglen / 2, (int)siglen / 2, NULL));
    n = i2d_ECDSA_SIG(es, &der);
    if (c != NULL && n > 0 && EVP_PKEY_verify_init(c) == 1)
        ok = EVP_PKEY_verify(c, der, (size_t)n, dg, dlen) == 1;
    EVP_PKEY_CTX_free(c);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

/* Verifies an RSA signature over a digest: PKCS#1 v1.5, or PSS with salt. */
static int local_verify_rsa(EVP_PKEY *pub, int padding, const EVP_MD *md, int salt,
                            const uint8_t *dg, size_t dlen, const uint8_t *sig, size_t siglen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pub, PROPQ);
    int ok = c != NULL && EVP_PKEY_verify_init(c) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, padding) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, md) == 1;

    if (ok && padding == RSA_PKCS1_PSS_PADDING)
        ok = EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, salt) == 1;
    ok = ok && EVP_PKEY_verify(c, sig, siglen, dg, dlen) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* RSA encryption (OAEP with md and label, or PKCS#1 when md is NULL). */
static size_t local_rsa_encrypt(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *label,
                                size_t labellen, const uint8_t *in, size_t inlen, uint8_t *out)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pub, PROPQ);
    size_t n = (size_t)EVP_PKEY_get_size(pub);
    int ok = c != NULL && EVP_PKEY_encrypt_init(c) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, md ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING) == 1;

    if (ok && md != NULL) {
        ok = EVP_PKEY_CTX_set_rsa_oaep_md(c, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1;
        if (ok && labellen)
            ok = EVP_PKEY_CTX_set0_rsa_oaep_label(c, OPENSSL_memdup(label, labellen),
                                                  (int)labellen) == 1;
    }
    ok = ok && EVP_PKEY_encrypt(c, out, &n, in, inlen) == 1;
    EVP_PKEY_CTX_free(c);
    return ok ? n : 0;
}

static size_t local_rsa_oaep_decrypt(EVP_PKEY *priv, const EVP_MD *md, const uint8_t *in,
                                     size_t inlen, uint8_t *out)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, PROPQ);
    size_t n = (size_t)EVP_PKEY_get_size(priv);
    int ok = c != NULL && EVP_PKEY_decrypt_init(c) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(c, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1 &&
             EVP_PKEY_decrypt(c, out, &n, in, inlen) == 1;

    EVP_PKEY_CTX_free(c);
    return ok ? n : 0;
}

/* ECDH of our private key with the device key's public half. */
static size_t local_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *out, size_t max)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, PROPQ);
    size_t n = max;
    int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, out, &n) == 1;

    EVP_PKEY_CTX_free(c);
    return ok ? n : 0;
}

/* EVP_KDF "HKDF", or "KBKDF" in counter mode with HMAC. */
static int local_kdf(const char *kdf, const char *md, const uint8_t *key, size_t keylen,
                     const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t *out,
                     size_t outlen)
{
    EVP_KDF *k = EVP_KDF_fetch(NULL, kdf, PROPQ);
    EVP_KDF_CTX *c = k ? EVP_KDF_CTX_new(k) : NULL;
    OSSL_PARAM p[7], *q = p;
    int ok;

    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
    /* HKDF: salt, info. KBKDF: label (as "salt"), context (as "info"). */
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)a, alen);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)b, blen);
    if (strcmp(kdf, "KBKDF") == 0) {
        *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, "counter", 0);
        *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, "HMAC", 0);
    }
    *q = OSSL_PARAM_construct_end();
    ok = c != NULL && EVP_KDF_derive(c, out, outlen, p) == 1;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(k);
    return ok;
}

static int local_hmac(const char *md, const uint8_t *key, size_t keylen, const void *data,
                      size_t len, uint8_t *out, size_t *outlen)
{
    return EVP_Q_mac(NULL, "HMAC", PROPQ, md, NULL, key, keylen, data, len, out, 64, outlen) !=
           NULL;
}

/* RSA-OAEP-SHA256(AES-256 key) under the unwrapping key, then RFC 5649 of PKCS#8. */
static uint8_t *wrap_for_import(EVP_PKEY *wrapping, EVP_PKEY *key, size_t *outlen)
{
    uint8_t aes[32], *out = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *der = NULL;
    int derlen = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    size_t k = (size_t)EVP_PKEY_get_size(wrapping);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, f = 0;

    PKCS8_PRIV_KEY_INFO_free(p8);
    RAND_bytes(aes, sizeof(aes));
    if (derlen <= 0 || c == NULL)
        goto out;
    out = malloc(k + (size_t)derlen + 16);
    if (local_rsa_encrypt(wrapping, EVP_sha256(), NULL, 0, aes, sizeof(aes), out) != k)
        goto fail;
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_EncryptInit_ex(c, EVP_aes_256_wrap_pad(), NULL, aes, NULL) != 1 ||
        EVP_EncryptUpdate(c, out + k, &n, der, derlen) != 1 ||
        EVP_EncryptFinal_ex(c, out + k + n, &f) != 1)
        goto fail;
    *outlen = k + (size_t)n + (size_t)f;
    goto out;
fail:
    free(out);
    out = NULL;
out:
    EVP_CIPHER_CTX_free(c);
    OPENSSL_clear_free(der, derlen > 0 ? (size_t)derlen : 0);
    OPENSSL_cleanse(aes, sizeof(aes));
    return out;
}

/* ---- key makers --------------------------------------------------------------- */

static const struct {
    azihsm_ecc_curve id;
    const char *group;
    uint32_t bits;
    const EVP_MD *(*md)(void);
    azihsm_algo_id ecdsa_md; /* ECDSA_SHA* for the message form */
} k_curves[] = {
    {AZIHSM_ECC_CURVE_P256, "P-256", 256, EVP_sha256, AZIHSM_ALGO_ID_ECDSA_SHA256},
    {AZIHSM_ECC_CURVE_P384, "P-384", 384, EVP_sha384, AZIHSM_ALGO_ID_ECDSA_SHA384},
    {AZIHSM_ECC_CURVE_P521, "P-521", 521, EVP_sha512, AZIHSM_ALGO_ID_ECDSA_SHA512},
};

enum ec_use { EC_SIGN, EC_AGREE };

static azihsm_status gen_ec(azihsm_handle s, azihsm_ecc_curve curve, enum ec_use use, int session,
                            azihsm_handle *priv, azihsm_handle *pub)
{
    struct azihsm_algo algo = {AZIHSM_ALGO_ID_EC_KEY_PAIR_GEN, NULL, 0};
    struct plist pv, pb;

    pl_init(&pv, AZIHSM_KEY_CLASS_PRIVATE, AZIHSM_KEY_KIND_ECC);
    pl_init(&pb, AZIHSM_KEY_CLASS_PUBLIC, AZIHSM_KEY_KIND_ECC);
    pl_u32(&pv, AZIHSM_KEY_PROP_ID_EC_CURVE, curve);
    pl_u32(&pb, AZIHSM_KEY_PROP_ID_EC_CURVE, curve);
    if (use == EC_SIGN) {
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_SIGN, 1);
        pl_bool(&pb, AZIHSM_KEY_PROP_ID_VERIFY, 1);
    } else {
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_DERIVE, 1);
    }
    if (session)
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_SESSION, 1);
    return L->azihsm_key_gen_pair(s, &algo, &pv.list, &pb.list, priv, pub);
}

static azihsm_status gen_unwrapping_key(azihsm_handle s, azihsm_handle *priv, azihsm_handle *pub)
{
    struct azihsm_algo algo = {AZIHSM_ALGO_ID_RSA_KEY_UNWRAPPING_KEY_PAIR_GEN, NULL, 0};
    struct plist pv, pb;

    pl_init(&pv, AZIHSM_KEY_CLASS_PRIVATE, AZIHSM_KEY_KIND_RSA);
    pl_init(&pb, AZIHSM_KEY_CLASS_PUBLIC, AZIHSM_KEY_KIND_RSA);
    pl_u32(&pv, AZIHSM_KEY_PROP_ID_BIT_LEN, 2048);
    pl_bool(&pv, AZIHSM_KEY_PROP_ID_UNWRAP, 1);
    pl_bool(&pb, AZIHSM_KEY_PROP_ID_WRAP, 1);
    return L->azihsm_key_gen_pair(s, &algo, &pv.list, &pb.list, priv, pub);
}

/* Imports key through the unwrapping key, for signing or for encipherment. */
static azihsm_status import_rsa(azihsm_handle unwrap_priv, EVP_PKEY *wrapping, EVP_PKEY *key,
                                int for_sign, azihsm_handle *priv, azihsm_handle *pub)
{
    struct azihsm_algo_rsa_pkcs_oaep_params oaep = {AZIHSM_ALGO_ID_SHA256, AZIHSM_MGF1_ID_SHA256,
                                                    NULL};
    struct azihsm_algo_rsa_aes_key_wrap_params kw = {256, &oaep};
    struct azihsm_algo algo = {AZIHSM_ALGO_ID_RSA_AES_KEY_WRAP, &kw, sizeof(kw)};
    struct plist pv, pb;
    size_t wlen = 0;
    uint8_t *wrapped = wrap_for_import(wrapping, key, &wlen);
    struct azihsm_buffer in = buf(wrapped, wlen);
    azihsm_status st;

    if (!CHECK(wrapped != NULL, "wrapping a key for import failed"))
        return AZIHSM_STATUS_INTERNAL_ERROR;
    pl_init(&pv, AZIHSM_KEY_CLASS_PRIVATE, AZIHSM_KEY_KIND_RSA);
    pl_init(&pb, AZIHSM_KEY_CLASS_PUBLIC, AZIHSM_KEY_KIND_RSA);
    pl_u32(&pv, AZIHSM_KEY_PROP_ID_BIT_LEN, (uint32_t)EVP_PKEY_get_bits(key));
    pl_bool(&pv, for_sign ? AZIHSM_KEY_PROP_ID_SIGN : AZIHSM_KEY_PROP_ID_DECRYPT, 1);
    pl_bool(&pb, for_sign ? AZIHSM_KEY_PROP_ID_VERIFY : AZIHSM_KEY_PROP_ID_ENCRYPT, 1);
    st = L->azihsm_key_unwrap_pair(&algo, unwrap_priv, &in, &pv.list, &pb.list, priv, pub);
    free(wrapped);
    return st;
}

/* ---- flows ------------------------------------------------------------------- */

static azihsm_handle g_part;
static char g_path[64]; /* the partition's path, as the list gives it */

static void flow_partition(void)
{
    azihsm_handle list = 0, s = 0, part2 = 0;
    uint32_t count = 0;
    char path[64];
    struct azihsm_part_info info = {{NULL, 0}, {0, 0}, {0, 0}};
    struct azihsm_owner_backup_key_config obk = {AZIHSM_OWNER_BACKUP_KEY_SOURCE_TPM, NULL, NULL};
    struct azihsm_pota_endorsement pota = {AZIHSM_POTA_ENDORSEMENT_SOURCE_TPM, NULL};
    struct azihsm_credentials wrong = k_creds;
    struct azihsm_str str;
    struct azihsm_api_rev rev = {0, 0};
    struct azihsm_session_prop sp = {AZIHSM_SESSION_PROP_ID_API_REV, &rev, sizeof(rev)};
    uint8_t pubkey[256];
    struct azihsm_part_prop pp = {AZIHSM_PART_PROP_ID_PART_PUB_KEY, NULL, 0};

    OK(L->azihsm_part_get_list(&list));
    OK(L->azihsm_part_get_count(list, &count));
    CHECK(count == 1, "partition count %u, want 1", count);
    CHECK_ST(L->azihsm_part_get_info(list, 1, &info), AZIHSM_STATUS_INDEX_OUT_OF_RANGE);
    CHECK_ST(L->azihsm_part_get_info(list, 0, &info), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    CHECK(info.path.len > 1 && info.path.len <= sizeof(path), "path needs %u bytes", info.path.len);
    info.path.str = (azihsm_char *)path;
    OK(L->azihsm_part_get_info(list, 0, &info));
    memcpy(g_path, path, sizeof(g_path));
    OK(L->azihsm_part_free_list(list));
    CHECK_ST(L->azihsm_part_free_list(list), AZIHSM_STATUS_INVALID_HANDLE);

    str = info.path;
    CHECK_ST(L->azihsm_part_open(&str, &g_part, (struct azihsm_api_rev){9, 0}),
             AZIHSM_STATUS_UNSUPPORTED_API_REVISION);
    OK(L->azihsm_part_open(&str, &g_part, info.api_rev_max));
    CHECK_ST(L->azihsm_sess_open(g_part, &k_creds, NULL, &s),
             AZIHSM_STATUS_PARTITION_NOT_PROVISIONED);
    OK(L->azihsm_part_init(g_part, &k_creds, NULL, NULL, &obk, &pota, NULL));

    /* Another handle on the device: init with other credentials is refused. */
    OK(L->azihsm_part_open(&str, &part2, info.api_rev_max));
    wrong.pin[0] ^= 1;
    CHECK_ST(L->azihsm_part_init(part2, &wrong, NULL, NULL, &obk, &pota, NULL),
             AZIHSM_STATUS_CREDENTIALS_NOT_ESTABLISHED);
    OK(L->azihsm_part_close(part2));

    CHECK_ST(L->azihsm_sess_open(g_part, &wrong, NULL, &s),
             AZIHSM_STATUS_CREDENTIALS_NOT_ESTABLISHED);
    CHECK_ST(L->azihsm_part_get_prop(g_part, &pp), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    CHECK(pp.len > 0 && pp.len <= sizeof(pubkey), "partition key needs %u bytes", pp.len);
    pp.val = pubkey;
    OK(L->azihsm_part_get_prop(g_part, &pp));

    s = open_session(g_part);
    OK(L->azihsm_session_get_prop(s, &sp));
    CHECK(rev.major == info.api_rev_max.major && rev.minor == info.api_rev_max.minor,
          "session revision %u.%u", rev.major, rev.minor);
    OK(L->azihsm_sess_close(s));
    CHECK_ST(L->azihsm_sess_close(s), AZIHSM_STATUS_INVALID_HANDLE);
}

/* ECDSA on a digest and on a message, verified locally and by the device. */
static void flow_ec_sign(int ci)
{
    azihsm_handle s = open_session(g_part), priv = 0, pub = 0;
    const EVP_MD *md = k_curves[ci].md();
    struct azihsm_algo ecdsa = {AZIHSM_ALGO_ID_ECDSA, NULL, 0};
    struct azihsm_algo ecdsa_md = {k_curves[ci].ecdsa_md, NULL, 0};
    static const char msg[] = "a message for the device to sign";
    uint8_t dg[64], sig[160];
    size_t dlen = 0;
    uint32_t siglen = 0, want = 2 * ((k_curves[ci].bits + 7) / 8);
    struct azihsm_buffer in, small;
    EVP_PKEY *pk = NULL;

    if (!OK(gen_ec(s, k_curves[ci].id, EC_SIGN, 0, &priv, &pub)))
        goto out;
    CHECK(key_u32(priv, AZIHSM_KEY_PROP_ID_CLASS) == AZIHSM_KEY_CLASS_PRIVATE &&
              key_u32(pub, AZIHSM_KEY_PROP_ID_CLASS) == AZIHSM_KEY_CLASS_PUBLIC &&
              key_u32(priv, AZIHSM_KEY_PROP_ID_EC_CURVE) == k_curves[ci].id &&
              key_u32(priv, AZIHSM_KEY_PROP_ID_BIT_LEN) == k_curves[ci].bits,
          "%s: class, curve or bit length", k_curves[ci].group);
    CHECK(key_bool(priv, AZIHSM_KEY_PROP_ID_SIGN) && !key_bool(priv, AZIHSM_KEY_PROP_ID_DERIVE) &&
              key_bool(priv, AZIHSM_KEY_PROP_ID_LOCAL) &&
              key_bool(priv, AZIHSM_KEY_PROP_ID_SENSITIVE) &&
              !key_bool(priv, AZIHSM_KEY_PROP_ID_EXTRACTABLE) &&
              !key_bool(priv, AZIHSM_KEY_PROP_ID_SESSION),
          "%s: usage or device-set flags", k_curves[ci].group);
    pk = pub_pkey(pub);
    if (pk == NULL)
        goto out;

    digest(md, msg, sizeof(msg), dg, &dlen);
    if (OK(sign2(&ecdsa, priv, dg, dlen, sig, &siglen))) {
        CHECK(siglen == want, "%s: signature %u bytes, want raw r||s of %u", k_curves[ci].group,
              siglen, want);
        CHECK(local_verify_ecdsa(pk, dg, dlen, sig, siglen), "%s: ECDSA does not verify",
              k_curves[ci].group);
        OK(dverify(&ecdsa, pub, dg, dlen, sig, siglen));
        sig[3] ^= 0x40;
        CHECK_ST(dverify(&ecdsa, pub, dg, dlen, sig, siglen), AZIHSM_STATUS_INVALID_SIGNATURE);
    }
    siglen = 0;
    if (OK(sign2(&ecdsa_md, priv, msg, sizeof(msg), sig, &siglen)))
        CHECK(local_verify_ecdsa(pk, dg, dlen, sig, siglen), "%s: ECDSA_SHA* does not verify",
              k_curves[ci].group);

    /* One byte short is still too small, and says how much is needed. */
    in = buf(dg, dlen);
    small = buf(sig, want - 1);
    CHECK_ST(L->azihsm_crypt_sign(&ecdsa, priv, &in, &small), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    CHECK(small.len == want, "BUFFER_TOO_SMALL len %u, want %u", small.len, want);
    /* Sign with the public half, verify with the private one: wrong handle type. */
    small = buf(sig, sizeof(sig));
    CHECK_ST(L->azihsm_crypt_sign(&ecdsa, pub, &in, &small), AZIHSM_STATUS_INVALID_HANDLE);
    CHECK_ST(dverify(&ecdsa, priv, dg, dlen, sig, want), AZIHSM_STATUS_INVALID_HANDLE);
    /* Streaming on a digest does not exist. */
    {
        azihsm_handle ctx = 0;
        CHECK_ST(L->azihsm_crypt_sign_init(&ecdsa, priv, &ctx),
                 AZIHSM_STATUS_UNSUPPORTED_ALGORITHM);
    }
    OK(L->azihsm_key_delete(priv));
    CHECK_ST(L->azihsm_key_delete(priv), AZIHSM_STATUS_INVALID_HANDLE);
    CHECK_ST(sign2(&ecdsa, priv, dg, dlen, sig, &siglen), AZIHSM_STATUS_INVALID_HANDLE);
    OK(L->azihsm_key_delete(pub));
out:
    EVP_PKEY_free(pk);
    OK(L->azihsm_sess_close(s));
}

/* An HMAC key on the device, compared with the same HMAC computed locally. */
static void check_hmac_key(azihsm_handle key, azihsm_key_kind kind, azihsm_algo_id algo_id,
                           const char *mdname, const uint8_t *want_key, size_t keylen,
                           const char *what)
{
    struct azihsm_algo algo = {algo_id, NULL, 0};
    static const char msg[] = "authenticate this";
    uint8_t mac[64], want[64];
    uint32_t maclen = 0;
    size_t wantlen = 0;

    CHECK(key_u32(key, AZIHSM_KEY_PROP_ID_KIND) == kind &&
              key_u32(key, AZIHSM_KEY_PROP_ID_CLASS) == AZIHSM_KEY_CLASS_SECRET &&
              key_u32(key, AZIHSM_KEY_PROP_ID_BIT_LEN) == keylen * 8,
          "%s: kind, class or bit length", what);
    if (!OK(sign2(&algo, key, msg, sizeof(msg), mac, &maclen)))
        return;
    local_hmac(mdname, want_key, keylen, msg, sizeof(msg), want, &wantlen);
    CHECK(maclen == wantlen && memcmp(mac, want, wantlen) == 0,
          "%s: the device's HMAC differs from the one computed locally", what);
    OK(dverify(&algo, key, msg, sizeof(msg), mac, maclen));
    mac[0] ^= 1;
    CHECK_ST(dverify(&algo, key, msg, sizeof(msg), mac, maclen), AZIHSM_STATUS_INVALID_SIGNATURE);
}

static azihsm_status derive_secret(azihsm_handle s, azihsm_algo_id id, void *params, uint32_t plen,
                                   azihsm_handle base, azihsm_key_kind kind, uint32_t bits,
                                   int use_id, azihsm_handle *out)
{
    struct azihsm_algo algo = {id, params, plen};
    struct plist p;

    pl_init(&p, AZIHSM_KEY_CLASS_SECRET, kind);
    pl_u32(&p, AZIHSM_KEY_PROP_ID_BIT_LEN, bits);
    pl_bool(&p, use_id, 1);
    if (use_id == AZIHSM_KEY_PROP_ID_SIGN)
        pl_bool(&p, AZIHSM_KEY_PROP_ID_VERIFY, 1);
    return L->azihsm_key_derive(s, &algo, base, &p.list, out);
}

/* ECDH → HKDF and ECDH → KBKDF, each giving an HMAC key, checked locally. */
static void flow_ec_agree(int ci)
{
    azihsm_handle s = open_session(g_part), priv = 0, pub = 0, secret = 0, hk = 0, kk = 0;
    EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, PROPQ, "EC", k_curves[ci].group);
    EVP_PKEY *devpub = NULL;
    uint32_t peer_len = 0, bits = k_curves[ci].bits;
    uint8_t *peer_der = spki_of(peer, &peer_len);
    struct azihsm_buffer peer_buf = buf(peer_der, peer_len);
    struct azihsm_algo_ecdh_params ep = {&peer_buf};
    static const uint8_t salt[] = "salt of the HKDF", info[] = "hsmbridge emulator test";
    static const uint8_t label[] = "kbkdf label", context[] = "kbkdf context";
    struct azihsm_buffer sb = buf(salt, sizeof(salt)), ib = buf(info, sizeof(info));
    struct azihsm_buffer lb = buf(label, sizeof(label)), cb = buf(context, sizeof(context));
    struct azihsm_algo_hkdf_params hp = {AZIHSM_ALGO_ID_HMAC_SHA256, &sb, &ib};
    struct azihsm_algo_kbkdf_counter_params kp = {AZIHSM_ALGO_ID_HMAC_SHA384, &lb, &cb};
    uint8_t z[66], hkey[32], kkey[48];
    size_t zlen = 0;

    if (!OK(gen_ec(s, k_curves[ci].id, EC_AGREE, 0, &priv, &pub)))
        goto out;
    CHECK(key_bool(priv, AZIHSM_KEY_PROP_ID_DERIVE) && !key_bool(priv, AZIHSM_KEY_PROP_ID_SIGN),
          "%s: key agreement usage", k_curves[ci].group);
    devpub = pub_pkey(pub);
    zlen = devpub ? local_ecdh(peer, devpub, z, sizeof(z)) : 0;
    if (!CHECK(zlen == (bits + 7) / 8, "local ECDH gave %zu bytes", zlen))
        goto out;

    /* The shared secret's BIT_LEN must be the curve's. */
    CHECK_ST(derive_secret(s, AZIHSM_ALGO_ID_ECDH, &ep, sizeof(ep), priv,
                           AZIHSM_KEY_KIND_SHARED_SECRET, bits + 8, AZIHSM_KEY_PROP_ID_DERIVE,
                           &secret),
             AZIHSM_STATUS_INVALID_ARGUMENT);
    if (!OK(derive_secret(s, AZIHSM_ALGO_ID_ECDH, &ep, sizeof(ep), priv,
                          AZIHSM_KEY_KIND_SHARED_SECRET, bits, AZIHSM_KEY_PROP_ID_DERIVE, &secret)))
        goto out;
    CHECK(key_u32(secret, AZIHSM_KEY_PROP_ID_KIND) == AZIHSM_KEY_KIND_SHARED_SECRET &&
              key_u32(secret, AZIHSM_KEY_PROP_ID_BIT_LEN) == bits,
          "shared secret kind or bit length");
    {
        uint8_t *x = NULL;
        uint32_t xl = 0;
        CHECK_ST(key_prop(secret, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &x, &xl),
                 AZIHSM_STATUS_PROPERTY_NOT_PRESENT);
    }

    if (OK(derive_secret(s, AZIHSM_ALGO_ID_HKDF_DERIVE, &hp, sizeof(hp), secret,
                         AZIHSM_KEY_KIND_HMAC_SHA256, 256, AZIHSM_KEY_PROP_ID_SIGN, &hk)) &&
        CHECK(local_kdf("HKDF", "SHA2-256", z, zlen, salt, sizeof(salt), info, sizeof(info), hkey,
                        sizeof(hkey)),
              "local HKDF"))
        check_hmac_key(hk, AZIHSM_KEY_KIND_HMAC_SHA256, AZIHSM_ALGO_ID_HMAC_SHA256, "SHA2-256",
                       hkey, sizeof(hkey), "ECDH -> HKDF-SHA256 -> HMAC-SHA256");
    if (OK(derive_secret(s, AZIHSM_ALGO_ID_KBKDF_COUNTER_DERIVE, &kp, sizeof(kp), secret,
                         AZIHSM_KEY_KIND_HMAC_SHA384, 384, AZIHSM_KEY_PROP_ID_SIGN, &kk)) &&
        CHECK(local_kdf("KBKDF", "SHA2-384", z, zlen, label, sizeof(label), context,
                        sizeof(context), kkey, sizeof(kkey)),
              "local KBKDF"))
        check_hmac_key(kk, AZIHSM_KEY_KIND_HMAC_SHA384, AZIHSM_ALGO_ID_HMAC_SHA384, "SHA2-384",
                       kkey, sizeof(kkey), "ECDH -> KBKDF-HMAC-SHA384 -> HMAC-SHA384");

    /* The HMAC key's kind must match the KDF's hash. */
    {
        azihsm_handle bad = 0;
        CHECK_ST(derive_secret(s, AZIHSM_ALGO_ID_HKDF_DERIVE, &hp, sizeof(hp), secret,
                               AZIHSM_KEY_KIND_HMAC_SHA384, 384, AZIHSM_KEY_PROP_ID_SIGN, &bad),
                 AZIHSM_STATUS_INVALID_KEY_PROPS);
        /* The derived HMAC key cannot be derived from. */
        CHECK_ST(derive_secret(s, AZIHSM_ALGO_ID_HKDF_DERIVE, &hp, sizeof(hp), hk,
                               AZIHSM_KEY_KIND_HMAC_SHA256, 256, AZIHSM_KEY_PROP_ID_SIGN, &bad),
                 AZIHSM_STATUS_INVALID_HANDLE);
    }

    /* The HMAC key's masked blob reloads in another session and gives the same MAC. */
    {
        uint8_t *blob = NULL;
        uint32_t blen = 0;
        azihsm_handle s2 = open_session(g_part), hk2 = 0;
        struct azihsm_buffer bb;

        if (OK(key_prop(hk, AZIHSM_KEY_PROP_ID_MASKED_KEY, &blob, &blen))) {
            bb = buf(blob, blen);
            CHECK_ST(L->azihsm_key_unmask(s2, AZIHSM_KEY_KIND_HMAC_SHA384, &bb, &hk2),
                     AZIHSM_STATUS_INVALID_KEY);
            if (OK(L->azihsm_key_unmask(s2, AZIHSM_KEY_KIND_HMAC_SHA256, &bb, &hk2)))
                check_hmac_key(hk2, AZIHSM_KEY_KIND_HMAC_SHA256, AZIHSM_ALGO_ID_HMAC_SHA256,
                               "SHA2-256", hkey, sizeof(hkey), "HMAC key after unmasking");
        }
        free(blob);
        OK(L->azihsm_sess_close(s2));
    }
out:
    OPENSSL_free(peer_der);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(devpub);
    OK(L->azihsm_sess_close(s));
}

/* A non-session key's blob reloads in a second session; damaged blobs do not. */
static void flow_masked_reload(void)
{
    azihsm_handle s = open_session(g_part), s2 = 0, priv = 0, pub = 0, p2 = 0, q2 = 0;
    struct azihsm_algo ecdsa = {AZIHSM_ALGO_ID_ECDSA, NULL, 0};
    uint8_t *blob = NULL, *blob_pub = NULL, *spki = NULL, *spki2 = NULL, dg[64], sig[96];
    uint32_t blen = 0, bplen = 0, slen = 0, slen2 = 0, siglen = 0;
    size_t dlen = 0;
    struct azihsm_buffer bb;
    struct azihsm_key_prop small = {AZIHSM_KEY_PROP_ID_MASKED_KEY, sig, 10};
    EVP_PKEY *pk = NULL;

    if (!OK(gen_ec(s, AZIHSM_ECC_CURVE_P384, EC_SIGN, 0, &priv, &pub)))
        goto out;
    CHECK_ST(L->azihsm_key_get_prop(priv, &small), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    if (!OK(key_prop(priv, AZIHSM_KEY_PROP_ID_MASKED_KEY, &blob, &blen)) ||
        !OK(key_prop(pub, AZIHSM_KEY_PROP_ID_MASKED_KEY, &blob_pub, &bplen)) ||
        !OK(key_prop(pub, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &spki, &slen)))
        goto out;
    CHECK(small.len == blen, "BUFFER_TOO_SMALL len %u, blob is %u", small.len, blen);
    /* The layout README.md describes: "AZEM", version 1, kind, class. */
    CHECK(blen > 88 && memcmp(blob, "AZEM", 4) == 0 && blob[4] == 1 &&
              blob[5] == AZIHSM_KEY_KIND_ECC && blob[6] == AZIHSM_KEY_CLASS_PRIVATE,
          "blob header");
    CHECK(bplen == blen && memcmp(blob, blob_pub, blen) == 0,
          "the two halves of a pair report different blobs");
    pk = pub_pkey(pub);
    OK(L->azihsm_sess_close(s));
    s = 0;

    s2 = open_session(g_part);
    bb = buf(blob, blen);
    CHECK_ST(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_RSA, &bb, &p2, &q2),
             AZIHSM_STATUS_INVALID_KEY);
    CHECK_ST(L->azihsm_key_unmask(s2, AZIHSM_KEY_KIND_ECC, &bb, &p2),
             AZIHSM_STATUS_UNSUPPORTED_KEY_KIND);
    if (!OK(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_ECC, &bb, &p2, &q2)))
        goto out;
    if (OK(key_prop(q2, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &spki2, &slen2)))
        CHECK(slen2 == slen && memcmp(spki, spki2, slen) == 0, "the unmasked public key differs");
    CHECK(key_bool(p2, AZIHSM_KEY_PROP_ID_SIGN) && key_bool(q2, AZIHSM_KEY_PROP_ID_VERIFY) &&
              key_bool(p2, AZIHSM_KEY_PROP_ID_LOCAL),
          "usage after unmasking");
    digest(EVP_sha384(), "reloaded", 8, dg, &dlen);
    if (OK(sign2(&ecdsa, p2, dg, dlen, sig, &siglen)) && pk != NULL)
        CHECK(local_verify_ecdsa(pk, dg, dlen, sig, siglen),
              "signature of the reloaded key does not verify");

    /* Any altered byte, and any truncation, is refused. */
    {
        const uint32_t at[] = {0, 4, 5, 7, 14, 20, 40, 55, 70, blen / 2, blen - 1};

        for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
            blob[at[i]] ^= 0x01;
            if (!CHECK_ST(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_ECC, &bb, &p2, &q2),
                          AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED))
                fprintf(stderr, "  (byte %u of %u altered)\n", at[i], blen);
            blob[at[i]] ^= 0x01;
        }
        bb.len = blen - 1;
        CHECK_ST(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_ECC, &bb, &p2, &q2),
                 AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED);
        bb.len = 20;
        CHECK_ST(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_ECC, &bb, &p2, &q2),
                 AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED);
    }
out:
    EVP_PKEY_free(pk);
    free(blob);
    free(blob_pub);
    free(spki);
    free(spki2);
    if (s != 0)
        OK(L->azihsm_sess_close(s));
    if (s2 != 0)
        OK(L->azihsm_sess_close(s2));
}

/* Session keys: refused in another session and after their session closed. */
static void flow_session_keys(int ci)
{
    azihsm_handle s1 = open_session(g_part), s2 = open_session(g_part), s3 = 0;
    azihsm_handle priv = 0, pub = 0, p = 0, q = 0, agree = 0, apub = 0, secret = 0;
    struct azihsm_algo ecdsa = {AZIHSM_ALGO_ID_ECDSA, NULL, 0};
    uint8_t *blob = NULL, dg[64], sig[160];
    uint32_t blen = 0, siglen = 0;
    size_t dlen = 0;
    struct azihsm_buffer bb;

    if (!OK(gen_ec(s1, k_curves[ci].id, EC_SIGN, 1, &priv, &pub)) ||
        !OK(key_prop(priv, AZIHSM_KEY_PROP_ID_MASKED_KEY, &blob, &blen)))
        goto out;
    CHECK(key_bool(priv, AZIHSM_KEY_PROP_ID_SESSION) && key_bool(pub, AZIHSM_KEY_PROP_ID_SESSION),
          "%s: SESSION property", k_curves[ci].group);
    bb = buf(blob, blen);
    CHECK_ST(L->azihsm_key_unmask_pair(s2, AZIHSM_KEY_KIND_ECC, &bb, &p, &q),
             AZIHSM_STATUS_INVALID_SESSION);
    if (OK(L->azihsm_key_unmask_pair(s1, AZIHSM_KEY_KIND_ECC, &bb, &p, &q))) {
        OK(L->azihsm_key_delete(p));
        OK(L->azihsm_key_delete(q));
    }

    /* A key derived from a session key is a session key; a base key of
     * another session is refused. */
    if (OK(gen_ec(s1, k_curves[ci].id, EC_AGREE, 1, &agree, &apub))) {
        EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, PROPQ, "EC", k_curves[ci].group);
        uint32_t plen = 0;
        uint8_t *pder = spki_of(peer, &plen);
        struct azihsm_buffer pb = buf(pder, plen);
        struct azihsm_algo_ecdh_params ep = {&pb};

        CHECK_ST(derive_secret(s2, AZIHSM_ALGO_ID_ECDH, &ep, sizeof(ep), agree,
                               AZIHSM_KEY_KIND_SHARED_SECRET, k_curves[ci].bits,
                               AZIHSM_KEY_PROP_ID_DERIVE, &secret),
                 AZIHSM_STATUS_INVALID_SESSION);
        if (OK(derive_secret(s1, AZIHSM_ALGO_ID_ECDH, &ep, sizeof(ep), agree,
                             AZIHSM_KEY_KIND_SHARED_SECRET, k_curves[ci].bits,
                             AZIHSM_KEY_PROP_ID_DERIVE, &secret)))
            CHECK(key_bool(secret, AZIHSM_KEY_PROP_ID_SESSION),
                  "a secret derived from a session key is not a session key");
        OPENSSL_free(pder);
        EVP_PKEY_free(peer);
    }

    OK(L->azihsm_sess_close(s1));
    s1 = 0;
    digest(k_curves[ci].md(), "late", 4, dg, &dlen);
    CHECK_ST(sign2(&ecdsa, priv, dg, dlen, sig, &siglen), AZIHSM_STATUS_INVALID_HANDLE);
    {
        uint32_t v = 0;
        struct azihsm_key_prop kp = {AZIHSM_KEY_PROP_ID_KIND, &v, sizeof(v)};
        CHECK_ST(L->azihsm_key_get_prop(secret, &kp), AZIHSM_STATUS_INVALID_HANDLE);
    }
    s3 = open_session(g_part);
    CHECK_ST(L->azihsm_key_unmask_pair(s3, AZIHSM_KEY_KIND_ECC, &bb, &p, &q),
             AZIHSM_STATUS_INVALID_SESSION);
out:
    free(blob);
    if (s1 != 0)
        OK(L->azihsm_sess_close(s1));
    OK(L->azihsm_sess_close(s2));
    if (s3 != 0)
        OK(L->azihsm_sess_close(s3));
}

static const struct azihsm_algo_rsa_pkcs_pss_params k_pss = {AZIHSM_ALGO_ID_SHA256,
                                                             AZIHSM_MGF1_ID_SHA256, 32};

/* PSS on a digest, PSS-SHA256 on a message, streaming PKCS#1 v1.5 SHA-256. */
static void rsa_sign_checks(azihsm_handle priv, azihsm_handle pub, EVP_PKEY *key, int bits)
{
    struct azihsm_algo pss = {AZIHSM_ALGO_ID_RSA_PKCS_PSS, (void *)&k_pss, sizeof(k_pss)};
    struct azihsm_algo pss256 = {AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA256, (void *)&k_pss, sizeof(k_pss)};
    struct azihsm_algo pkcs = {AZIHSM_ALGO_ID_RSA_PKCS_SHA256, NULL, 0};
    struct azihsm_algo pkcs_raw = {AZIHSM_ALGO_ID_RSA_PKCS, NULL, 0};
    static const char msg[] = "RSA, imported through the unwrapping key";
    uint8_t dg[32], sig[512], big[3000];
    uint32_t siglen = 0, k = (uint32_t)bits / 8;
    size_t dlen = 0;
    azihsm_handle ctx = 0;
    struct azihsm_buffer out;

    digest(EVP_sha256(), msg, sizeof(msg), dg, &dlen);
    if (OK(sign2(&pss, priv, dg, dlen, sig, &siglen))) {
        CHECK(siglen == k, "RSA-%d: signature %u bytes", bits, siglen);
        CHECK(local_verify_rsa(key, RSA_PKCS1_PSS_PADDING, EVP_sha256(), 32, dg, dlen, sig, siglen),
              "RSA-%d: PSS does not verify", bits);
        OK(dverify(&pss, pub, dg, dlen, sig, siglen));
    }
    if (OK(sign2(&pss256, priv, msg, sizeof(msg), sig, &siglen)))
        CHECK(local_verify_rsa(key, RSA_PKCS1_PSS_PADDING, EVP_sha256(), 32, dg, dlen, sig, siglen),
              "RSA-%d: PSS-SHA256 does not verify", bits);
    CHECK_ST(sign2(&pkcs_raw, priv, dg, dlen, sig, &siglen), AZIHSM_STATUS_UNSUPPORTED_ALGORITHM);

    /* Streaming: three updates (one empty), finish asked twice. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    if (!OK(L->azihsm_crypt_sign_init(&pkcs, priv, &ctx)))
        return;
    {
        struct azihsm_buffer a = buf(big, 1000), e = {NULL, 0}, b = buf(big + 1000, 2000);

        OK(L->azihsm_crypt_sign_update(ctx, &a));
        OK(L->azihsm_crypt_sign_update(ctx, &e));
        OK(L->azihsm_crypt_sign_update(ctx, &b));
    }
    out = (struct azihsm_buffer){NULL, 0};
    CHECK_ST(L->azihsm_crypt_sign_finish(ctx, &out), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    CHECK(out.len == k, "streaming finish asks for %u bytes, want %u", out.len, k);
    out.ptr = sig;
    if (OK(L->azihsm_crypt_sign_finish(ctx, &out))) {
        digest(EVP_sha256(), big, sizeof(big), dg, &dlen);
        CHECK(local_verify_rsa(key, RSA_PKCS1_PADDING, EVP_sha256(), 0, dg, dlen, sig, out.len),
              "RSA-%d: streamed PKCS#1 v1.5 does not verify", bits);
        OK(dverify(&pkcs, pub, big, sizeof(big), sig, out.len));
    }
    {
        struct azihsm_buffer a = buf(big, 10);
        CHECK_ST(L->azihsm_crypt_sign_update(ctx, &a), AZIHSM_STATUS_INVALID_CONTEXT_STATE);
        CHECK_ST(L->azihsm_crypt_sign_finish(ctx, &out), AZIHSM_STATUS_INVALID_CONTEXT_STATE);
    }
    OK(L->azihsm_free_ctx_handle(ctx));
    CHECK_ST(L->azihsm_free_ctx_handle(ctx), AZIHSM_STATUS_INVALID_HANDLE);
}

/* OAEP (with a label) and PKCS#1 decryption of data encrypted locally. */
static void rsa_decrypt_checks(azihsm_handle priv, azihsm_handle pub, EVP_PKEY *key, int bits)
{
    static const uint8_t secret[] = "a premaster secret, say", label[] = "oaep label";
    struct azihsm_buffer lb = buf(label, sizeof(label));
    struct azihsm_algo_rsa_pkcs_oaep_params op = {AZIHSM_ALGO_ID_SHA256, AZIHSM_MGF1_ID_SHA256, &lb};
    struct azihsm_algo oaep = {AZIHSM_ALGO_ID_RSA_PKCS_OAEP, &op, sizeof(op)};
    struct azihsm_algo pkcs = {AZIHSM_ALGO_ID_RSA_PKCS, NULL, 0};
    uint8_t ct[512], pt[512];
    size_t ctlen;
    uint32_t k = (uint32_t)bits / 8;
    struct azihsm_buffer in, out;

    ctlen = local_rsa_encrypt(key, EVP_sha256(), label, sizeof(label), secret, sizeof(secret), ct);
    in = buf(ct, ctlen);
    out = (struct azihsm_buffer){NULL, 0};
    CHECK_ST(L->azihsm_crypt_decrypt(&oaep, priv, &in, &out), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    CHECK(out.len == k, "decrypt asks for %u bytes, want the modulus size %u", out.len, k);
    out = buf(pt, sizeof(pt));
    if (OK(L->azihsm_crypt_decrypt(&oaep, priv, &in, &out)))
        CHECK(out.len == sizeof(secret) && memcmp(pt, secret, out.len) == 0,
              "RSA-%d: OAEP plaintext differs", bits);
    /* The wrong label, and a damaged ciphertext: INVALID_ARGUMENT. */
    lb.len--;
    out = buf(pt, sizeof(pt));
    CHECK_ST(L->azihsm_crypt_decrypt(&oaep, priv, &in, &out), AZIHSM_STATUS_INVALID_ARGUMENT);
    lb.len++;

    ctlen = local_rsa_encrypt(key, NULL, NULL, 0, secret, sizeof(secret), ct);
    in = buf(ct, ctlen);
    out = buf(pt, sizeof(pt));
    if (OK(L->azihsm_crypt_decrypt(&pkcs, priv, &in, &out)))
        CHECK(out.len == sizeof(secret) && memcmp(pt, secret, out.len) == 0,
              "RSA-%d: PKCS#1 plaintext differs", bits);
    in.len--;
    out = buf(pt, sizeof(pt));
    CHECK_ST(L->azihsm_crypt_decrypt(&pkcs, priv, &in, &out), AZIHSM_STATUS_INVALID_ARGUMENT);

    /* The device encrypts with the public half; we decrypt locally. */
    in = buf(secret, sizeof(secret));
    out = (struct azihsm_buffer){NULL, 0};
    op.label = NULL;
    CHECK_ST(L->azihsm_crypt_encrypt(&oaep, pub, &in, &out), AZIHSM_STATUS_BUFFER_TOO_SMALL);
    out = buf(ct, sizeof(ct));
    if (OK(L->azihsm_crypt_encrypt(&oaep, pub, &in, &out))) {
        size_t n = local_rsa_oaep_decrypt(key, EVP_sha256(), ct, out.len, pt);
        CHECK(n == sizeof(secret) && memcmp(pt, secret, n) == 0,
              "RSA-%d: the device's OAEP ciphertext does not decrypt locally", bits);
    }
}

/*
 * The RSA keys to import, by size: read from $EMU_TEST_RSA_KEYS/rsa-<bits>.der
 * (PKCS#8 DER) when that is set, else generated here. emulator_test.go
 * makes them in Go: generating them under valgrind takes minutes.
 */
static const int k_rsa_bits[] = {2048, 3072, 4096};
static EVP_PKEY *g_rsa[3];

static EVP_PKEY *rsa_key(int i)
{
    const char *dir = getenv("EMU_TEST_RSA_KEYS");
    char path[4200];
    uint8_t der[4096];
    size_t n;
    FILE *f;

    if (g_rsa[i] != NULL || dir == NULL || *dir == '\0') {
        if (g_rsa[i] == NULL)
            g_rsa[i] = EVP_PKEY_Q_keygen(NULL, PROPQ, "RSA", (size_t)k_rsa_bits[i]);
        return g_rsa[i];
    }
    snprintf(path, sizeof(path), "%s/rsa-%d.der", dir, k_rsa_bits[i]);
    f = fopen(path, "rb");
    if (CHECK(f != NULL, "cannot open %s", path)) {
        const unsigned char *p = der;

        n = fread(der, 1, sizeof(der), f);
        fclose(f);
        g_rsa[i] = d2i_AutoPrivateKey_ex(NULL, &p, (long)n, NULL, PROPQ);
        CHECK(g_rsa[i] != NULL && EVP_PKEY_get_bits(g_rsa[i]) == k_rsa_bits[i],
              "%s is not an RSA-%d PKCS#8 key", path, k_rsa_bits[i]);
    }
    return g_rsa[i];
}

/* A session with an unwrapping key: imported keys go into its session. */
struct unwrapper {
    azihsm_handle s, priv, pub;
    EVP_PKEY *wrapping; /* the public half, to wrap keys for import */
};

static int unwrapper_open(struct unwrapper *u)
{
    memset(u, 0, sizeof(*u));
    u->s = open_session(g_part);
    if (!OK(gen_unwrapping_key(u->s, &u->priv, &u->pub)))
        return 0;
    CHECK(key_bool(u->priv, AZIHSM_KEY_PROP_ID_UNWRAP) &&
              key_bool(u->pub, AZIHSM_KEY_PROP_ID_WRAP) &&
              !key_bool(u->priv, AZIHSM_KEY_PROP_ID_DECRYPT) &&
              key_u32(u->priv, AZIHSM_KEY_PROP_ID_BIT_LEN) == 2048,
          "unwrapping key properties");
    u->wrapping = pub_pkey(u->pub);
    return u->wrapping != NULL;
}

static void unwrapper_close(struct unwrapper *u)
{
    EVP_PKEY_free(u->wrapping);
    OK(L->azihsm_sess_close(u->s));
}

/* RSA 2048/3072/4096 imported for signing and for encipherment. */
static void flow_rsa(const struct unwrapper *u)
{
    azihsm_handle up = u->priv;
    EVP_PKEY *wrapping = u->wrapping;

    for (size_t i = 0; i < sizeof(k_rsa_bits) / sizeof(k_rsa_bits[0]); i++) {
        int bits = k_rsa_bits[i];
        EVP_PKEY *key = rsa_key((int)i);
        azihsm_handle sp = 0, spub = 0, ep = 0, epub = 0;
        uint32_t want_len = 0;
        uint8_t *want, *got = NULL;
        uint32_t got_len = 0;

        if (key == NULL)
            continue;
        want = spki_of(key, &want_len);
        if (OK(import_rsa(up, wrapping, key, 1, &sp, &spub))) {
            if (OK(key_prop(spub, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &got, &got_len)))
                CHECK(got_len == want_len && memcmp(got, want, got_len) == 0,
                      "RSA-%d: the imported public key differs", bits);
            CHECK(key_u32(sp, AZIHSM_KEY_PROP_ID_BIT_LEN) == (uint32_t)bits &&
                      !key_bool(sp, AZIHSM_KEY_PROP_ID_LOCAL),
                  "RSA-%d: bit length or LOCAL", bits);
            rsa_sign_checks(sp, spub, key, bits);
        }
        if (OK(import_rsa(up, wrapping, key, 0, &ep, &epub)))
            rsa_decrypt_checks(ep, epub, key, bits);
        free(got);
        OPENSSL_free(want);
        OK(L->azihsm_key_delete(sp));
        OK(L->azihsm_key_delete(spub));
        OK(L->azihsm_key_delete(ep));
        OK(L->azihsm_key_delete(epub));
    }

    /* A damaged wrapped key, and a key of another size than BIT_LEN says. */
    {
        EVP_PKEY *key = rsa_key(0);
        struct azihsm_algo_rsa_pkcs_oaep_params oaep = {AZIHSM_ALGO_ID_SHA256,
                                                        AZIHSM_MGF1_ID_SHA256, NULL};
        struct azihsm_algo_rsa_aes_key_wrap_params kw = {256, &oaep};
        struct azihsm_algo algo = {AZIHSM_ALGO_ID_RSA_AES_KEY_WRAP, &kw, sizeof(kw)};
        size_t wlen = 0;
        uint8_t *w = wrap_for_import(wrapping, key, &wlen);
        struct azihsm_buffer in = buf(w, wlen);
        struct plist pv, pb;
        azihsm_handle a = 0, b = 0;

        pl_init(&pv, AZIHSM_KEY_CLASS_PRIVATE, AZIHSM_KEY_KIND_RSA);
        pl_init(&pb, AZIHSM_KEY_CLASS_PUBLIC, AZIHSM_KEY_KIND_RSA);
        pl_u32(&pv, AZIHSM_KEY_PROP_ID_BIT_LEN, 3072);
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_SIGN, 1);
        CHECK_ST(L->azihsm_key_unwrap_pair(&algo, up, &in, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_INVALID_KEY_SIZE);
        pv.u32[2] = 2048;
        w[wlen - 3] ^= 1;
        CHECK_ST(L->azihsm_key_unwrap_pair(&algo, up, &in, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_INVALID_ARGUMENT);
        free(w);
    }
}

/* Each usage a key was not given is refused with UNSUPPORTED_KEY_OPERATION. */
static void flow_usage(const struct unwrapper *u)
{
    azihsm_handle s = open_session(g_part), es = 0, esp = 0, ea = 0, eap = 0, up = u->priv;
    azihsm_handle rs = 0, rsp = 0, re = 0, rep = 0;
    struct azihsm_algo ecdsa = {AZIHSM_ALGO_ID_ECDSA, NULL, 0};
    struct azihsm_algo pss = {AZIHSM_ALGO_ID_RSA_PKCS_PSS, (void *)&k_pss, sizeof(k_pss)};
    struct azihsm_algo pkcs = {AZIHSM_ALGO_ID_RSA_PKCS, NULL, 0};
    uint8_t dg[32] = {1, 2, 3}, sig[512], data[256];
    uint32_t siglen = 0;
    struct azihsm_buffer in, out;
    EVP_PKEY *wrapping = u->wrapping, *key = rsa_key(0);
    const azihsm_status no = AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION;

    memset(data, 0x5a, sizeof(data));
    if (!OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &es, &esp)) ||
        !OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_AGREE, 0, &ea, &eap)) ||
        key == NULL)
        goto out;
    if (!OK(import_rsa(up, wrapping, key, 1, &rs, &rsp)) ||
        !OK(import_rsa(up, wrapping, key, 0, &re, &rep)))
        goto out;

    /* ECC: a key-agreement key does not sign; a signing key does not derive. */
    CHECK_ST(sign2(&ecdsa, ea, dg, sizeof(dg), sig, &siglen), no);
    CHECK_ST(dverify(&ecdsa, eap, dg, sizeof(dg), sig, 64), no);
    {
        uint32_t plen = 0;
        uint8_t *pder = NULL;
        azihsm_handle x = 0;
        struct azihsm_buffer pb;
        struct azihsm_algo_ecdh_params ep = {&pb};

        if (OK(key_prop(eap, AZIHSM_KEY_PROP_ID_PUB_KEY_INFO, &pder, &plen))) {
            pb = buf(pder, plen);
            CHECK_ST(derive_secret(s, AZIHSM_ALGO_ID_ECDH, &ep, sizeof(ep), es,
                                   AZIHSM_KEY_KIND_SHARED_SECRET, 256, AZIHSM_KEY_PROP_ID_DERIVE,
                                   &x),
                     no);
        }
        free(pder);
    }
    /* RSA: a signing key does not decrypt or encrypt; an encipherment key
     * does not sign or verify; neither unwraps; the unwrapping key signs
     * and decrypts nothing. */
    in = buf(data, 256);
    out = buf(sig, sizeof(sig));
    CHECK_ST(L->azihsm_crypt_decrypt(&pkcs, rs, &in, &out), no);
    in = buf(data, 16);
    CHECK_ST(L->azihsm_crypt_encrypt(&pkcs, rsp, &in, &out), no);
    CHECK_ST(sign2(&pss, re, dg, sizeof(dg), sig, &siglen), no);
    CHECK_ST(dverify(&pss, rep, dg, sizeof(dg), sig, 256), no);
    {
        azihsm_handle ctx = 0;
        struct azihsm_algo pkcs256 = {AZIHSM_ALGO_ID_RSA_PKCS_SHA256, NULL, 0};
        CHECK_ST(L->azihsm_crypt_sign_init(&pkcs256, re, &ctx), no);
    }
    CHECK_ST(sign2(&pss, up, dg, sizeof(dg), sig, &siglen), no);
    in = buf(data, 256);
    CHECK_ST(L->azihsm_crypt_decrypt(&pkcs, up, &in, &out), no);
    {
        azihsm_handle a = 0, b = 0;

        CHECK_ST(import_rsa(rs, wrapping, key, 1, &a, &b), no);
        CHECK_ST(import_rsa(re, wrapping, key, 1, &a, &b), no);
    }

    /* Property lists: two families, none, a device-set flag, no class. */
    {
        struct azihsm_algo gen = {AZIHSM_ALGO_ID_EC_KEY_PAIR_GEN, NULL, 0};
        struct plist pv, pb;
        azihsm_handle a = 0, b = 0;

        pl_init(&pv, AZIHSM_KEY_CLASS_PRIVATE, AZIHSM_KEY_KIND_ECC);
        pl_init(&pb, AZIHSM_KEY_CLASS_PUBLIC, AZIHSM_KEY_KIND_ECC);
        pl_u32(&pv, AZIHSM_KEY_PROP_ID_EC_CURVE, AZIHSM_ECC_CURVE_P256);
        CHECK_ST(L->azihsm_key_gen_pair(s, &gen, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_INVALID_KEY_PROPS);
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_SIGN, 1);
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_DERIVE, 1);
        CHECK_ST(L->azihsm_key_gen_pair(s, &gen, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_INVALID_KEY_PROPS);
        pv.list.count--;
        pl_bool(&pv, AZIHSM_KEY_PROP_ID_EXTRACTABLE, 1);
        CHECK_ST(L->azihsm_key_gen_pair(s, &gen, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_INVALID_ARGUMENT);
        pv.list.props++;
        pv.list.count -= 2;
        CHECK_ST(L->azihsm_key_gen_pair(s, &gen, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_KEY_CLASS_NOT_SPECIFIED);
        gen.id = AZIHSM_ALGO_ID_AES_KEY_GEN;
        CHECK_ST(L->azihsm_key_gen_pair(s, &gen, &pv.list, &pb.list, &a, &b),
                 AZIHSM_STATUS_UNSUPPORTED_ALGORITHM);
    }
    /* A session handle is not a key. */
    CHECK_ST(sign2(&ecdsa, s, dg, sizeof(dg), sig, &siglen), AZIHSM_STATUS_INVALID_HANDLE);
out:
    /* The RSA keys are in the unwrapping key's session. */
    L->azihsm_key_delete(rs);
    L->azihsm_key_delete(rsp);
    L->azihsm_key_delete(re);
    L->azihsm_key_delete(rep);
    OK(L->azihsm_sess_close(s));
}

/* A blob of another device (state directory) is refused, both ways. */
static void flow_other_device(const char *libpath, const char *workdir)
{
    struct lib other;
    struct lib *mine = L;
    char copy[4200], dir[4200];
    const char *saved = getenv("AZIHSM_EMU_STATE_DIR");
    char *saved_dir = saved ? strdup(saved) : NULL;
    azihsm_handle s = open_session(g_part), priv = 0, pub = 0, part = 0, os = 0, a = 0, b = 0;
    uint8_t *blob = NULL, *oblob = NULL;
    uint32_t blen = 0, oblen = 0, np = 1, ns = 1, nk = 1, nc = 1;
    struct azihsm_buffer bb;
    FILE *in = NULL, *out = NULL;
    char chunk[65536];
    size_t n;

    if (!OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &priv, &pub)) ||
        !OK(key_prop(priv, AZIHSM_KEY_PROP_ID_MASKED_KEY, &blob, &blen)))
        goto out;

    /* A second copy of the library is a second device: its own statics. */
    snprintf(copy, sizeof(copy), "%s/libazihsm_api_native_copy.so", workdir);
    snprintf(dir, sizeof(dir), "%s/other-device", workdir);
    in = fopen(libpath, "rb");
    out = fopen(copy, "wb");
    if (!CHECK(in != NULL && out != NULL, "copying the library to %s", copy))
        goto out;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        fwrite(chunk, 1, n, out);
    fclose(in);
    fclose(out);
    in = out = NULL;
    if (!CHECK(lib_open(&other, copy), "loading a second copy of the library"))
        goto out;
    setenv("AZIHSM_EMU_STATE_DIR", dir, 1);
    L = &other;
    {
        struct azihsm_str str = {(azihsm_char *)g_path, (uint32_t)strlen(g_path) + 1};
        struct azihsm_owner_backup_key_config obk = {AZIHSM_OWNER_BACKUP_KEY_SOURCE_TPM, NULL,
                                                     NULL};
        struct azihsm_pota_endorsement pota = {AZIHSM_POTA_ENDORSEMENT_SOURCE_TPM, NULL};

        if (OK(L->azihsm_part_open(&str, &part, (struct azihsm_api_rev){1, 0})) &&
            OK(L->azihsm_part_init(part, &k_creds, NULL, NULL, &obk, &pota, NULL)) &&
            OK(L->azihsm_sess_open(part, &k_creds, NULL, &os))) {
            bb = buf(blob, blen);
            CHECK_ST(L->azihsm_key_unmask_pair(os, AZIHSM_KEY_KIND_ECC, &bb, &a, &b),
                     AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED);
            if (OK(gen_ec(os, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &a, &b)))
                OK(key_prop(a, AZIHSM_KEY_PROP_ID_MASKED_KEY, &oblob, &oblen));
        }
        if (part != 0)
            OK(L->azihsm_part_close(part)); /* closes the session too */
        OK(L->azihsm_emu_open_handles(&np, &ns, &nk, &nc));
        CHECK(np + ns + nk + nc == 0, "second device: handles left open");
    }
    L = mine;
    dlclose(other.dl);
    unlink(copy);
    if (saved_dir != NULL)
        setenv("AZIHSM_EMU_STATE_DIR", saved_dir, 1);
    if (oblob != NULL) {
        bb = buf(oblob, oblen);
        CHECK_ST(L->azihsm_key_unmask_pair(s, AZIHSM_KEY_KIND_ECC, &bb, &a, &b),
                 AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED);
    }
out:
    L = mine;
    if (in != NULL)
        fclose(in);
    if (out != NULL)
        fclose(out);
    free(saved_dir);
    free(blob);
    free(oblob);
    OK(L->azihsm_sess_close(s));
}

/* Writes <state dir>/faults in one go (a new inode, so it is read again). */
static int write_faults_file(const char *dir, const char *text)
{
    char tmp[4096], path[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/.faults.tmp", dir);
    snprintf(path, sizeof(path), "%s/faults", dir);
    f = fopen(tmp, "w");
    if (f == NULL)
        return 0;
    fputs(text, f);
    fclose(f);
    return rename(tmp, path) == 0;
}

static azihsm_status sign_once(azihsm_handle key)
{
    struct azihsm_algo ecdsa = {AZIHSM_ALGO_ID_ECDSA, NULL, 0};
    uint8_t dg[32] = {9}, sig[64];
    uint32_t siglen = 0;

    return sign2(&ecdsa, key, dg, sizeof(dg), sig, &siglen);
}

/* Every fault kind, through the control call and through the faults file. */
static void flow_faults(const char *state_dir)
{
    azihsm_handle s = open_session(g_part), other = open_session(g_part), priv = 0, pub = 0;
    azihsm_handle opriv = 0, opub = 0, ctx = 0;
    uint32_t fired0 = 0, fired = 0, nc = 0;
    struct azihsm_algo ecdsa256 = {AZIHSM_ALGO_ID_ECDSA_SHA256, NULL, 0};

    CHECK_ST(L->azihsm_emu_inject_fault("no_such_fault", 1), AZIHSM_STATUS_INVALID_ARGUMENT);
    CHECK_ST(L->azihsm_emu_inject_fault("io_aborted", -2), AZIHSM_STATUS_INVALID_ARGUMENT);
    CHECK_ST(L->azihsm_emu_inject_fault(NULL, 1), AZIHSM_STATUS_INVALID_ARGUMENT);
    OK(L->azihsm_emu_faults_fired(&fired0));
    if (!OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &priv, &pub)))
        goto out;

    /* Transient faults: the call fails once, the next one works. */
    OK(L->azihsm_emu_inject_fault("io_aborted", 1));
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_IO_ABORTED);
    OK(sign_once(priv));
    OK(L->azihsm_emu_inject_fault("device_not_ready", 2));
    CHECK_ST(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &opriv, &opub),
             AZIHSM_STATUS_DEVICE_NOT_READY);
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_DEVICE_NOT_READY);
    OK(sign_once(priv));
    /* -1 fires for ever, 0 clears. */
    OK(L->azihsm_emu_inject_fault("io_aborted", -1));
    for (int i = 0; i < 3; i++)
        CHECK_ST(sign_once(priv), AZIHSM_STATUS_IO_ABORTED);
    OK(L->azihsm_emu_inject_fault("io_aborted", 0));
    OK(sign_once(priv));
    /* Property reads do not reach the device: no fault fires there. */
    OK(L->azihsm_emu_inject_fault("io_aborted", 1));
    CHECK(key_u32(priv, AZIHSM_KEY_PROP_ID_KIND) == AZIHSM_KEY_KIND_ECC, "kind under a fault");
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_IO_ABORTED);

    /* The faults file, read again when it changes. */
    if (CHECK(write_faults_file(state_dir, "# comment\n\ndevice_not_ready 1\n"),
              "writing the faults file")) {
        CHECK_ST(sign_once(priv), AZIHSM_STATUS_DEVICE_NOT_READY);
        OK(sign_once(priv));
        write_faults_file(state_dir, "io_aborted 2\n");
        CHECK_ST(sign_once(priv), AZIHSM_STATUS_IO_ABORTED);
        write_faults_file(state_dir, "io_aborted 0\n");
        OK(sign_once(priv));
        write_faults_file(state_dir, "session_needs_renegotiation 1\n");
    }

    /* session_needs_renegotiation: every open session goes stale. */
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
    {
        uint32_t v = 0;
        struct azihsm_key_prop kp = {AZIHSM_KEY_PROP_ID_KIND, &v, sizeof(v)};
        struct azihsm_api_rev rev;
        struct azihsm_session_prop sp = {AZIHSM_SESSION_PROP_ID_API_REV, &rev, sizeof(rev)};

        CHECK_ST(L->azihsm_key_get_prop(priv, &kp), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
        CHECK_ST(L->azihsm_key_delete(pub), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
        CHECK_ST(L->azihsm_session_get_prop(other, &sp),
                 AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
    }
    OK(L->azihsm_sess_close(s));
    OK(L->azihsm_sess_close(other));
    {
        char path[4200];

        snprintf(path, sizeof(path), "%s/faults", state_dir);
        unlink(path); /* changes nothing: the counters stay as they are */
    }

    /* live_migration: IO_ABORTED, and the sessions are stale after it. A
     * context left open goes with its session. */
    s = open_session(g_part);
    other = 0;
    if (OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &priv, &pub)) &&
        OK(L->azihsm_crypt_sign_init(&ecdsa256, priv, &ctx))) {
        struct azihsm_buffer d = buf("x", 1);

        OK(L->azihsm_emu_inject_fault("live_migration", 1));
        CHECK_ST(L->azihsm_crypt_sign_update(ctx, &d), AZIHSM_STATUS_IO_ABORTED);
        CHECK_ST(L->azihsm_crypt_sign_update(ctx, &d), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
        CHECK_ST(sign_once(priv), AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION);
    }
    OK(L->azihsm_emu_open_handles(NULL, NULL, NULL, &nc));
    CHECK(nc == 1, "%u contexts open, want 1", nc);
    OK(L->azihsm_sess_close(s));
    OK(L->azihsm_emu_open_handles(NULL, NULL, NULL, &nc));
    CHECK(nc == 0, "%u contexts open after their session closed", nc);
    CHECK_ST(L->azihsm_free_ctx_handle(ctx), AZIHSM_STATUS_INVALID_HANDLE);

    /* A new session is fresh. */
    s = open_session(g_part);
    if (OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &priv, &pub)))
        OK(sign_once(priv));
    OK(L->azihsm_emu_faults_fired(&fired));
    CHECK(fired - fired0 == 11, "%u faults fired, want 11", fired - fired0);
out:
    if (s != 0)
        OK(L->azihsm_sess_close(s));
    if (other != 0)
        OK(L->azihsm_sess_close(other));
}

/* Closing a partition closes its sessions and their keys. */
static void flow_close_all(void)
{
    azihsm_handle s = open_session(g_part), priv = 0, pub = 0;
    uint32_t np = 9, ns = 9, nk = 9, nc = 9;

    OK(gen_ec(s, AZIHSM_ECC_CURVE_P256, EC_SIGN, 0, &priv, &pub));
    OK(L->azihsm_emu_open_handles(&np, &ns, &nk, &nc));
    CHECK(np == 1 && ns == 1 && nk == 2 && nc == 0, "open handles %u/%u/%u/%u, want 1/1/2/0", np,
          ns, nk, nc);
    OK(L->azihsm_part_close(g_part));
    CHECK_ST(L->azihsm_sess_close(s), AZIHSM_STATUS_INVALID_HANDLE);
    CHECK_ST(sign_once(priv), AZIHSM_STATUS_INVALID_HANDLE);
    OK(L->azihsm_emu_open_handles(&np, &ns, &nk, &nc));
    CHECK(np == 0 && ns == 0 && nk == 0 && nc == 0, "open handles at the end %u/%u/%u/%u", np,
          ns, nk, nc);
}

/* The leak report the library's destructor writes when it is unloaded. */
static void check_leak_report(const char *path)
{
    char line[256] = {0}, want[128];
    FILE *f = fopen(path, "r");

    snprintf(want, sizeof(want), "pid=%ld partitions=0 sessions=0 keys=0 contexts=0\n",
             (long)getpid());
    if (!CHECK(f != NULL, "no leak report at %s", path))
        return;
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = 0;
    fclose(f);
    CHECK(strcmp(line, want) == 0, "leak report %s, want %s", line, want);
}

int main(int argc, char **argv)
{
    static struct lib dev;
    struct unwrapper u;
    char tmpl[] = "/tmp/emu-test-XXXXXX", leak[4200], work[4096];
    const char *state = getenv("AZIHSM_EMU_STATE_DIR");

    if (argc != 2) {
        fprintf(stderr, "usage: %s <libazihsm_api_native.so>\n", argv[0]);
        return 2;
    }
    if (state == NULL || *state == '\0') {
        state = mkdtemp(tmpl);
        if (state == NULL) {
            perror("mkdtemp");
            return 2;
        }
        setenv("AZIHSM_EMU_STATE_DIR", state, 1);
    }
    mkdir(state, 0700);
    snprintf(work, sizeof(work), "%s/work", state);
    mkdir(work, 0700);
    unsetenv("AZIHSM_EMU_LEAK_REPORT");
    if (!lib_open(&dev, argv[1]))
        return 2;
    L = &dev;

    flow_partition();
    for (int i = 0; i < 3; i++) {
        flow_ec_sign(i);
        flow_ec_agree(i);
        flow_session_keys(i);
    }
    flow_masked_reload();
    if (unwrapper_open(&u)) {
        flow_rsa(&u);
        flow_usage(&u);
    }
    unwrapper_close(&u);
    flow_other_device(argv[1], work);
    flow_faults(state);
    flow_close_all();

    snprintf(leak, sizeof(leak), "%s/leak-report", work);
    unlink(leak);
    setenv("AZIHSM_EMU_LEAK_REPORT", leak, 1);
    dlclose(dev.dl);
    check_leak_report(leak);
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(g_rsa[i]);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
