//go:build ignore

/*
 * Keys: generation, RSA-AES unwrap, unmask, derivation, delete, properties.
 *
 * Every key has exactly one usage family, fixed when it is made:
 *
 *   signing        private SIGN, public VERIFY          RSA, ECC, HMAC
 *   key agreement  DERIVE                               ECC, SHARED_SECRET
 *   encipherment   private DECRYPT, public ENCRYPT      RSA, AES
 *   unwrap         private UNWRAP, public WRAP          the RSA unwrapping key
 *
 * A property list that sets flags of two families, of none, or a flag the
 * half cannot have, is INVALID_KEY_PROPS. SENSITIVE, EXTRACTABLE, LOCAL,
 * PUB_KEY_INFO and MASKED_KEY are set by the device, so a list that names
 * them is INVALID_ARGUMENT; an unknown property id is UNSUPPORTED_PROPERTY.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "emu.h"

/* ---- material and key objects ------------------------------------------- */

struct emu_material *emu_material_new(void)
{
    struct emu_material *m = calloc(1, sizeof(*m));

    if (m != NULL)
        m->refs = 1;
    return m;
}

struct emu_material *emu_material_ref(struct emu_material *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void emu_material_put(struct emu_material *m)
{
    if (m == NULL || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    EVP_PKEY_free(m->pkey);
    free(m->pub_der);
    emu_wipe_free(m->secret, m->secret_len);
    free(m->blob);
    OPENSSL_cleanse(m, sizeof(*m));
    free(m);
}

void emu_key_free(struct emu_key *k)
{
    if (k == NULL)
        return;
    emu_material_put(k->m);
    free(k);
}

azihsm_status emu_keys_insert(azihsm_handle sh, struct emu_material *m, int pair,
                              azihsm_handle *priv, azihsm_handle *pub)
{
    struct emu_key *a = calloc(1, sizeof(*a)), *b = pair ? calloc(1, sizeof(*b)) : NULL;
    struct emu_session *s;
    azihsm_status st;

    if (a == NULL || (pair && b == NULL)) {
        free(a);
        free(b);
        return AZIHSM_STATUS_INTERNAL_ERROR;
    }
    emu_lock();
    s = emu_handle_get_locked(sh, EMU_H_SESSION);
    if (s == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE; /* closed while we worked */
        goto fail;
    }
    if ((st = emu_stale_locked(s)) != AZIHSM_STATUS_SUCCESS)
        goto fail;
    a->session = sh;
    a->cls = pair ? AZIHSM_KEY_CLASS_PRIVATE : AZIHSM_KEY_CLASS_SECRET;
    st = emu_handle_alloc_locked(pair ? EMU_H_PRIV : EMU_H_SECRET, a, &a->handle);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto fail;
    if (pair) {
        b->session = sh;
        b->cls = AZIHSM_KEY_CLASS_PUBLIC;
        st = emu_handle_alloc_locked(EMU_H_PUB, b, &b->handle);
        if (st != AZIHSM_STATUS_SUCCESS) {
            emu_handle_release_locked(a->handle);
            goto fail;
        }
        b->m = emu_material_ref(m);
        *pub = b->handle;
    }
    a->m = emu_material_ref(m);
    *priv = a->handle;
    emu_unlock();
    return AZIHSM_STATUS_SUCCESS;
fail:
    emu_unlock();
    free(a);
    free(b);
    return st;
}

azihsm_status emu_key_begin(azihsm_handle key, struct emu_key_ref *ref)
{
    struct emu_key *k;
    struct emu_session *s = NULL;
    azihsm_status st;

    memset(ref, 0, sizeof(*ref));
    emu_lock();
    k = emu_handle_get_key_locked(key, &ref->type);
    if (k == NULL || (s = emu_key_session_locked(k)) == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else
        st = emu_gate_locked(s);
    if (st == AZIHSM_STATUS_SUCCESS) {
        ref->cls = k->cls;
        ref->session = k->session;
        memcpy(ref->session_id, s->id, EMU_ID_LEN);
        ref->m = emu_material_ref(k->m);
    }
    emu_unlock();
    return st;
}

void emu_key_end(struct emu_key_ref *ref)
{
    emu_material_put(ref->m);
    ref->m = NULL;
}

/* Looks a session up and passes the gate; copies its id. */
static azihsm_status session_begin(azihsm_handle sh, uint8_t id[EMU_ID_LEN])
{
    struct emu_session *s;
    azihsm_status st;

    emu_lock();
    s = emu_handle_get_locked(sh, EMU_H_SESSION);
    if (s == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else
        st = emu_gate_locked(s);
    if (st == AZIHSM_STATUS_SUCCESS)
        memcpy(id, s->id, EMU_ID_LEN);
    emu_unlock();
    return st;
}

/* ---- property lists ------------------------------------------------------ */

struct props {
    int has_class, has_kind, has_bits, has_curve, has_session;
    uint32_t cls, kind, bits, curve;
    int session;
    uint16_t use; /* usage flags set true */
    const uint8_t *label;
    uint32_t label_len;
};

static azihsm_status prop_u32(const struct azihsm_key_prop *p, uint32_t *v)
{
    if (p->len != sizeof(uint32_t))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    memcpy(v, p->val, sizeof(*v));
    return AZIHSM_STATUS_SUCCESS;
}

static azihsm_status prop_bool(const struct azihsm_key_prop *p, int *v)
{
    if (p->len != 1)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    *v = *(const uint8_t *)p->val != 0;
    return AZIHSM_STATUS_SUCCESS;
}

static uint16_t use_bit(azihsm_key_prop_id id)
{
    switch (id) {
    case AZIHSM_KEY_PROP_ID_ENCRYPT:
        return EMU_USE_ENCRYPT;
    case AZIHSM_KEY_PROP_ID_DECRYPT:
        return EMU_USE_DECRYPT;
    case AZIHSM_KEY_PROP_ID_SIGN:
        return EMU_USE_SIGN;
    case AZIHSM_KEY_PROP_ID_VERIFY:
        return EMU_USE_VERIFY;
    case AZIHSM_KEY_PROP_ID_WRAP:
        return EMU_USE_WRAP;
    case AZIHSM_KEY_PROP_ID_UNWRAP:
        return EMU_USE_UNWRAP;
    case AZIHSM_KEY_PROP_ID_DERIVE:
        return EMU_USE_DERIVE;
    default:
        return 0;
    }
}

static int known_kind_value(uint32_t k)
{
    switch (k) {
    case AZIHSM_KEY_KIND_RSA:
    case AZIHSM_KEY_KIND_ECC:
    case AZIHSM_KEY_KIND_AES:
    case AZIHSM_KEY_KIND_AES_XTS:
    case AZIHSM_KEY_KIND_SHARED_SECRET:
    case AZIHSM_KEY_KIND_HMAC_SHA256:
    case AZIHSM_KEY_KIND_HMAC_SHA384:
    case AZIHSM_KEY_KIND_HMAC_SHA512:
    case AZIHSM_KEY_KIND_AES_GCM:
        return 1;
    default:
        return 0;
    }
}

static azihsm_status props_parse(const struct azihsm_key_prop_list *l, struct props *p)
{
    uint32_t seen = 0;

    memset(p, 0, sizeof(*p));
    if (l == NULL || l->props == NULL || l->count == 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < l->count; i++) {
        const struct azihsm_key_prop *kp = &l->props[i];
        azihsm_status st = AZIHSM_STATUS_SUCCESS;
        int b = 0;

        if (kp->val == NULL)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        if (kp->id >= 1 && kp->id <= 18) {
            if (seen & (1u << kp->id))
                return AZIHSM_STATUS_INVALID_ARGUMENT; /* named twice */
            seen |= 1u << kp->id;
        }
        switch (kp->id) {
        case AZIHSM_KEY_PROP_ID_CLASS:
            st = prop_u32(kp, &p->cls);
            if (st == AZIHSM_STATUS_SUCCESS &&
                (p->cls < AZIHSM_KEY_CLASS_SECRET || p->cls > AZIHSM_KEY_CLASS_PRIVATE))
                st = AZIHSM_STATUS_INVALID_ARGUMENT;
            p->has_class = 1;
            break;
        case AZIHSM_KEY_PROP_ID_KIND:
            st = prop_u32(kp, &p->kind);
            if (st == AZIHSM_STATUS_SUCCESS && !known_kind_value(p->kind))
                st = AZIHSM_STATUS_INVALID_ARGUMENT;
            p->has_kind = 1;
            break;
        case AZIHSM_KEY_PROP_ID_BIT_LEN:
            st = prop_u32(kp, &p->bits);
            p->has_bits = 1;
            break;
        case AZIHSM_KEY_PROP_ID_EC_CURVE:
            st = prop_u32(kp, &p->curve);
            if (st == AZIHSM_STATUS_SUCCESS && emu_curve_bits(p->curve) == 0)
                st = AZIHSM_STATUS_INVALID_ARGUMENT;
            p->has_curve = 1;
            break;
        case AZIHSM_KEY_PROP_ID_LABEL:
            if (kp->len > EMU_LABEL_MAX)
                return AZIHSM_STATUS_INVALID_ARGUMENT;
            p->label = kp->val;
            p->label_len = kp->len;
            break;
        case AZIHSM_KEY_PROP_ID_SESSION:
            st = prop_bool(kp, &p->session);
            p->has_session = 1;
            break;
        case AZIHSM_KEY_PROP_ID_ENCRYPT:
        case AZIHSM_KEY_PROP_ID_DECRYPT:
        case AZIHSM_KEY_PROP_ID_SIGN:
        case AZIHSM_KEY_PROP_ID_VERIFY:
        case AZIHSM_KEY_PROP_ID_WRAP:
        case AZIHSM_KEY_PROP_ID_UNWRAP:
        case AZIHSM_KEY_PROP_ID_DERIVE:
            st = prop_bool(kp, &b);
            if (b)
                p->use |= use_bit(kp->id);
            break;
        case AZIHSM_KEY_PROP_ID_SENSITIVE:
        case AZIHSM_KEY_PROP_ID_EXTRACTABLE:
        case AZIHSM_KEY_PROP_ID_LOCAL:
        case AZIHSM_KEY_PROP_ID_PUB_KEY_INFO:
        case AZIHSM_KEY_PROP_ID_MASKED_KEY:
            return AZIHSM_STATUS_INVALID_ARGUMENT; /* the device sets these */
        default:
            return AZIHSM_STATUS_UNSUPPORTED_PROPERTY;
        }
        if (st != AZIHSM_STATUS_SUCCESS)
            return st;
    }
    return AZIHSM_STATUS_SUCCESS;
}

static azihsm_status props_need_class_kind(const struct props *p)
{
    if (!p->has_class)
        return AZIHSM_STATUS_KEY_CLASS_NOT_SPECIFIED;
    if (!p->has_kind)
        return AZIHSM_STATUS_KEY_KIND_NOT_SPECIFIED;
    return AZIHSM_STATUS_SUCCESS;
}

#define FAM_SIGN   1u
#define FAM_AGREE  2u
#define FAM_ENC    4u
#define FAM_UNWRAP 8u

#define PRIV_USES (EMU_USE_SIGN | EMU_USE_DECRYPT | EMU_USE_UNWRAP | EMU_USE_DERIVE)
#define PUB_USES  (EMU_USE_VERIFY | EMU_USE_ENCRYPT | EMU_USE_WRAP | EMU_USE_DERIVE)

/*
 * Checks the two property lists of a pair of the given kind, whose usage
 * family must be one of fams, and records usage, session and labels in m.
 */
static azihsm_status pair_check(const struct props *pv, const struct props *pb,
                                azihsm_key_kind kind, unsigned fams, struct emu_material *m)
{
    unsigned got = 0;
    azihsm_status st;

    if ((st = props_need_class_kind(pv)) != AZIHSM_STATUS_SUCCESS ||
        (st = props_need_class_kind(pb)) != AZIHSM_STATUS_SUCCESS)
        return st;
    if (pv->cls != AZIHSM_KEY_CLASS_PRIVATE || pb->cls != AZIHSM_KEY_CLASS_PUBLIC ||
        pv->kind != kind || pb->kind != kind)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    if ((pv->use & ~PRIV_USES) || (pb->use & ~PUB_USES))
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    if ((pv->use & EMU_USE_SIGN) || (pb->use & EMU_USE_VERIFY))
        got |= FAM_SIGN;
    if ((pv->use | pb->use) & EMU_USE_DERIVE)
        got |= FAM_AGREE;
    if ((pv->use & EMU_USE_DECRYPT) || (pb->use & EMU_USE_ENCRYPT))
        got |= FAM_ENC;
    if ((pv->use & EMU_USE_UNWRAP) || (pb->use & EMU_USE_WRAP))
        got |= FAM_UNWRAP;
    if (got == 0 || (got & (got - 1u)) != 0 || (got & fams) == 0)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    if (pv->has_session && pb->has_session && pv->session != pb->session)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    m->kind = kind;
    m->session = pv->session || pb->session;
    m->use_priv = pv->use;
    m->use_pub = pb->use;
    m->label_priv_len = (uint8_t)pv->label_len;
    if (pv->label_len)
        memcpy(m->label_priv, pv->label, pv->label_len);
    m->label_pub_len = (uint8_t)pb->label_len;
    if (pb->label_len)
        memcpy(m->label_pub, pb->label, pb->label_len);
    return AZIHSM_STATUS_SUCCESS;
}

static int rsa_bits_ok(uint32_t bits)
{
    return bits == 2048 || bits == 3072 || bits == 4096;
}

/* BIT_LEN and EC_CURVE of a pair: from either list, equal if in both. */
static azihsm_status pair_shape(const struct props *a, const struct props *b,
                                azihsm_key_kind kind, uint32_t *bits, azihsm_ecc_curve *curve)
{
    int has_bits = a->has_bits || b->has_bits;
    uint32_t want = a->has_bits ? a->bits : b->bits;

    if (a->has_bits && b->has_bits && a->bits != b->bits)
        return AZIHSM_STATUS_INVALID_KEY_SIZE;
    if (a->has_curve && b->has_curve && a->curve != b->curve)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    *curve = a->has_curve ? a->curve : b->has_curve ? b->curve : 0;
    if (kind == AZIHSM_KEY_KIND_ECC) {
        if (*curve == 0)
            return AZIHSM_STATUS_INVALID_KEY_PROPS;
        if (has_bits && want != emu_curve_bits(*curve))
            return AZIHSM_STATUS_INVALID_KEY_SIZE;
        *bits = emu_curve_bits(*curve);
        return AZIHSM_STATUS_SUCCESS;
    }
    if (*curve != 0)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    if (!has_bits)
        return AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
    if (!rsa_bits_ok(want))
        return AZIHSM_STATUS_INVALID_KEY_SIZE;
    *bits = want;
    return AZIHSM_STATUS_SUCCESS;
}

/* Public key, blob, handles: the common end of every pair's creation. */
static azihsm_status pair_finish(struct emu_material *m, azihsm_handle sh,
                                 const uint8_t sid[EMU_ID_LEN], azihsm_handle *priv,
                                 azihsm_handle *pub)
{
    azihsm_status st;

    if (m->session)
        memcpy(m->session_id, sid, EMU_ID_LEN);
    st = emu_spki(m->pkey, &m->pub_der, &m->pub_der_len);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = emu_mask(m);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = emu_keys_insert(sh, m, 1, priv, pub);
    return st;
}

/* ---- generation ---------------------------------------------------------- */

EMU_EXPORT azihsm_status azihsm_key_gen_pair(azihsm_handle session, struct azihsm_algo *algo,
                                             const struct azihsm_key_prop_list *priv_props,
                                             const struct azihsm_key_prop_list *pub_props,
                                             azihsm_handle *priv, azihsm_handle *pub)
{
    uint8_t sid[EMU_ID_LEN];
    struct props pv, pb;
    struct emu_material *m = NULL;
    azihsm_key_kind kind;
    unsigned fams;
    azihsm_status st;

    if (algo == NULL || priv_props == NULL || pub_props == NULL || priv == NULL || pub == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = session_begin(session, sid);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    switch (algo->id) {
    case AZIHSM_ALGO_ID_EC_KEY_PAIR_GEN:
        kind = AZIHSM_KEY_KIND_ECC;
        fams = FAM_SIGN | FAM_AGREE;
        break;
    case AZIHSM_ALGO_ID_RSA_KEY_UNWRAPPING_KEY_PAIR_GEN:
        kind = AZIHSM_KEY_KIND_RSA;
        fams = FAM_UNWRAP;
        break;
    default:
        /* RSA keys other than the unwrapping key are import-only. */
        return AZIHSM_STATUS_UNSUPPORTED_ALGORITHM;
    }
    if ((st = props_parse(priv_props, &pv)) != AZIHSM_STATUS_SUCCESS ||
        (st = props_parse(pub_props, &pb)) != AZIHSM_STATUS_SUCCESS)
        return st;
    m = emu_material_new();
    if (m == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    if ((st = pair_check(&pv, &pb, kind, fams, m)) != AZIHSM_STATUS_SUCCESS ||
        (st = pair_shape(&pv, &pb, kind, &m->bits, &m->curve)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    m->local = 1;
    if (kind == AZIHSM_KEY_KIND_ECC)
        m->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", emu_curve_group(m->curve));
    else
        m->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)m->bits);
    if (m->pkey == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    st = pair_finish(m, session, sid, priv, pub);
out:
    emu_material_put(m);
    return st;
}

/* ---- RSA-AES unwrap ------------------------------------------------------ */

static const char *kwp_cipher(uint32_t bits)
{
    switch (bits) {
    case 128:
        return "AES-128-WRAP-PAD";
    case 192:
        return "AES-192-WRAP-PAD";
    case 256:
        return "AES-256-WRAP-PAD";
    default:
        return NULL;
    }
}

/* RFC 5649 unwrap; *out is malloc'd (wipe it), 0 on failure. */
static int kwp_unwrap(uint32_t bits, const uint8_t *key, const uint8_t *in, size_t inlen,
                      uint8_t **out, size_t *outlen)
{
    EVP_CIPHER *ciph = EVP_CIPHER_fetch(NULL, kwp_cipher(bits), NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t *buf = malloc(inlen + 16);
    int n = 0, f = 0, ok = 0;

    if (ciph != NULL && c != NULL && buf != NULL && inlen >= 16 && inlen % 8 == 0 &&
        EVP_DecryptInit_ex2(c, ciph, key, NULL, NULL) == 1 &&
        EVP_DecryptUpdate(c, buf, &n, in, (int)inlen) == 1 && n > 0 &&
        EVP_DecryptFinal_ex(c, buf + n, &f) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(ciph);
    if (!ok) {
        emu_wipe_free(buf, buf ? inlen + 16 : 0);
        return 0;
    }
    *out = buf;
    *outlen = (size_t)(n + f);
    return 1;
}

/* A DER private key: PKCS#8, else PKCS#1 RSAPrivateKey, else SEC1. */
static EVP_PKEY *parse_private_der(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *k = NULL;

    if (p8 != NULL && p == der + len)
        k = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (k != NULL)
        return k;
    p = der;
    k = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len);
    if (k != NULL && p == der + len)
        return k;
    EVP_PKEY_free(k);
    p = der;
    k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)len);
    if (k != NULL && p == der + len)
        return k;
    EVP_PKEY_free(k);
    return NULL;
}

static azihsm_status unwrap_params(const struct azihsm_algo *algo, uint32_t *aes_bits,
                                   const EVP_MD **md)
{
    const struct azihsm_algo_rsa_aes_key_wrap_params *kw = algo->params;
    const struct azihsm_algo_rsa_pkcs_oaep_params *oaep;

    if (kw == NULL || algo->len != sizeof(*kw) || kwp_cipher(kw->aes_key_bits) == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    oaep = kw->oaep_params;
    if (oaep == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    /* Any SHA-2 hash, with MGF1 on the same hash; no label. */
    if (oaep->hash_algo_id != AZIHSM_ALGO_ID_SHA256 && oaep->hash_algo_id != AZIHSM_ALGO_ID_SHA384 &&
        oaep->hash_algo_id != AZIHSM_ALGO_ID_SHA512)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    if (oaep->mgf1_hash_algo_id != emu_mgf1_for_hash(oaep->hash_algo_id))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    if (oaep->label != NULL && oaep->label->len != 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    *aes_bits = kw->aes_key_bits;
    *md = emu_md_for_hash(oaep->hash_algo_id);
    return AZIHSM_STATUS_SUCCESS;
}

EMU_EXPORT azihsm_status azihsm_key_unwrap_pair(struct azihsm_algo *algo,
                                                azihsm_handle unwrapping_key,
                                                const struct azihsm_buffer *wrapped,
                                                const struct azihsm_key_prop_list *priv_props,
                                                const struct azihsm_key_prop_list *pub_props,
                                                azihsm_handle *priv, azihsm_handle *pub)
{
    struct emu_key_ref ref;
    struct props pv, pb;
    struct emu_material *m = NULL;
    const uint8_t *in;
    uint32_t inlen, aes_bits = 0, bits = 0;
    azihsm_ecc_curve curve = 0;
    const EVP_MD *md = NULL;
    uint8_t aes[64], *der = NULL;
    size_t aeslen = 0, derlen = 0, modbytes;
    EVP_PKEY *k = NULL;
    azihsm_key_kind kind;
    azihsm_status st;

    if (algo == NULL || priv_props == NULL || pub_props == NULL || priv == NULL ||
        pub == NULL || emu_in(wrapped, &in, &inlen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = emu_key_begin(unwrapping_key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if (ref.type != EMU_H_PRIV || ref.m->kind != AZIHSM_KEY_KIND_RSA) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    if (algo->id != AZIHSM_ALGO_ID_RSA_AES_KEY_WRAP) {
        st = AZIHSM_STATUS_UNSUPPORTED_ALGORITHM;
        goto out;
    }
    if (!(ref.m->use_priv & EMU_USE_UNWRAP)) {
        st = AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION;
        goto out;
    }
    if ((st = unwrap_params(algo, &aes_bits, &md)) != AZIHSM_STATUS_SUCCESS ||
        (st = props_parse(priv_props, &pv)) != AZIHSM_STATUS_SUCCESS ||
        (st = props_parse(pub_props, &pb)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    m = emu_material_new();
    if (m == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    if ((st = props_need_class_kind(&pv)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    kind = pv.kind;
    if (kind != AZIHSM_KEY_KIND_RSA && kind != AZIHSM_KEY_KIND_ECC) {
        st = AZIHSM_STATUS_INVALID_KEY_PROPS;
        goto out;
    }
    if ((st = pair_check(&pv, &pb, kind,
                         kind == AZIHSM_KEY_KIND_RSA ? FAM_SIGN | FAM_ENC : FAM_SIGN | FAM_AGREE,
                         m)) != AZIHSM_STATUS_SUCCESS ||
        (st = pair_shape(&pv, &pb, kind, &bits, &curve)) != AZIHSM_STATUS_SUCCESS)
        goto out;

    /* RSA-OAEP(AES key) of the modulus size, then RFC 5649 of the key. */
    st = AZIHSM_STATUS_INVALID_ARGUMENT;
    modbytes = (size_t)EVP_PKEY_get_size(ref.m->pkey);
    if (inlen <= modbytes) {
        goto out;
    }
    {
        uint8_t *tmp = malloc(modbytes);
        int ok;

        if (tmp == NULL) {
            st = AZIHSM_STATUS_INTERNAL_ERROR;
            goto out;
        }
        ok = emu_rsa_decrypt(ref.m->pkey, RSA_PKCS1_OAEP_PADDING, md, md, NULL, 0, in, modbytes,
                             tmp, &aeslen) &&
             aeslen == aes_bits / 8u;
        if (ok)
            memcpy(aes, tmp, aeslen);
        emu_wipe_free(tmp, modbytes);
        if (!ok)
            goto out;
    }
    if (!kwp_unwrap(aes_bits, aes, in + modbytes, inlen - modbytes, &der, &derlen))
        goto out;
    k = parse_private_der(der, derlen);
    if (k == NULL)
        goto out;
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        if (kind != AZIHSM_KEY_KIND_RSA) {
            st = AZIHSM_STATUS_INVALID_KEY_PROPS;
            goto out;
        }
        if (!rsa_bits_ok((uint32_t)EVP_PKEY_get_bits(k)) || (uint32_t)EVP_PKEY_get_bits(k) != bits) {
            st = AZIHSM_STATUS_INVALID_KEY_SIZE;
            goto out;
        }
    } else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
        azihsm_ecc_curve kc = emu_curve_of(k);

        if (kc == 0) {
            st = AZIHSM_STATUS_UNSUPPORTED_KEY_KIND;
            goto out;
        }
        if (kind != AZIHSM_KEY_KIND_ECC || kc != curve) {
            st = AZIHSM_STATUS_INVALID_KEY_PROPS;
            goto out;
        }
    } else {
        st = AZIHSM_STATUS_UNSUPPORTED_KEY_KIND;
        goto out;
    }
    m->pkey = k;
    k = NULL;
    m->bits = bits;
    m->curve = curve;
    m->local = 0;
    st = pair_finish(m, ref.session, ref.session_id, priv, pub);
out:
    OPENSSL_cleanse(aes, sizeof(aes));
    emu_wipe_free(der, derlen);
    EVP_PKEY_free(k);
    emu_material_put(m);
    emu_key_end(&ref);
    return st;
}

/* ---- unmask ---------------------------------------------------------------- */

static azihsm_status unmask_common(azihsm_handle session, azihsm_key_kind kind,
                                   const struct azihsm_buffer *masked, int pair,
                                   azihsm_handle *priv, azihsm_handle *pub)
{
    uint8_t sid[EMU_ID_LEN];
    struct emu_material *m = NULL;
    const uint8_t *blob;
    uint32_t len;
    azihsm_status st;

    if (emu_in(masked, &blob, &len) != AZIHSM_STATUS_SUCCESS || priv == NULL ||
        (pair && pub == NULL))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = session_begin(session, sid);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if (pair ? (kind != AZIHSM_KEY_KIND_RSA && kind != AZIHSM_KEY_KIND_ECC)
             : (kind != AZIHSM_KEY_KIND_SHARED_SECRET && kind != AZIHSM_KEY_KIND_AES &&
                !emu_is_hmac_kind(kind)))
        return AZIHSM_STATUS_UNSUPPORTED_KEY_KIND;
    st = emu_unmask_blob(blob, len, &m);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    /* Callers try kinds in turn and rely on this status to go on. */
    if (m->kind != kind)
        st = AZIHSM_STATUS_INVALID_KEY;
    else if (m->session && CRYPTO_memcmp(m->session_id, sid, EMU_ID_LEN) != 0)
        st = AZIHSM_STATUS_INVALID_SESSION;
    else
        st = emu_keys_insert(session, m, pair, priv, pub);
    emu_material_put(m);
    return st;
}

EMU_EXPORT azihsm_status azihsm_key_unmask(azihsm_handle session, azihsm_key_kind kind,
                                           const struct azihsm_buffer *masked,
                                           azihsm_handle *key)
{
    return unmask_common(session, kind, masked, 0, key, NULL);
}

EMU_EXPORT azihsm_status azihsm_key_unmask_pair(azihsm_handle session, azihsm_key_kind kind,
                                                const struct azihsm_buffer *masked,
                                                azihsm_handle *priv, azihsm_handle *pub)
{
    return unmask_common(session, kind, masked, 1, priv, pub);
}

/* ---- derivation ------------------------------------------------------------ */

/*
 * Properties of a derived secret. ecdh_curve != 0: the ECDH output, a
 * SHARED_SECRET whose BIT_LEN is the curve's size. Otherwise a KDF output
 * under kdf_md: AES (128/192/256) or the HMAC kind of the same hash.
 */
static azihsm_status secret_check(const struct props *p, azihsm_ecc_curve ecdh_curve,
                                  const EVP_MD *kdf_md, struct emu_material *m)
{
    azihsm_status st = props_need_class_kind(p);

    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if (p->cls != AZIHSM_KEY_CLASS_SECRET || p->has_curve)
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    if (ecdh_curve != 0) {
        if (p->kind != AZIHSM_KEY_KIND_SHARED_SECRET || p->use != EMU_USE_DERIVE)
            return AZIHSM_STATUS_INVALID_KEY_PROPS;
        if (!p->has_bits)
            return AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        if (p->bits != emu_curve_bits(ecdh_curve))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
    } else if (p->kind == AZIHSM_KEY_KIND_AES) {
        if (p->use == 0 || (p->use & ~(EMU_USE_ENCRYPT | EMU_USE_DECRYPT)))
            return AZIHSM_STATUS_INVALID_KEY_PROPS;
        if (!p->has_bits)
            return AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        if (p->bits != 128 && p->bits != 192 && p->bits != 256)
            return AZIHSM_STATUS_INVALID_KEY_SIZE;
    } else if (emu_is_hmac_kind(p->kind)) {
        const EVP_MD *hm = emu_md_for_hmac_kind(p->kind);

        if (p->use == 0 || (p->use & ~(EMU_USE_SIGN | EMU_USE_VERIFY)) || hm != kdf_md)
            return AZIHSM_STATUS_INVALID_KEY_PROPS;
        if (!p->has_bits)
            return AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        if (p->bits != (uint32_t)EVP_MD_get_size(hm) * 8u)
            return AZIHSM_STATUS_INVALID_KEY_PROPS;
    } else {
        return AZIHSM_STATUS_INVALID_KEY_PROPS;
    }
    m->kind = p->kind;
    m->bits = p->bits;
    m->use_priv = p->use;
    m->label_priv_len = (uint8_t)p->label_len;
    if (p->label_len)
        memcpy(m->label_priv, p->label, p->label_len);
    return AZIHSM_STATUS_SUCCESS;
}

static azihsm_status ecdh(const struct emu_material *base, const struct azihsm_algo *algo,
                          uint8_t **out, uint32_t *outlen)
{
    const struct azihsm_algo_ecdh_params *pp = algo->params;
    const uint8_t *der;
    const unsigned char *q;
    uint32_t derlen;
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *c = NULL;
    size_t n = 0;
    azihsm_status st = AZIHSM_STATUS_INVALID_ARGUMENT;

    if (pp == NULL || algo->len != sizeof(*pp) ||
        emu_in(pp->pub_key, &der, &derlen) != AZIHSM_STATUS_SUCCESS || derlen == 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    q = der;
    peer = d2i_PUBKEY(NULL, &q, (long)derlen);
    if (peer == NULL || q != der + derlen || emu_curve_of(peer) != base->curve)
        goto out;
    c = EVP_PKEY_CTX_new_from_pkey(NULL, base->pkey, NULL);
    if (c == NULL || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer_ex(c, peer, 1) != 1)
        goto out;
    if (EVP_PKEY_derive(c, NULL, &n) != 1 || n != emu_curve_field_bytes(base->curve)) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    *out = malloc(n);
    if (*out == NULL || EVP_PKEY_derive(c, *out, &n) != 1) {
        emu_wipe_free(*out, n);
        *out = NULL;
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    *outlen = (uint32_t)n;
    st = AZIHSM_STATUS_SUCCESS;
out:
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(peer);
    return st;
}

/* RFC 5869, written out so the test's comparison with EVP_KDF means something. */
static azihsm_status hkdf(const EVP_MD *md, const uint8_t *ikm, size_t ikmlen,
                          const uint8_t *salt, size_t saltlen, const uint8_t *info,
                          size_t infolen, uint8_t *out, size_t outlen)
{
    size_t h = (size_t)EVP_MD_get_size(md), done = 0, tlen = 0;
    uint8_t prk[EVP_MAX_MD_SIZE], t[EVP_MAX_MD_SIZE];
    uint8_t *buf = malloc(h + infolen + 1);
    azihsm_status st = AZIHSM_STATUS_INTERNAL_ERROR;

    if (buf == NULL || outlen > 255 * h)
        goto out;
    if (emu_hmac(md, salt, saltlen, ikm, ikmlen, prk) != AZIHSM_STATUS_SUCCESS)
        goto out;
    for (uint8_t i = 1; done < outlen; i++) {
        size_t n = 0, take;

        memcpy(buf, t, tlen);
        n += tlen;
        if (infolen)
            memcpy(buf + n, info, infolen);
        n += infolen;
        buf[n++] = i;
        if (emu_hmac(md, prk, h, buf, n, t) != AZIHSM_STATUS_SUCCESS)
            goto out;
        tlen = h;
        take = outlen - done < h ? outlen - done : h;
        memcpy(out + done, t, take);
        done += take;
    }
    st = AZIHSM_STATUS_SUCCESS;
out:
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(t, sizeof(t));
    emu_wipe_free(buf, buf ? h + infolen + 1 : 0);
    return st;
}

/*
 * SP 800-108 counter mode, HMAC PRF: K(i) = PRF(KI, [i]32 || label || 0x00
 * || context || [L]32), L the output length in bits.
 */
static azihsm_status kbkdf(const EVP_MD *md, const uint8_t *ki, size_t kilen,
                           const uint8_t *label, size_t labellen, const uint8_t *ctx,
                           size_t ctxlen, uint8_t *out, size_t outlen)
{
    size_t h = (size_t)EVP_MD_get_size(md), done = 0, n = 4 + labellen + 1 + ctxlen + 4;
    uint8_t *buf = malloc(n), k[EVP_MAX_MD_SIZE];
    uint32_t L = (uint32_t)(outlen * 8u);
    azihsm_status st = AZIHSM_STATUS_INTERNAL_ERROR;

    if (buf == NULL)
        goto out;
    if (labellen)
        memcpy(buf + 4, label, labellen);
    buf[4 + labellen] = 0;
    if (ctxlen)
        memcpy(buf + 5 + labellen, ctx, ctxlen);
    buf[n - 4] = (uint8_t)(L >> 24);
    buf[n - 3] = (uint8_t)(L >> 16);
    buf[n - 2] = (uint8_t)(L >> 8);
    buf[n - 1] = (uint8_t)L;
    for (uint32_t i = 1; done < outlen; i++) {
        size_t take;

        buf[0] = (uint8_t)(i >> 24);
        buf[1] = (uint8_t)(i >> 16);
        buf[2] = (uint8_t)(i >> 8);
        buf[3] = (uint8_t)i;
        if (emu_hmac(md, ki, kilen, buf, n, k) != AZIHSM_STATUS_SUCCESS)
            goto out;
        take = outlen - done < h ? outlen - done : h;
        memcpy(out + done, k, take);
        done += take;
    }
    st = AZIHSM_STATUS_SUCCESS;
out:
    OPENSSL_cleanse(k, sizeof(k));
    emu_wipe_free(buf, buf ? n : 0);
    return st;
}

static azihsm_status kdf(const struct emu_material *base, const struct azihsm_algo *algo,
                         const struct props *p, struct emu_material *m)
{
    const uint8_t *a, *b;
    uint32_t alen, blen;
    azihsm_algo_id hmac_id;
    const EVP_MD *md;
    azihsm_status st;

    if (algo->id == AZIHSM_ALGO_ID_HKDF_DERIVE) {
        const struct azihsm_algo_hkdf_params *hp = algo->params;

        if (hp == NULL || algo->len != sizeof(*hp) ||
            emu_in_opt(hp->salt, &a, &alen) != AZIHSM_STATUS_SUCCESS ||
            emu_in_opt(hp->info, &b, &blen) != AZIHSM_STATUS_SUCCESS)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        hmac_id = hp->hmac_algo_id;
    } else {
        const struct azihsm_algo_kbkdf_counter_params *kp = algo->params;

        if (kp == NULL || algo->len != sizeof(*kp) ||
            emu_in_opt(kp->label, &a, &alen) != AZIHSM_STATUS_SUCCESS ||
            emu_in_opt(kp->context, &b, &blen) != AZIHSM_STATUS_SUCCESS)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        hmac_id = kp->hmac_algo_id;
    }
    md = emu_md_for_hmac_algo(hmac_id);
    if (md == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    st = secret_check(p, 0, md, m);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    m->secret_len = m->bits / 8u;
    m->secret = malloc(m->secret_len);
    if (m->secret == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    if (algo->id == AZIHSM_ALGO_ID_HKDF_DERIVE)
        return hkdf(md, base->secret, base->secret_len, a, alen, b, blen, m->secret,
                    m->secret_len);
    return kbkdf(md, base->secret, base->secret_len, a, alen, b, blen, m->secret, m->secret_len);
}

EMU_EXPORT azihsm_status azihsm_key_derive(azihsm_handle session, struct azihsm_algo *algo,
                                           azihsm_handle base_key,
                                           const struct azihsm_key_prop_list *props,
                                           azihsm_handle *key)
{
    struct emu_key_ref ref;
    struct props p;
    struct emu_material *m = NULL;
    azihsm_status st;

    if (algo == NULL || props == NULL || key == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    st = emu_handle_get_locked(session, EMU_H_SESSION) ? AZIHSM_STATUS_SUCCESS
                                                        : AZIHSM_STATUS_INVALID_HANDLE;
    if (st == AZIHSM_STATUS_SUCCESS) {
        struct emu_key *k = emu_handle_get_key_locked(base_key, NULL);

        if (k == NULL)
            st = AZIHSM_STATUS_INVALID_HANDLE;
        else if (k->session != session)
            st = AZIHSM_STATUS_INVALID_SESSION; /* the base key lives elsewhere */
    }
    emu_unlock();
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    st = emu_key_begin(base_key, &ref);
    if (st != AZIHSM_STATUS_SUCCESS)
        return st;
    if (algo->id != AZIHSM_ALGO_ID_ECDH && algo->id != AZIHSM_ALGO_ID_HKDF_DERIVE &&
        algo->id != AZIHSM_ALGO_ID_KBKDF_COUNTER_DERIVE) {
        st = AZIHSM_STATUS_UNSUPPORTED_ALGORITHM;
        goto out;
    }
    if (algo->id == AZIHSM_ALGO_ID_ECDH
            ? (ref.type != EMU_H_PRIV || ref.m->kind != AZIHSM_KEY_KIND_ECC)
            : (ref.type != EMU_H_SECRET || ref.m->kind != AZIHSM_KEY_KIND_SHARED_SECRET)) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    if (!(ref.m->use_priv & EMU_USE_DERIVE)) {
        st = AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION;
        goto out;
    }
    if ((st = props_parse(props, &p)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    m = emu_material_new();
    if (m == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    if (algo->id == AZIHSM_ALGO_ID_ECDH) {
        /* Parameters are looked at before the properties, as a device would. */
        st = ecdh(ref.m, algo, &m->secret, &m->secret_len);
        if (st == AZIHSM_STATUS_SUCCESS)
            st = secret_check(&p, ref.m->curve, NULL, m);
    } else {
        st = kdf(ref.m, algo, &p, m);
    }
    if (st != AZIHSM_STATUS_SUCCESS)
        goto out;
    /* The derived key keeps the base key's session binding. */
    m->session = ref.m->session || p.session;
    if (m->session)
        memcpy(m->session_id, ref.session_id, EMU_ID_LEN);
    m->local = 1;
    st = emu_mask(m);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = emu_keys_insert(session, m, 0, key, NULL);
out:
    emu_material_put(m);
    emu_key_end(&ref);
    return st;
}

/* ---- delete and properties ------------------------------------------------- */

EMU_EXPORT azihsm_status azihsm_key_delete(azihsm_handle key)
{
    struct emu_key *k;
    struct emu_session *s;
    azihsm_status st = AZIHSM_STATUS_SUCCESS;

    emu_lock();
    k = emu_handle_get_key_locked(key, NULL);
    if (k == NULL || (s = emu_key_session_locked(k)) == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else
        st = emu_stale_locked(s);
    if (st == AZIHSM_STATUS_SUCCESS)
        emu_handle_release_locked(key);
    emu_unlock();
    if (st == AZIHSM_STATUS_SUCCESS)
        emu_key_free(k);
    return st;
}

static azihsm_status prop_bool_out(struct azihsm_key_prop *prop, int v)
{
    uint8_t b = v ? 1 : 0;

    return emu_prop_out(prop->val, &prop->len, &b, 1);
}

static azihsm_status prop_u32_out(struct azihsm_key_prop *prop, uint32_t v)
{
    return emu_prop_out(prop->val, &prop->len, &v, sizeof(v));
}

EMU_EXPORT azihsm_status azihsm_key_get_prop(azihsm_handle key, struct azihsm_key_prop *prop)
{
    struct emu_key *k;
    struct emu_session *s;
    const struct emu_material *m;
    azihsm_status st;
    uint16_t use;
    int pub;

    if (prop == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    k = emu_handle_get_key_locked(key, NULL);
    if (k == NULL || (s = emu_key_session_locked(k)) == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    if ((st = emu_stale_locked(s)) != AZIHSM_STATUS_SUCCESS)
        goto out;
    m = k->m;
    pub = k->cls == AZIHSM_KEY_CLASS_PUBLIC;
    use = pub ? m->use_pub : m->use_priv;
    switch (prop->id) {
    case AZIHSM_KEY_PROP_ID_CLASS:
        st = prop_u32_out(prop, k->cls);
        break;
    case AZIHSM_KEY_PROP_ID_KIND:
        st = prop_u32_out(prop, m->kind);
        break;
    case AZIHSM_KEY_PROP_ID_BIT_LEN:
        st = prop_u32_out(prop, m->bits);
        break;
    case AZIHSM_KEY_PROP_ID_EC_CURVE:
        st = m->kind == AZIHSM_KEY_KIND_ECC ? prop_u32_out(prop, m->curve)
                                           : AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        break;
    case AZIHSM_KEY_PROP_ID_LABEL:
        st = pub ? emu_prop_out(prop->val, &prop->len, m->label_pub, m->label_pub_len)
                 : emu_prop_out(prop->val, &prop->len, m->label_priv, m->label_priv_len);
        break;
    case AZIHSM_KEY_PROP_ID_PUB_KEY_INFO:
        st = m->pub_der != NULL ? emu_prop_out(prop->val, &prop->len, m->pub_der, m->pub_der_len)
                                : AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        break;
    case AZIHSM_KEY_PROP_ID_MASKED_KEY:
        st = emu_prop_out(prop->val, &prop->len, m->blob, m->blob_len);
        break;
    case AZIHSM_KEY_PROP_ID_SESSION:
        st = prop_bool_out(prop, m->session);
        break;
    case AZIHSM_KEY_PROP_ID_LOCAL:
        st = prop_bool_out(prop, m->local);
        break;
    case AZIHSM_KEY_PROP_ID_SENSITIVE:
        st = prop_bool_out(prop, !pub); /* public halves are not sensitive */
        break;
    case AZIHSM_KEY_PROP_ID_EXTRACTABLE:
        st = prop_bool_out(prop, 0);
        break;
    case AZIHSM_KEY_PROP_ID_ENCRYPT:
    case AZIHSM_KEY_PROP_ID_DECRYPT:
    case AZIHSM_KEY_PROP_ID_SIGN:
    case AZIHSM_KEY_PROP_ID_VERIFY:
    case AZIHSM_KEY_PROP_ID_WRAP:
    case AZIHSM_KEY_PROP_ID_UNWRAP:
    case AZIHSM_KEY_PROP_ID_DERIVE:
        st = prop_bool_out(prop, (use & use_bit(prop->id)) != 0);
        break;
    default:
        st = AZIHSM_STATUS_UNSUPPORTED_PROPERTY;
        break;
    }
out:
    emu_unlock();
    return st;
}
