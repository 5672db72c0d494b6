/*
 * hsmbridge OpenSSL 3 provider: shared declarations.
 *
 * The provider never holds private key material. A key object carries the
 * host's canonical reference and a public-only EVP_PKEY that lives in a
 * private library context with only OpenSSL's default provider loaded; every
 * public-key operation (parameters, export, verification) is delegated to
 * that EVP_PKEY, and only signing crosses the Unix socket to hsmhost.
 */
#ifndef HSMBRIDGE_PROVIDER_H
#define HSMBRIDGE_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define HB_PROV_NAME "hsmbridge"
#define HB_PROV_VERSION "0.1.0"
#define HB_PROV_BUILDINFO "hsmbridge-openssl " HB_PROV_VERSION

#define HB_REF_PEM_LABEL "HSMBRIDGE KEY REFERENCE"
#define HB_REF_VERSION "hsmbridge-keyref-v1"
/* Data structure name our PEM decoder hands to our DER decoders. */
#define HB_REF_STRUCTURE "hsmbridge-keyref"
/*
 * The key-reference PKCS#8 form (decoder.c, encoder.c): a PrivateKeyInfo
 * under the label "PRIVATE KEY" whose algorithm is hsmbridge's own OID, no
 * parameters, and whose privateKey is the key-reference DER above. There
 * is no registered arc for the project, so the OID is a UUID-derived one
 * (ITU-T X.667: 2.25.<UUID as an integer>, no registration needed), from
 * the UUID 64bb7953-9efb-480e-bdd7-6f28868a1feb; core/refpem.go has the
 * same. The key manager and decoder of that name exist so that libcrypto's
 * PKCS#8 decoding, which dispatches on the algorithm, finds us.
 */
#define HB_REF_OID "2.25.133896219887739542807793727763915612139"
#define HB_REF_ALG_NAMES "HSMBRIDGE-KEYREF:" HB_REF_OID
#define HB_REF_PKCS8_PEM_LABEL "PRIVATE KEY"
/* The OID's DER contents octets (decoder.c). */
extern const unsigned char hb_ref_oid_der[20];

struct hb_pool; /* conn.c */
struct hb_masked; /* store_azihsm.c */
struct hb_mgen; /* keygen.c */

typedef struct hb_prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx; /* tied to the core, for BIO_new_from_core_bio */

    /* Core upcalls. */
    OSSL_FUNC_core_get_params_fn *core_get_params;
    OSSL_FUNC_core_new_error_fn *core_new_error;
    OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
    OSSL_FUNC_core_vset_error_fn *core_vset_error;

    char *name;        /* name the core loaded us under */
    char *module_path; /* our .so, to find ../bin/hsmhost */
    const char *propq; /* "provider=akv" etc., for every algorithm */

    /* Connection settings, fixed at init. */
    char *socket_path;
    char *hsmhost_path;
    int autostart;
    int timeout_ms;
    /* hsmbridge_retry_ms: how long requests fail at once after the host
     * failed slowly (circuit breaker, conn.c); 0: never. */
    int retry_ms;
    /* hsmbridge_host_uid: uids besides root and our own whose hsmhost
     * socket we trust (socket.c). */
#define HB_MAX_HOST_UIDS 8
    uid_t host_uids[HB_MAX_HOST_UIDS];
    int nhost_uids;
    /* A connection setting that is not valid: every request fails with
     * this message instead of using a guess (conn.c). */
    char *conf_error;

    struct hb_pool *pool;

    OSSL_ALGORITHM *keymgmt_algs;
    OSSL_ALGORITHM *signature_algs;
    OSSL_ALGORITHM *asym_cipher_algs;
    OSSL_ALGORITHM *store_algs;
    OSSL_ALGORITHM *decoder_algs;
    OSSL_ALGORITHM *digest_algs;
    OSSL_ALGORITHM *encoder_algs;
    OSSL_ALGORITHM *rand_algs;
    /* derive.c: ECDH, HKDF, HMAC on masked keys (azihsm name only). */
    OSSL_ALGORITHM *keyexch_algs;
    OSSL_ALGORITHM *kdf_algs;
    OSSL_ALGORITHM *mac_algs;
} HB_PROV_CTX;

/* Key objects (keymgmt.c). */
#define HB_KEY_MAGIC 0x48424b59u /* "HBKY" */

typedef enum { HB_KT_NONE = 0, HB_KT_RSA = 1, HB_KT_EC = 2,
               HB_KT_OCT = 3 /* AES, no pkey: see aeskw.h */ } hb_key_type;

/*
 * A backend key has a reference and a public-only pkey. A key without a
 * reference is "local": libcrypto created it through our keymgmt (import,
 * generation), which happens when this provider is activated before the
 * default one and an application asks for "RSA"/"EC" without properties.
 * Local keys are kept in the private library context and behave exactly like
 * default-provider keys (their private half, if any, is in pkey).
 */
typedef struct hb_key {
    uint32_t magic;
    int refcnt; /* atomic */
    HB_PROV_CTX *provctx;
    hb_key_type type;
    char *reference; /* canonical, version-pinned; NULL for local keys */
    char *version;
    EVP_PKEY *pkey;  /* in the private libctx */
    int local_private; /* local key with private material */
    int bits;        /* HB_KT_OCT only (the others ask pkey) */
    int pss;         /* HB_KT_RSA only: an RSA-PSS key (pkey is RSA-PSS) */
    struct hb_masked *masked; /* opened from a masked blob (azihsm://) */
    /*
     * Masked keys only: the backend's allowed operations lack "encrypt".
     * Encryption is local, so nothing else would refuse it; the Integrated
     * HSM encrypts only with keyEncipherment keys, and so do we.
     */
    int no_encrypt;
} HB_KEY;

HB_KEY *hb_key_new(HB_PROV_CTX *provctx, hb_key_type type);
HB_KEY *hb_key_from_info(HB_PROV_CTX *provctx, const void *keyinfo);
int hb_key_up_ref(HB_KEY *key);
void hb_key_free(HB_KEY *key);
int hb_key_can_sign(const HB_KEY *key);
/*
 * An operation's init: takes key into *slot (with a reference), or keeps the
 * key a previous init set when key is NULL. A key of another type, or one
 * without a public key (need_pkey) or a backend reference (!need_pkey), is
 * refused with `refusal`.
 */
int hb_ctx_take_key(HB_PROV_CTX *provctx, HB_KEY **slot, HB_KEY *key,
                    hb_key_type type, int need_pkey, const char *refusal);

/* The private library context with only the default provider. */
OSSL_LIB_CTX *hb_priv_libctx(void);
/* Drop what digest.c and keymgmt.c keep from it; before it is freed. */
void hb_digest_release(void);
void hb_keymgmt_release(void);

/* Dispatch tables. */
extern const OSSL_DISPATCH hb_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH hb_rsapss_keymgmt_functions[];
extern const OSSL_DISPATCH hb_ec_keymgmt_functions[];
/* RSA signatures defaulting to PSS, for RSA-PSS keys (sig_pss.c). */
extern OSSL_DISPATCH hb_rsapss_signature_functions[];
void hb_rsapss_signature_init(void);
extern const OSSL_DISPATCH hb_rsa_signature_functions[];
extern const OSSL_DISPATCH hb_ecdsa_signature_functions[];
extern const OSSL_DISPATCH hb_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH hb_store_functions[];
extern const OSSL_DISPATCH hb_pem_decoder_functions[];
extern const OSSL_DISPATCH hb_der_rsa_decoder_functions[];
extern const OSSL_DISPATCH hb_der_ec_decoder_functions[];
extern const OSSL_DISPATCH hb_pki_decoder_functions[];
extern const OSSL_DISPATCH hb_keyref_keymgmt_functions[];
extern const OSSL_DISPATCH hb_sha1_digest_functions[];    /* digest.c */
extern const OSSL_DISPATCH hb_sha256_digest_functions[];
extern const OSSL_DISPATCH hb_sha384_digest_functions[];
extern const OSSL_DISPATCH hb_sha512_digest_functions[];
extern const OSSL_DISPATCH hb_spki_der_encoder_functions[]; /* encoder.c */
extern const OSSL_DISPATCH hb_spki_pem_encoder_functions[];
extern const OSSL_DISPATCH hb_pki_der_encoder_functions[];
extern const OSSL_DISPATCH hb_pki_pem_encoder_functions[];
extern const OSSL_DISPATCH hb_ts_der_encoder_functions[];
extern const OSSL_DISPATCH hb_text_encoder_functions[];
extern const OSSL_DISPATCH hb_rand_functions[];            /* rand.c */

/* store.c: load a key by reference and hand it to an object callback. */
int hb_load_key_object(HB_PROV_CTX *provctx, const char *reference,
                       const char *want_type, OSSL_CALLBACK *cb, void *cbarg,
                       int *delivered);
/* Hands a key object to an object callback; consumes the caller's key. */
int hb_deliver_key_object(HB_PROV_CTX *provctx, HB_KEY *key,
                          const char *want_type, int public_only,
                          OSSL_CALLBACK *cb, void *cbarg, int *delivered);

/* store_azihsm.c: azihsm://<path>;type=ec|rsa|rsa-pss, masked blob files. */
HB_KEY *hb_azihsm_open_key(HB_PROV_CTX *provctx, const char *uri);
/*
 * A key object for a masked key the host opened (info: a KeyInfo whose
 * version is the handle). type is "ec", "rsa" or "rsa-pss"; uri the
 * canonical unpinned azihsm:// reference; file names the blob in messages.
 */
HB_KEY *hb_masked_key_new(HB_PROV_CTX *provctx, const void *info,
                          const char *uri, const char *type, const char *file,
                          const unsigned char *blob, size_t bloblen);
struct hb_masked *hb_masked_up_ref(struct hb_masked *m);
void hb_masked_free(struct hb_masked *m);

/* keygen.c: key generation and import into the backend as masked keys. */
struct hb_mgen *hb_mgen_new(void);
void hb_mgen_free(struct hb_mgen *mg);
/* Takes the parameters it knows (group, bits, azihsm.*); 0 on a bad value. */
int hb_mgen_set_params(HB_PROV_CTX *provctx, struct hb_mgen *mg,
                       const OSSL_PARAM params[]);
/* Whether any azihsm.* parameter was given: then the backend makes the key. */
int hb_mgen_active(const struct hb_mgen *mg);
/* The default provider's settable generation parameters plus ours. */
const OSSL_PARAM *hb_mgen_settable(hb_key_type type, int pss,
                                   const OSSL_PARAM *base);
HB_KEY *hb_mgen_generate(HB_PROV_CTX *provctx, struct hb_mgen *mg,
                         hb_key_type type, int pss);

/* Small helpers (provider.c). */
char *hb_strdup(const char *s);

#endif
