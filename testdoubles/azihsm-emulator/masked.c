//go:build ignore

/*
 * Masked keys: the emulator's own blob layout (version 1). All integers are
 * big-endian.
 *
 *   off len
 *     0   4  magic "AZEM"
 *     4   1  version (1)
 *     5   1  key kind (AZIHSM_KEY_KIND_*)
 *     6   1  class of the masked object (PRIVATE for pairs, SECRET)
 *     7   1  flags: 1 session key, 2 local (made in the device)
 *     8   4  bits
 *    12   1  curve (AZIHSM_ECC_CURVE_*, 0 for non-EC keys)
 *    13   1  reserved, 0
 *    14   2  usage flags of the private half (or of the secret)
 *    16   2  usage flags of the public half (0 for secrets)
 *    18  16  device id of the state directory that masked it
 *    34  16  session id (zeros unless a session key)
 *    50  12  AES-GCM nonce
 *    62   1  length of the private half's label
 *    63   1  length of the public half's label
 *    64   4  length of the public key (DER SubjectPublicKeyInfo, 0 for secrets)
 *    68   4  length of the encrypted private material
 *    72      labels, public key, encrypted material, 16-byte GCM tag
 *
 * The private material (PKCS#8 DER for pairs, the raw secret otherwise) is
 * encrypted with AES-256-GCM under the device masking key; everything before
 * it is the additional authenticated data. Any change to any byte, a
 * truncation, a blob of another state directory or another version:
 * AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "emu.h"

#define BLOB_MAGIC   "AZEM"
#define BLOB_VERSION 1u
#define HDR_LEN      72u
#define NONCE_LEN    12u
#define TAG_LEN      16u

#define FLAG_SESSION 1u
#define FLAG_LOCAL   2u

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static int is_pair_kind(azihsm_key_kind k)
{
    return k == AZIHSM_KEY_KIND_RSA || k == AZIHSM_KEY_KIND_ECC;
}

/* AES-256-GCM; enc = 1 encrypts in → out and writes tag, 0 checks tag. */
static int gcm(int enc, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = 0;

    if (c == NULL)
        return 0;
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, emu_state()->mask_key, nonce, enc) != 1 ||
        EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1 ||
        EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + n, &n) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    ok = 1;
out:
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* The private material in the clear (malloc'd; the caller wipes it). */
static azihsm_status material_plain(const struct emu_material *m, uint8_t **p, uint32_t *len)
{
    if (is_pair_kind(m->kind)) {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(m->pkey);
        unsigned char *der = NULL;
        int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;

        PKCS8_PRIV_KEY_INFO_free(p8);
        if (n <= 0)
            return AZIHSM_STATUS_INTERNAL_ERROR;
        *p = malloc((size_t)n);
        if (*p != NULL)
            memcpy(*p, der, (size_t)n);
        OPENSSL_clear_free(der, (size_t)n);
        if (*p == NULL)
            return AZIHSM_STATUS_INTERNAL_ERROR;
        *len = (uint32_t)n;
        return AZIHSM_STATUS_SUCCESS;
    }
    *p = malloc(m->secret_len ? m->secret_len : 1);
    if (*p == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    memcpy(*p, m->secret, m->secret_len);
    *len = m->secret_len;
    return AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_mask(struct emu_material *m)
{
    const struct emu_state *s = emu_state();
    uint8_t *plain = NULL, *blob, *q;
    uint32_t plen = 0, total;
    azihsm_status st;

    st = material_plain(m, &plain, &plen);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    total = HDR_LEN + m->label_priv_len + m->label_pub_len + m->pub_der_len + plen + TAG_LEN;
    blob = calloc(1, total);
    if (blob == NULL) {
        emu_wipe_free(plain, plen);
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    memcpy(blob, BLOB_MAGIC, 4);
    blob[4] = BLOB_VERSION;
    blob[5] = (uint8_t)m->kind;
    blob[6] = (uint8_t)(is_pair_kind(m->kind) ? AZIHSM_KEY_CLASS_PRIVATE : AZIHSM_KEY_CLASS_SECRET);
    blob[7] = (uint8_t)((m->session ? FLAG_SESSION : 0) | (m->local ? FLAG_LOCAL : 0));
    put32(blob + 8, m->bits);
    blob[12] = (uint8_t)m->curve;
    put16(blob + 14, m->use_priv);
    put16(blob + 16, m->use_pub);
    memcpy(blob + 18, s->device_id, EMU_ID_LEN);
    if (m->session)
        memcpy(blob + 34, m->session_id, EMU_ID_LEN);
    emu_random(blob + 50, NONCE_LEN);
    blob[62] = m->label_priv_len;
    blob[63] = m->label_pub_len;
    put32(blob + 64, m->pub_der_len);
    put32(blob + 68, plen);
    q = blob + HDR_LEN;
    memcpy(q, m->label_priv, m->label_priv_len);
    q += m->label_priv_len;
    memcpy(q, m->label_pub, m->label_pub_len);
    q += m->label_pub_len;
    if (m->pub_der_len)
        memcpy(q, m->pub_der, m->pub_der_len);
    q += m->pub_der_len;
    if (!gcm(1, blob + 50, blob, (size_t)(q - blob), plain, plen, q, q + plen)) {
        emu_wipe_free(plain, plen);
        free(blob);
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    emu_wipe_free(plain, plen);
    m->blob = blob;
    m->blob_len = total;
    return AZIHSM_STATUS_SUCCESS;
}

static int known_kind(azihsm_key_kind k)
{
    return is_pair_kind(k) || k == AZIHSM_KEY_KIND_SHARED_SECRET || k == AZIHSM_KEY_KIND_AES ||
           emu_is_hmac_kind(k);
}

/* Rebuilds the key from its decrypted material, and checks it is whole. */
static azihsm_status material_from_plain(struct emu_material *m, const uint8_t *plain,
                                         uint32_t plen)
{
    if (is_pair_kind(m->kind)) {
        const unsigned char *p = plain;
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)plen);
        uint8_t *der = NULL;
        uint32_t dlen = 0;
        int ok;

        if (p8 != NULL && p == plain + plen)
            m->pkey = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
        if (m->pkey == NULL)
            return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
        if (m->kind == AZIHSM_KEY_KIND_RSA)
            ok = EVP_PKEY_get_base_id(m->pkey) == EVP_PKEY_RSA &&
                 (uint32_t)EVP_PKEY_get_bits(m->pkey) == m->bits && m->curve == 0;
        else
            ok = emu_curve_of(m->pkey) == m->curve && m->curve != 0 &&
                 emu_curve_bits(m->curve) == m->bits;
        if (!ok || emu_spki(m->pkey, &der, &dlen) != AZIHSM_STATUS_SUCCESS)
            return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
        ok = dlen == m->pub_der_len && memcmp(der, m->pub_der, dlen) == 0;
        free(der);
        return ok ? AZIHSM_STATUS_SUCCESS : AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    }
    if (m->pub_der_len != 0 || m->use_pub != 0 || m->curve != 0 ||
        plen != (m->bits + 7u) / 8u || plen == 0)
        return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    m->secret = malloc(plen);
    if (m->secret == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    memcpy(m->secret, plain, plen);
    m->secret_len = plen;
    return AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_unmask_blob(const uint8_t *blob, uint32_t len, struct emu_material **out)
{
    const struct emu_state *s = emu_state();
    struct emu_material *m;
    uint32_t lp, lq, pub, ct;
    uint64_t total;
    const uint8_t *q;
    uint8_t *plain;
    azihsm_status st;

    *out = NULL;
    if (blob == NULL || len < HDR_LEN + TAG_LEN || memcmp(blob, BLOB_MAGIC, 4) != 0 ||
        blob[4] != BLOB_VERSION || blob[13] != 0 || (blob[7] & ~(FLAG_SESSION | FLAG_LOCAL)))
        return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    lp = blob[62];
    lq = blob[63];
    pub = get32(blob + 64);
    ct = get32(blob + 68);
    total = (uint64_t)HDR_LEN + lp + lq + pub + ct + TAG_LEN;
    if (total != len || lp > EMU_LABEL_MAX || lq > EMU_LABEL_MAX)
        return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    if (CRYPTO_memcmp(blob + 18, s->device_id, EMU_ID_LEN) != 0)
        return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED; /* another device */
    plain = malloc(ct ? ct : 1);
    if (plain == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    q = blob + HDR_LEN + lp + lq + pub;
    if (!gcm(0, blob + 50, blob, (size_t)(q - blob), q, ct, plain, (uint8_t *)(q + ct))) {
        emu_wipe_free(plain, ct);
        return AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    }

    m = emu_material_new();
    if (m == NULL) {
        emu_wipe_free(plain, ct);
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    m->kind = blob[5];
    m->bits = get32(blob + 8);
    m->curve = blob[12];
    m->session = (blob[7] & FLAG_SESSION) != 0;
    m->local = (blob[7] & FLAG_LOCAL) != 0;
    memcpy(m->session_id, blob + 34, EMU_ID_LEN);
    m->use_priv = get16(blob + 14);
    m->use_pub = get16(blob + 16);
    m->label_priv_len = (uint8_t)lp;
    m->label_pub_len = (uint8_t)lq;
    memcpy(m->label_priv, blob + HDR_LEN, lp);
    memcpy(m->label_pub, blob + HDR_LEN + lp, lq);
    st = AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED;
    if (!known_kind(m->kind) ||
        blob[6] != (is_pair_kind(m->kind) ? AZIHSM_KEY_CLASS_PRIVATE : AZIHSM_KEY_CLASS_SECRET))
        goto fail;
    if (pub != 0) {
        m->pub_der = malloc(pub);
        if (m->pub_der == NULL) {
            st = AZIHSM_STATUS_INTERNAL_ERROR;
            goto fail;
        }
        memcpy(m->pub_der, blob + HDR_LEN + lp + lq, pub);
        m->pub_der_len = pub;
    }
    st = material_from_plain(m, plain, ct);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto fail;
    m->blob = malloc(len);
    if (m->blob == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto fail;
    }
    memcpy(m->blob, blob, len);
    m->blob_len = len;
    emu_wipe_free(plain, ct);
    *out = m;
    return AZIHSM_STATUS_SUCCESS;
fail:
    emu_wipe_free(plain, ct);
    emu_material_put(m);
    return st;
}
