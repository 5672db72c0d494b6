//go:build ignore

/*
 * Crypto calls: sign and verify (one-shot and streaming), RSA encrypt and
 * decrypt, and context handles.
 *
 * The algorithm names the key type it needs: ECDSA* an ECC key, RSA_* an
 * RSA key, HMAC_* an HMAC key; sign and decrypt take the private half,
 * verify and encrypt the public one (HMAC keys do both). Any other handle is
 * INVALID_HANDLE, as in the real library, whose handles are typed by kind. A
 * key of the right type without the usage flag the call needs is
 * UNSUPPORTED_KEY_OPERATION.
 *
 * Streaming contexts hash in the device. A context lives until
 * azihsm_free_ctx_handle, also after finish (update or finish then is
 * INVALID_CONTEXT_STATE), or until its session closes. A finish that gets
 * BUFFER_TOO_SMALL leaves the context as it was, so it can be asked again.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include "emu.h"

enum scheme { S_ECDSA, S_RSA_PKCS1, S_RSA_PSS, S_HMAC };

struct plan {
    enum scheme scheme;
    const EVP_MD *md; /* the hash: of the message, of the digest, or of HMAC */
    int prehashed;    /* data is a digest */
    uint32_t salt;
    uint32_t siglen;
};

struct emu_ctx {
    azihsm_handle handle;
    azihsm_handle session;
    struct emu_material *m;
    struct plan pl;
    EVP_MD_CTX *md;
    EVP_MAC_CTX *mac;
    int finished;
};

azihsm_handle emu_ctx_session(const struct emu_ctx *c)
{
    return c->session;
}

void emu_ctx_free(struct emu_ctx *c)
{
    if (c == NULL)
        return;
    EVP_MD_CTX_free(c->md);
    EVP_MAC_CTX_free(c->mac);
    emu_material_put(c->m);
    free(c);
}

static const EVP_MD *hash_of_algo(azihsm_algo_id id)
{
    switch (id) {
    case AZIHSM_ALGO_ID_ECDSA_SHA1:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA1:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA1:
    case AZIHSM_ALGO_ID_HMAC_SHA1:
        return EVP_sha1();
    case AZIHSM_ALGO_ID_ECDSA_SHA256:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA256:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA256:
    case AZIHSM_ALGO_ID_HMAC_SHA256:
        return EVP_sha256();
    case AZIHSM_ALGO_ID_ECDSA_SHA384:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA384:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA384:
    case AZIHSM_ALGO_ID_HMAC_SHA384:
        return EVP_sha384();
    case AZIHSM_ALGO_ID_ECDSA_SHA512:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA512:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA512:
    case AZIHSM_ALGO_ID_HMAC_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* PSS parameters: hash, MGF1 on the same hash, a salt that fits. */
static azihsm_status pss_params(const struct azihsm_algo *algo, const EVP_MD *want,
                                const struct emu_material *m, struct plan *pl)
{
    const struct azihsm_algo_rsa_pkcs_pss_params *pp = algo->params;
    const EVP_MD *md;
    uint32_t emlen, h;

    if (pp == NULL || algo->len != sizeof(*pp))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    md = emu_md_for_hash(pp->hash_algo_id);
    if (md == NULL || (want != NULL && md != want) ||
        pp->mgf_id != emu_mgf1_for_hash(pp->hash_algo_id))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    h = (uint32_t)EVP_MD_get_size(md);
    emlen = (m->bits - 1u + 7u) / 8u;
    if (emlen < h + 2u || pp->salt_len > emlen - h - 2u)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    pl->md = md;
    pl->salt = pp->salt_len;
    return AZIHSM_STATUS_SUCCESS;
}

/*
 * What a sign (verify = 0) or verify call with algo on ref's key will do,
 * or why it may not.
 */
static azihsm_status sign_plan(const struct azihsm_algo *algo, const struct emu_key_ref *ref,
                               int verify, int streaming, struct plan *pl)
{
    const struct emu_material *m = ref->m;
    enum emu_htype want = verify ? EMU_H_PUB : EMU_H_PRIV;
    uint16_t use = verify ? m->use_pub : m->use_priv;
    uint16_t need = verify ? EMU_USE_VERIFY : EMU_USE_SIGN;

    memset(pl, 0, sizeof(*pl));
    switch (algo->id) {
    case AZIHSM_ALGO_ID_ECDSA:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS:
        if (streaming)
            return AZIHSM_STATUS_UNSUPPORTED_ALGORITHM; /* no streaming of a digest */
        pl->prehashed = 1;
        pl->scheme = algo->id == AZIHSM_ALGO_ID_ECDSA ? S_ECDSA : S_RSA_PSS;
        break;
    case AZIHSM_ALGO_ID_ECDSA_SHA1:
    case AZIHSM_ALGO_ID_ECDSA_SHA256:
    case AZIHSM_ALGO_ID_ECDSA_SHA384:
    case AZIHSM_ALGO_ID_ECDSA_SHA512:
        pl->scheme = S_ECDSA;
        break;
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA1:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA256:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA384:
    case AZIHSM_ALGO_ID_RSA_PKCS_SHA512:
        pl->scheme = S_RSA_PKCS1;
        break;
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA1:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA256:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA384:
    case AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA512:
        pl->scheme = S_RSA_PSS;
        break;
    case AZIHSM_ALGO_ID_HMAC_SHA1:
    case AZIHSM_ALGO_ID_HMAC_SHA256:
    case AZIHSM_ALGO_ID_HMAC_SHA384:
    case AZIHSM_ALGO_ID_HMAC_SHA512:
        pl->scheme = S_HMAC;
        break;
    default:
        /* Including RSA_PKCS: PKCS#1 v1.5 on a digest does not exist here. */
        return AZIHSM_STATUS_UNSUPPORTED_ALGORITHM;
    }
    pl->md = hash_of_algo(algo->id);

    switch (pl->scheme) {
    case S_ECDSA:
        if (ref->type != want || m->kind != AZIHSM_KEY_KIND_ECC)
            return AZIHSM_STATUS_INVALID_HANDLE;
        pl->siglen = 2u * emu_curve_field_bytes(m->curve);
        break;
    case S_RSA_PKCS1:
    case S_RSA_PSS:
        if (ref->type != want || m->kind != AZIHSM_KEY_KIND_RSA)
            return AZIHSM_STATUS_INVALID_HANDLE;
        pl->siglen = (uint32_t)EVP_PKEY_get_size(m->pkey);
        break;
    case S_HMAC:
        if (ref->type != EMU_H_SECRET || !emu_is_hmac_kind(m->kind))
            return AZIHSM_STATUS_INVALID_HANDLE;
        use = m->use_priv;
        if (emu_md_for_hmac_kind(m->kind) != pl->md)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        pl->siglen = (uint32_t)EVP_MD_get_size(pl->md);
        break;
    }
    if (!(use & need))
        return AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION;
    if (pl->scheme == S_RSA_PSS)
        return pss_params(algo, pl->md, m, pl);
    return AZIHSM_STATUS_SUCCESS;
}

/* A digest to sign, as data: prehashed input is checked, else hashed. */
static azihsm_status digest_of(const struct plan *pl, const uint8_t *data, uint32_t len,
                               uint8_t *dg, size_t *dlen)
{
    unsigned int n = 0;

    if (pl->prehashed) {
        if (pl->scheme == S_ECDSA ? (len < 20 || len > 64)
                                  : len != (uint32_t)EVP_MD_get_size(pl->md))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        memcpy(dg, data, len);
        *dlen = len;
        return AZIHSM_STATUS_SUCCESS;
    }
    if (EVP_Digest(data, len, dg, &n, pl->md, NULL) != 1)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    *dlen = n;
    return AZIHSM_STATUS_SUCCESS;
}

static EVP_PKEY_CTX *rsa_sig_ctx(const struct emu_material *m, const struct plan *pl, int verify)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, m->pkey, NULL);

    if (c == NULL)
        return NULL;
    if ((verify ? EVP_PKEY_verify_init(c) : EVP_PKEY_sign_init(c)) != 1)
        goto fail;
    if (pl->scheme == S_ECDSA)
        return c;
    if (EVP_PKEY_CTX_set_signature_md(c, pl->md) != 1)
        goto fail;
    if (pl->scheme == S_RSA_PKCS1) {
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1)
            goto fail;
    } else if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) != 1 ||
               EVP_PKEY_CTX_set_rsa_mgf1_md(c, pl->md) != 1 ||
               EVP_PKEY_CTX_set_rsa_pss_saltlen(c, (int)pl->salt) != 1) {
        goto fail;
    }
    return c;
fail:
    EVP_PKEY_CTX_free(c);
    return NULL;
}

/* Signs a digest into out (pl->siglen bytes). */
static azihsm_status sign_digest(const struct emu_material *m, const struct plan *pl,
                                 const uint8_t *dg, size_t dlen, uint8_t *out)
{
    EVP_PKEY_CTX *c = rsa_sig_ctx(m, pl, 0);
    uint8_t *der = NULL;
    size_t n = 0;
    azihsm_status st = AZIHSM_STATUS_INTERNAL_ERROR;

    if (c == NULL || EVP_PKEY_sign(c, NULL, &n, dg, dlen) != 1)
        goto out;
    if (pl->scheme != S_ECDSA) {
        if (n != pl->siglen || EVP_PKEY_sign(c, out, &n, dg, dlen) != 1 || n != pl->siglen)
            goto out;
        st = AZIHSM_STATUS_SUCCESS;
        goto out;
    }
    der = malloc(n);
    if (der != NULL && EVP_PKEY_sign(c, der, &n, dg, dlen) == 1) {
        const unsigned char *p = der;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
        int half = (int)(pl->siglen / 2u);

        if (sig != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, half) == half &&
            BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + half, half) == half)
            st = AZIHSM_STATUS_SUCCESS;
        ECDSA_SIG_free(sig);
    }
out:
    free(der);
    EVP_PKEY_CTX_free(c);
    return st;
}

static azihsm_status verify_digest(const struct emu_material *m, const struct plan *pl,
                                   const uint8_t *dg, size_t dlen, const uint8_t *sig,
                                   uint32_t siglen)
{
    EVP_PKEY_CTX *c;
    unsigned char *der = NULL;
    int derlen = 0, ok = 0;

    if (siglen != pl->siglen)
        return AZIHSM_STATUS_INVALID_SIGNATURE;
    if (pl->scheme == S_ECDSA) {
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)siglen / 2, NULL);
        BIGNUM *s = BN_bin2bn(sig + siglen / 2u, (int)siglen / 2, NULL);

        if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return AZIHSM_STATUS_INTERNAL_ERROR;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0)
            return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    c = rsa_sig_ctx(m, pl, 1);
    if (c != NULL)
        ok = pl->scheme == S_ECDSA ? EVP_PKEY_verify(c, der, (size_t)derlen, dg, dlen) == 1
                                   : EVP_PKEY_verify(c, sig, siglen, dg, dlen) == 1;
    EVP_PKEY_CTX_free(c);
    OPENSSL_free(der);
    if (c == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    return ok ? AZIHSM_STATUS_SUCCESS : AZIHSM_STATUS_INVALID_SIGNATURE;
}

EMU_EXPORT azihsm_status azihsm_crypt_sign(struct azihsm_algo *algo, azihsm_handle key,
                                           const struct azihsm_buffer *data,
                                           struct azihsm_buffer *sig)
{
    struct emu_key_ref ref;
    struct plan pl;
    const uint8_t *in;
    uint32_t inlen;
    uint8_t dg[EVP_MAX_MD_SIZE];
    size_t dlen = 0;
    azihsm_status st;

    if (algo == NULL || sig == NULL || emu_in(data, &in, &inlen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    st = sign_plan(algo, &ref, 0, 0, &pl);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto out;
    if (pl.scheme == S_HMAC) {
        if ((st = emu_out_check(sig, pl.siglen)) == AZIHSM_STATUS_SUCCESS &&
            (st = emu_hmac(pl.md, ref.m->secret, ref.m->secret_len, in, inlen, sig->ptr)) ==
                AZIHSM_STATUS_SUCCESS)
            sig->len = pl.siglen;
        goto out;
    }
    if ((st = digest_of(&pl, in, inlen, dg, &dlen)) != AZIHSM_STATUS_SUCCESS ||
        (st = emu_out_check(sig, pl.siglen)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    st = sign_digest(ref.m, &pl, dg, dlen, sig->ptr);
    if (st == AZIHSM_STATUS_SUCCESS)
        sig->len = pl.siglen;
out:
    emu_key_end(&ref);
    return st;
}

EMU_EXPORT azihsm_status azihsm_crypt_verify(struct azihsm_algo *algo, azihsm_handle key,
                                             const struct azihsm_buffer *data,
                                             const struct azihsm_buffer *sig)
{
    struct emu_key_ref ref;
    struct plan pl;
    const uint8_t *in, *sg;
    uint32_t inlen, sglen;
    uint8_t dg[EVP_MAX_MD_SIZE];
    size_t dlen = 0;
    azihsm_status st;

    if (algo == NULL || emu_in(data, &in, &inlen) != AZIHSM_STATUS_SUCCESS ||
        emu_in(sig, &sg, &sglen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    st = sign_plan(algo, &ref, 1, 0, &pl);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto out;
    if (pl.scheme == S_HMAC) {
        uint8_t mac[EVP_MAX_MD_SIZE];

        st = emu_hmac(pl.md, ref.m->secret, ref.m->secret_len, in, inlen, mac);
        if (st == AZIHSM_STATUS_SUCCESS &&
            (sglen != pl.siglen || CRYPTO_memcmp(mac, sg, sglen) != 0))
            st = AZIHSM_STATUS_INVALID_SIGNATURE;
        OPENSSL_cleanse(mac, sizeof(mac));
        goto out;
    }
    if ((st = digest_of(&pl, in, inlen, dg, &dlen)) == AZIHSM_STATUS_SUCCESS)
        st = verify_digest(ref.m, &pl, dg, dlen, sg, sglen);
out:
    emu_key_end(&ref);
    return st;
}

/* ---- streaming ------------------------------------------------------------- */

EMU_EXPORT azihsm_status azihsm_crypt_sign_init(struct azihsm_algo *algo, azihsm_handle key,
                                                azihsm_handle *ctx)
{
    struct emu_key_ref ref;
    struct emu_ctx *c = NULL;
    struct emu_session *s;
    azihsm_status st;

    if (algo == NULL || ctx == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto fail;
    }
    st = sign_plan(algo, &ref, 0, 1, &c->pl);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto fail;
    st = AZIHSM_STATUS_INTERNAL_ERROR;
    if (c->pl.scheme == S_HMAC) {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        OSSL_PARAM params[2];

        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *)EVP_MD_get0_name(c->pl.md), 0);
        params[1] = OSSL_PARAM_construct_end();
        c->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac);
        if (c->mac == NULL ||
            EVP_MAC_init(c->mac, ref.m->secret, ref.m->secret_len, params) != 1)
            goto fail;
    } else {
        c->md = EVP_MD_CTX_new();
        if (c->md == NULL || EVP_DigestInit_ex(c->md, c->pl.md, NULL) != 1)
            goto fail;
    }
    c->session = ref.session;
    c->m = ref.m; /* the context keeps the reference */
    ref.m = NULL;
    emu_lock();
    s = emu_handle_get_locked(c->session, EMU_H_SESSION);
    if (s == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else if ((st = emu_stale_locked(s)) == AZIHSM_STATUS_SUCCESS)
        st = emu_handle_alloc_locked(EMU_H_CTX, c, &c->handle);
    emu_unlock();
    if (st != AZIHSM_STATUS_SUCCESS)
        goto fail;
    *ctx = c->handle;
    return AZIHSM_STATUS_SUCCESS;
fail:
    emu_ctx_free(c);
    emu_key_end(&ref);
    return st;
}

/* The context and its session, gate passed, not finished: under the lock. */
static azihsm_status ctx_begin_locked(azihsm_handle ctx, struct emu_ctx **out)
{
    struct emu_ctx *c = emu_handle_get_locked(ctx, EMU_H_CTX);
    struct emu_session *s;
    azihsm_status st;

    if (c == NULL || (s = emu_handle_get_locked(c->session, EMU_H_SESSION)) == NULL)
        return AZIHSM_STATUS_INVALID_HANDLE;
    if ((st = emu_gate_locked(s)) != AZIHSM_STATUS_SUCCESS)
        return st;
    if (c->finished)
        return AZIHSM_STATUS_INVALID_CONTEXT_STATE;
    *out = c;
    return AZIHSM_STATUS_SUCCESS;
}

EMU_EXPORT azihsm_status azihsm_crypt_sign_update(azihsm_handle ctx,
                                                  const struct azihsm_buffer *data)
{
    struct emu_ctx *c;
    const uint8_t *in;
    uint32_t inlen;
    azihsm_status st;

    if (emu_in(data, &in, &inlen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    st = ctx_begin_locked(ctx, &c);
    if (st == AZIHSM_STATUS_SUCCESS && inlen != 0) {
        int ok = c->mac ? EVP_MAC_update(c->mac, in, inlen) : EVP_DigestUpdate(c->md, in, inlen);

        if (ok != 1)
            st = AZIHSM_STATUS_INTERNAL_ERROR;
    }
    emu_unlock();
    return st;
}

EMU_EXPORT azihsm_status azihsm_crypt_sign_finish(azihsm_handle ctx, struct azihsm_buffer *sig)
{
    struct emu_ctx *c;
    struct emu_material *m = NULL;
    struct plan pl;
    uint8_t dg[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    azihsm_status st;

    if (sig == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    st = ctx_begin_locked(ctx, &c);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = emu_out_check(sig, c->pl.siglen);
    if (st != AZIHSM_STATUS_SUCCESS) {
        emu_unlock();
        return st;
    }
    pl = c->pl;
    c->finished = 1;
    if (c->mac != NULL) {
        size_t n = 0;

        if (EVP_MAC_final(c->mac, sig->ptr, &n, sig->len) != 1 || n != pl.siglen)
            st = AZIHSM_STATUS_INTERNAL_ERROR;
        else
            sig->len = pl.siglen;
        emu_unlock();
        return st;
    }
    if (EVP_DigestFinal_ex(c->md, dg, &dlen) != 1) {
        emu_unlock();
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    m = emu_material_ref(c->m);
    emu_unlock();
    /* The slow part runs unlocked on our own reference. */
    st = sign_digest(m, &pl, dg, dlen, sig->ptr);
    if (st == AZIHSM_STATUS_SUCCESS)
        sig->len = pl.siglen;
    emu_material_put(m);
    return st;
}

EMU_EXPORT azihsm_status azihsm_free_ctx_handle(azihsm_handle ctx)
{
    struct emu_ctx *c;

    emu_lock();
    c = emu_handle_get_locked(ctx, EMU_H_CTX);
    if (c != NULL)
        emu_handle_release_locked(ctx);
    emu_unlock();
    if (c == NULL)
        return AZIHSM_STATUS_INVALID_HANDLE;
    emu_ctx_free(c);
    return AZIHSM_STATUS_SUCCESS;
}

/* ---- RSA encryption -------------------------------------------------------- */

int emu_rsa_decrypt(EVP_PKEY *pkey, int padding, const EVP_MD *md, const EVP_MD *mgf1,
                    const uint8_t *label, size_t labellen, const uint8_t *in, size_t inlen,
                    uint8_t *out, size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = 0;

    if (c == NULL || EVP_PKEY_decrypt_init(c) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(c, padding) != 1)
        goto out;
    if (padding == RSA_PKCS1_OAEP_PADDING) {
        if (EVP_PKEY_CTX_set_rsa_oaep_md(c, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf1) != 1)
            goto out;
        if (labellen != 0) {
            void *l = OPENSSL_memdup(label, labellen);

            if (l == NULL || EVP_PKEY_CTX_set0_rsa_oaep_label(c, l, (int)labellen) != 1) {
                OPENSSL_free(l);
                goto out;
            }
        }
    } else {
        /*
         * A device reports a bad PKCS#1 v1.5 block; OpenSSL 3.2 and later
         * would return a random "plaintext" instead unless told not to
         * (older versions do not know the parameter and ignore it).
         */
        unsigned int zero = 0;
        OSSL_PARAM p[2];

        p[0] = OSSL_PARAM_construct_uint("implicit-rejection", &zero);
        p[1] = OSSL_PARAM_construct_end();
        (void)EVP_PKEY_CTX_set_params(c, p);
    }
    *outlen = (size_t)EVP_PKEY_get_size(pkey);
    ok = EVP_PKEY_decrypt(c, out, outlen, in, inlen) == 1;
out:
    EVP_PKEY_CTX_free(c);
    return ok;
}

struct rsa_enc {
    int padding;
    const EVP_MD *md;
    const uint8_t *label;
    uint32_t labellen;
};

static azihsm_status rsa_enc_plan(const struct azihsm_algo *algo, struct rsa_enc *e)
{
    memset(e, 0, sizeof(*e));
    if (algo->id == AZIHSM_ALGO_ID_RSA_PKCS) {
        e->padding = RSA_PKCS1_PADDING;
        return AZIHSM_STATUS_SUCCESS;
    }
    if (algo->id == AZIHSM_ALGO_ID_RSA_PKCS_OAEP) {
        const struct azihsm_algo_rsa_pkcs_oaep_params *op = algo->params;

        if (op == NULL || algo->len != sizeof(*op))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        e->md = emu_md_for_hash(op->hash_algo_id);
        if (e->md == NULL || op->mgf1_hash_algo_id != emu_mgf1_for_hash(op->hash_algo_id) ||
            emu_in_opt(op->label, &e->label, &e->labellen) != AZIHSM_STATUS_SUCCESS)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        e->padding = RSA_PKCS1_OAEP_PADDING;
        return AZIHSM_STATUS_SUCCESS;
    }
    return AZIHSM_STATUS_UNSUPPORTED_ALGORITHM;
}

/* Checks key type and usage for encrypt (pub) or decrypt, then the algorithm. */
static azihsm_status rsa_enc_begin(const struct azihsm_algo *algo, const struct emu_key_ref *ref,
                                   int decrypt, struct rsa_enc *e)
{
    azihsm_status st = rsa_enc_plan(algo, e);

    if (st == AZIHSM_STATUS_UNSUPPORTED_ALGORITHM)
        return st;
    if (ref->type != (decrypt ? EMU_H_PRIV : EMU_H_PUB) || ref->m->kind != AZIHSM_KEY_KIND_RSA)
        return AZIHSM_STATUS_INVALID_HANDLE;
    if (!((decrypt ? ref->m->use_priv : ref->m->use_pub) &
          (decrypt ? EMU_USE_DECRYPT : EMU_USE_ENCRYPT)))
        return AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION;
    return st;
}

EMU_EXPORT azihsm_status azihsm_crypt_decrypt(struct azihsm_algo *algo, azihsm_handle key,
                                              const struct azihsm_buffer *cipher,
                                              struct azihsm_buffer *plain)
{
    struct emu_key_ref ref;
    struct rsa_enc e;
    const uint8_t *in;
    uint32_t inlen, k = 0;
    uint8_t *tmp = NULL;
    size_t n = 0;
    azihsm_status st;

    if (algo == NULL || plain == NULL || emu_in(cipher, &in, &inlen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if ((st = rsa_enc_begin(algo, &ref, 1, &e)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    k = (uint32_t)EVP_PKEY_get_size(ref.m->pkey);
    if (inlen != k) {
        st = AZIHSM_STATUS_INVALID_ARGUMENT;
        goto out;
    }
    /* The size asked for is the modulus size, whatever the plaintext. */
    if ((st = emu_out_check(plain, k)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    tmp = malloc(k);
    if (tmp == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    if (!emu_rsa_decrypt(ref.m->pkey, e.padding, e.md, e.md, e.label, e.labellen, in, inlen, tmp,
                         &n)) {
        st = AZIHSM_STATUS_INVALID_ARGUMENT;
        goto out;
    }
    memcpy(plain->ptr, tmp, n);
    plain->len = (uint32_t)n;
out:
    emu_wipe_free(tmp, k);
    emu_key_end(&ref);
    return st;
}

EMU_EXPORT azihsm_status azihsm_crypt_encrypt(struct azihsm_algo *algo, azihsm_handle key,
                                              const struct azihsm_buffer *plain,
                                              struct azihsm_buffer *cipher)
{
    struct emu_key_ref ref;
    struct rsa_enc e;
    const uint8_t *in;
    uint32_t inlen, k, max;
    EVP_PKEY_CTX *c = NULL;
    size_t n;
    azihsm_status st;

    if (algo == NULL || cipher == NULL || emu_in(plain, &in, &inlen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if ((st = rsa_enc_begin(algo, &ref, 0, &e)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    k = (uint32_t)EVP_PKEY_get_size(ref.m->pkey);
    max = e.padding == RSA_PKCS1_PADDING ? k - 11u : k - 2u * (uint32_t)EVP_MD_get_size(e.md) - 2u;
    if (inlen > max) {
        st = AZIHSM_STATUS_INVALID_ARGUMENT;
        goto out;
    }
    if ((st = emu_out_check(cipher, k)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    st = AZIHSM_STATUS_INTERNAL_ERROR;
    c = EVP_PKEY_CTX_new_from_pkey(NULL, ref.m->pkey, NULL);
    if (c == NULL || EVP_PKEY_encrypt_init(c) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(c, e.padding) != 1)
        goto out;
    if (e.padding == RSA_PKCS1_OAEP_PADDING) {
        if (EVP_PKEY_CTX_set_rsa_oaep_md(c, e.md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(c, e.md) != 1)
            goto out;
        if (e.labellen != 0) {
            void *l = OPENSSL_memdup(e.label, e.labellen);

            if (l == NULL || EVP_PKEY_CTX_set0_rsa_oaep_label(c, l, (int)e.labellen) != 1) {
                OPENSSL_free(l);
                goto out;
            }
        }
    }
    n = k;
    if (EVP_PKEY_encrypt(c, cipher->ptr, &n, in, inlen) != 1)
        goto out;
    cipher->len = (uint32_t)n;
    st = AZIHSM_STATUS_SUCCESS;
out:
    EVP_PKEY_CTX_free(c);
    emu_key_end(&ref);
    return st;
}
