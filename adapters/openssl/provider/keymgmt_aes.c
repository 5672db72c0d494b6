/*
 * Key management for AES keys held by a backend (Key Vault's oct/oct-HSM).
 *
 * Such a key has no public half, so unlike keymgmt.c there is no EVP_PKEY
 * behind the object: it is the host's version-pinned reference, the key
 * size (0 when the backend does not know it) and nothing else. The key bytes never reach this process; the only
 * thing OpenSSL can do with the key is the asym_cipher of the same name
 * (cipher_aeskw.c), which wraps and unwraps in the backend.
 *
 * The keymgmt is registered under HB_AES_KW_NAME, a name of our own: keys
 * come from our store (managedhsm:…), which names that keymgmt as the
 * object's data type, so applications never need to spell it. There is no
 * import, export or generation: a local AES key has nothing to gain from a
 * provider whose purpose is keys that are not local.
 */
#include <stdlib.h>
#include <string.h>

#include "aeskw.h"
#include "conn.h"
#include "errors.h"
#include "provider.h"

HB_KEY *hb_oct_key_from_info(HB_PROV_CTX *provctx, const void *keyinfo)
{
    const Hsmbridge__Host__V1__KeyInfo *info = keyinfo;
    HB_KEY *key;

    /*
     * Key Vault's oct-HSM sizes; anything else is not an AES key. 0 is a
     * size the backend does not know: Managed HSM never says an oct key's
     * size, so a key the backend did not create itself arrives so. Such a
     * key still wraps (cipher_aeskw.c): RFC 3394 needs no size on the wire,
     * and a sized algorithm is checked by the backend instead of here.
     */
    if (info->bits != 0 && info->bits != 128 && info->bits != 192
        && info->bits != 256) {
        HB_RAISE(provctx, HB_R_BAD_KEY,
                 "%s is a %d-bit symmetric key; only 128, 192 and 256-bit "
                 "AES keys can be used for key wrapping", info->reference,
                 (int)info->bits);
        return NULL;
    }
    key = hb_key_new(provctx, HB_KT_OCT);
    if (key == NULL)
        return NULL;
    key->bits = info->bits;
    key->reference = hb_strdup(info->reference);
    key->version = hb_strdup(info->version != NULL ? info->version : "");
    if (key->reference == NULL || key->version == NULL) {
        hb_key_free(key);
        return NULL;
    }
    HB_DEBUG("key %s version %s (AES, %d bits%s)", key->reference,
             key->version, key->bits, key->bits == 0 ? ": size unknown" : "");
    return key;
}

static void *aes_new(void *provctx)
{
    /* An empty object; only load() fills one in. */
    return hb_key_new(provctx, HB_KT_OCT);
}

static void aes_free(void *keydata)
{
    hb_key_free(keydata);
}

/* The reference is the address of a key object made by our store. */
static void *aes_load(const void *reference, size_t reference_sz)
{
    HB_KEY *key;

    if (reference == NULL || reference_sz != sizeof(HB_KEY *))
        return NULL;
    key = *(HB_KEY *const *)reference;
    if (key == NULL || key->magic != HB_KEY_MAGIC || key->type != HB_KT_OCT)
        return NULL;
    hb_key_up_ref(key);
    HB_DEBUG("loaded %s", key->reference);
    return key;
}

/*
 * A backend AES key "has" whatever is asked: its secret exists (in the
 * backend) and it has no separate public half or domain parameters that
 * could be missing. An empty object has nothing.
 */
static int aes_has(const void *keydata, int selection)
{
    const HB_KEY *key = keydata;

    if (key == NULL)
        return 0;
    return (selection & OSSL_KEYMGMT_SELECT_ALL) == 0 || key->reference != NULL;
}

/* Two objects are the same key when they name the same key version. */
static int aes_match(const void *keydata1, const void *keydata2, int selection)
{
    const HB_KEY *a = keydata1, *b = keydata2;

    (void)selection;
    if (a == NULL || b == NULL || a->type != HB_KT_OCT || b->type != HB_KT_OCT)
        return 0;
    if (a->reference == NULL || b->reference == NULL)
        return a->reference == b->reference;
    return strcmp(a->reference, b->reference) == 0
        && strcmp(a->version, b->version) == 0;
}

static int aes_get_params(void *keydata, OSSL_PARAM params[])
{
    HB_KEY *key = keydata;
    OSSL_PARAM *p;

    if (key == NULL || key->reference == NULL)
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, key->bits))
        return 0;
    /* AES-n offers n bits of security (SP 800-57). */
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, key->bits))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
    if (p != NULL && !OSSL_PARAM_set_int(p, HB_AES_KW_MAX_OUTPUT))
        return 0;
    return 1;
}

static const OSSL_PARAM *aes_gettable_params(void *provctx)
{
    static const OSSL_PARAM gettable[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_END
    };

    (void)provctx;
    return gettable;
}

static const char *aes_query_operation_name(int operation_id)
{
    return operation_id == OSSL_OP_ASYM_CIPHER ? HB_AES_KW_NAME : NULL;
}

static void *aes_dup(const void *keydata, int selection)
{
    const HB_KEY *src = keydata;
    HB_KEY *key;

    (void)selection;
    if (src == NULL)
        return NULL;
    key = hb_key_new(src->provctx, HB_KT_OCT);
    if (key == NULL || src->reference == NULL)
        return key;
    key->bits = src->bits;
    key->reference = hb_strdup(src->reference);
    key->version = hb_strdup(src->version);
    if (key->reference == NULL || key->version == NULL) {
        hb_key_free(key);
        return NULL;
    }
    return key;
}

const OSSL_DISPATCH hb_aes_kw_keymgmt_functions[] = {
    { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))aes_new },
    { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))aes_free },
    { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))aes_load },
    { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))aes_has },
    { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))aes_match },
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))aes_get_params },
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))aes_gettable_params },
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
      (void (*)(void))aes_query_operation_name },
    { OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))aes_dup },
    { 0, NULL }
};
