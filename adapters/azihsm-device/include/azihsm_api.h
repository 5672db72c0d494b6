/*
 * The part of the Azure Integrated HSM native C API (libazihsm_api_native.so)
 * that hsmbridge uses, declared from the public API documentation and
 * header of Azure/azihsm-sdk (api/native/doc, api/native/include): names,
 * argument order, structure layouts and numeric values follow that ABI.
 *
 * Two parties include this file: the cgo binding in adapters/azihsm-device,
 * which loads the real library at run time with dlopen (so it declares only
 * function-pointer types, see AZIHSM_API_FUNCTIONS), and the emulated device
 * under testdoubles/azihsm-emulator, which exports the same symbols.
 *
 * Conventions of the API that everything here relies on:
 *   - every function returns azihsm_status: 0 is success, errors are negative;
 *   - an output azihsm_buffer whose len is too small (or whose ptr is NULL)
 *     gets the needed length written to len and the call returns
 *     AZIHSM_STATUS_BUFFER_TOO_SMALL: callers ask twice;
 *   - handles are 32-bit, never 0 when valid; key handles belong to the
 *     session that made them and end with it; context handles of streaming
 *     operations must be freed with azihsm_free_ctx_handle.
 */
#ifndef HSMBRIDGE_AZIHSM_API_H
#define HSMBRIDGE_AZIHSM_API_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t azihsm_status;
typedef uint32_t azihsm_handle;
typedef uint32_t azihsm_algo_id;
typedef uint32_t azihsm_key_prop_id;
typedef uint32_t azihsm_key_kind;
typedef uint32_t azihsm_key_class;
typedef uint32_t azihsm_ecc_curve;
typedef uint32_t azihsm_mgf1_id;
typedef uint32_t azihsm_part_prop_id;
typedef uint32_t azihsm_part_type;
typedef uint32_t azihsm_session_prop_id;
typedef uint32_t azihsm_owner_backup_key_source;
typedef uint32_t azihsm_pota_endorsement_source;
typedef uint8_t azihsm_char; /* not Windows: single bytes */

/* ---- status values ------------------------------------------------------ */
#define AZIHSM_STATUS_SUCCESS                        0
#define AZIHSM_STATUS_INVALID_ARGUMENT              -1
#define AZIHSM_STATUS_INVALID_HANDLE                -2
#define AZIHSM_STATUS_INDEX_OUT_OF_RANGE            -3
#define AZIHSM_STATUS_BUFFER_TOO_SMALL              -4
#define AZIHSM_STATUS_INTERNAL_ERROR                -5
#define AZIHSM_STATUS_RNG_ERROR                     -6
#define AZIHSM_STATUS_INVALID_KEY_SIZE              -7
#define AZIHSM_STATUS_DDI_CMD_FAILURE               -8
#define AZIHSM_STATUS_PROPERTY_NOT_PRESENT          -9
#define AZIHSM_STATUS_KEY_CLASS_NOT_SPECIFIED      -10
#define AZIHSM_STATUS_KEY_KIND_NOT_SPECIFIED       -11
#define AZIHSM_STATUS_INVALID_KEY                  -12
#define AZIHSM_STATUS_UNSUPPORTED_KEY_KIND         -13
#define AZIHSM_STATUS_UNSUPPORTED_ALGORITHM        -14
#define AZIHSM_STATUS_INVALID_SIGNATURE            -15
#define AZIHSM_STATUS_INVALID_KEY_PROPS            -16
#define AZIHSM_STATUS_UNSUPPORTED_PROPERTY         -17
#define AZIHSM_STATUS_CERT_CHAIN_CHANGED           -18
#define AZIHSM_STATUS_INVALID_TWEAK                -19
#define AZIHSM_STATUS_NOT_FOUND                    -20
#define AZIHSM_STATUS_IO_ABORTED                   -21
#define AZIHSM_STATUS_IO_ABORT_IN_PROGRESS         -22
#define AZIHSM_STATUS_CREDENTIALS_NOT_ESTABLISHED  -23
#define AZIHSM_STATUS_NONCE_MISMATCH               -24
#define AZIHSM_STATUS_PARTITION_NOT_PROVISIONED    -25
#define AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED     -26
#define AZIHSM_STATUS_ECC_VERIFY_FAILED            -27
#define AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION  -29
#define AZIHSM_STATUS_PENDING_KEY_GENERATION       -30
#define AZIHSM_STATUS_KEY_NOT_FOUND                -31
#define AZIHSM_STATUS_PARTITION_ALREADY_PROVISIONED -33
#define AZIHSM_STATUS_VAULT_APP_LIMIT_REACHED      -34
#define AZIHSM_STATUS_RETRY_EXHAUSTED              -35
#define AZIHSM_STATUS_DEVICE_NOT_READY             -36
#define AZIHSM_STATUS_CANNOT_DELETE_INTERNAL_KEYS  -37
#define AZIHSM_STATUS_UNSUPPORTED_API_REVISION     -38
#define AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE        -39
#define AZIHSM_STATUS_INVALID_CONTEXT_STATE        -40
#define AZIHSM_STATUS_BK3_ALREADY_INITIALIZED      -41
#define AZIHSM_STATUS_INVALID_SESSION              -42
#define AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION    -45
#define AZIHSM_STATUS_PANIC                        INT32_MIN

/* ---- algorithm ids ------------------------------------------------------ */
#define AZIHSM_ALGO_ID_RSA_KEY_UNWRAPPING_KEY_PAIR_GEN 0x00010001u
#define AZIHSM_ALGO_ID_RSA_PKCS_SHA1        0x00010003u
#define AZIHSM_ALGO_ID_RSA_PKCS_SHA256      0x00010004u
#define AZIHSM_ALGO_ID_RSA_PKCS_SHA384      0x00010005u
#define AZIHSM_ALGO_ID_RSA_PKCS_SHA512      0x00010006u
#define AZIHSM_ALGO_ID_RSA_PKCS_PSS         0x00010007u /* on a digest */
#define AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA1    0x00010008u
#define AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA256  0x00010009u
#define AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA384  0x0001000Au
#define AZIHSM_ALGO_ID_RSA_PKCS_PSS_SHA512  0x0001000Bu
#define AZIHSM_ALGO_ID_RSA_PKCS_OAEP        0x0001000Cu
#define AZIHSM_ALGO_ID_RSA_PKCS             0x0001000Du /* encrypt/decrypt */
#define AZIHSM_ALGO_ID_RSA_AES_KEY_WRAP     0x0001000Eu
#define AZIHSM_ALGO_ID_RSA_AES_WRAP         0x0001000Fu
#define AZIHSM_ALGO_ID_EC_KEY_PAIR_GEN      0x00020001u
#define AZIHSM_ALGO_ID_ECDSA                0x00020002u /* on a digest */
#define AZIHSM_ALGO_ID_ECDSA_SHA1           0x00020003u
#define AZIHSM_ALGO_ID_ECDSA_SHA256         0x00020004u
#define AZIHSM_ALGO_ID_ECDSA_SHA384         0x00020005u
#define AZIHSM_ALGO_ID_ECDSA_SHA512         0x00020006u
#define AZIHSM_ALGO_ID_ECDH                 0x00020007u
#define AZIHSM_ALGO_ID_AES_KEY_GEN          0x00030001u
#define AZIHSM_ALGO_ID_SHA1                 0x00040001u
#define AZIHSM_ALGO_ID_SHA256               0x00040002u
#define AZIHSM_ALGO_ID_SHA384               0x00040003u
#define AZIHSM_ALGO_ID_SHA512               0x00040004u
#define AZIHSM_ALGO_ID_HMAC_SHA1            0x00050001u
#define AZIHSM_ALGO_ID_HMAC_SHA256          0x00050002u
#define AZIHSM_ALGO_ID_HMAC_SHA384          0x00050003u
#define AZIHSM_ALGO_ID_HMAC_SHA512          0x00050004u
#define AZIHSM_ALGO_ID_HKDF_DERIVE          0x00060001u
#define AZIHSM_ALGO_ID_KBKDF_COUNTER_DERIVE 0x00060002u

/* ---- key properties ----------------------------------------------------- */
/* Values: CLASS, KIND, BIT_LEN, EC_CURVE are uint32_t; the usage flags,
 * SESSION, LOCAL, SENSITIVE, EXTRACTABLE are one byte (bool); PUB_KEY_INFO is
 * a DER SubjectPublicKeyInfo; MASKED_KEY is the masked blob; LABEL is bytes. */
#define AZIHSM_KEY_PROP_ID_CLASS        1u
#define AZIHSM_KEY_PROP_ID_KIND         2u
#define AZIHSM_KEY_PROP_ID_BIT_LEN      3u
#define AZIHSM_KEY_PROP_ID_LABEL        4u
#define AZIHSM_KEY_PROP_ID_PUB_KEY_INFO 5u
#define AZIHSM_KEY_PROP_ID_EC_CURVE     6u
#define AZIHSM_KEY_PROP_ID_MASKED_KEY   7u
#define AZIHSM_KEY_PROP_ID_SESSION      8u
#define AZIHSM_KEY_PROP_ID_LOCAL        9u
#define AZIHSM_KEY_PROP_ID_SENSITIVE   10u
#define AZIHSM_KEY_PROP_ID_EXTRACTABLE 11u
#define AZIHSM_KEY_PROP_ID_ENCRYPT     12u
#define AZIHSM_KEY_PROP_ID_DECRYPT     13u
#define AZIHSM_KEY_PROP_ID_SIGN        14u
#define AZIHSM_KEY_PROP_ID_VERIFY      15u
#define AZIHSM_KEY_PROP_ID_WRAP        16u
#define AZIHSM_KEY_PROP_ID_UNWRAP      17u
#define AZIHSM_KEY_PROP_ID_DERIVE      18u

#define AZIHSM_KEY_KIND_RSA            1u
#define AZIHSM_KEY_KIND_ECC            2u
#define AZIHSM_KEY_KIND_AES            3u
#define AZIHSM_KEY_KIND_AES_XTS        4u
#define AZIHSM_KEY_KIND_SHARED_SECRET  5u
#define AZIHSM_KEY_KIND_HMAC_SHA256    7u
#define AZIHSM_KEY_KIND_HMAC_SHA384    8u
#define AZIHSM_KEY_KIND_HMAC_SHA512    9u
#define AZIHSM_KEY_KIND_AES_GCM       10u

#define AZIHSM_KEY_CLASS_SECRET  1u
#define AZIHSM_KEY_CLASS_PUBLIC  2u
#define AZIHSM_KEY_CLASS_PRIVATE 3u

#define AZIHSM_ECC_CURVE_P256 1u
#define AZIHSM_ECC_CURVE_P384 2u
#define AZIHSM_ECC_CURVE_P521 3u

#define AZIHSM_MGF1_ID_SHA256 1u
#define AZIHSM_MGF1_ID_SHA384 2u
#define AZIHSM_MGF1_ID_SHA512 3u
#define AZIHSM_MGF1_ID_SHA1   4u

/* ---- partition properties ----------------------------------------------- */
#define AZIHSM_PART_PROP_ID_TYPE             1u /* uint32_t azihsm_part_type */
#define AZIHSM_PART_PROP_ID_PATH             2u /* string */
#define AZIHSM_PART_PROP_ID_DRIVER_VERSION   3u
#define AZIHSM_PART_PROP_ID_FIRMWARE_VERSION 4u
#define AZIHSM_PART_PROP_ID_HARDWARE_VERSION 5u
#define AZIHSM_PART_PROP_ID_PCI_HW_ID        6u
#define AZIHSM_PART_PROP_ID_MIN_API_REV      7u /* struct azihsm_api_rev */
#define AZIHSM_PART_PROP_ID_MAX_API_REV      8u
#define AZIHSM_PART_PROP_ID_MANUFACTURER_CERT_CHAIN 9u
#define AZIHSM_PART_PROP_ID_BACKUP_MASKING_KEY      10u
#define AZIHSM_PART_PROP_ID_MASKED_OWNER_BACKUP_KEY 11u
#define AZIHSM_PART_PROP_ID_PART_PUB_KEY            12u

#define AZIHSM_PART_TYPE_VIRTUAL  1u
#define AZIHSM_PART_TYPE_PHYSICAL 2u

#define AZIHSM_SESSION_PROP_ID_API_REV 1u

#define AZIHSM_OWNER_BACKUP_KEY_SOURCE_CALLER 1u
#define AZIHSM_OWNER_BACKUP_KEY_SOURCE_TPM    2u
#define AZIHSM_POTA_ENDORSEMENT_SOURCE_CALLER 1u
#define AZIHSM_POTA_ENDORSEMENT_SOURCE_TPM    2u

/* ---- structures --------------------------------------------------------- */
struct azihsm_buffer {
    void *ptr;
    uint32_t len;
};

struct azihsm_str {
    azihsm_char *str;
    uint32_t len; /* including the terminating NUL */
};

struct azihsm_api_rev {
    uint32_t major;
    uint32_t minor;
};

struct azihsm_part_info {
    struct azihsm_str path; /* caller's buffer; len in: capacity, out: needed */
    struct azihsm_api_rev api_rev_min;
    struct azihsm_api_rev api_rev_max;
};

struct azihsm_credentials {
    uint8_t id[16];
    uint8_t pin[16];
};

struct azihsm_owner_backup_key_config {
    azihsm_owner_backup_key_source source;
    const struct azihsm_buffer *owner_backup_key;        /* CALLER: OBK, or */
    const struct azihsm_buffer *masked_owner_backup_key; /* CALLER: MOBK */
};

struct azihsm_pota_endorsement_data {
    const struct azihsm_buffer *signature;
    const struct azihsm_buffer *public_key;
};

struct azihsm_pota_endorsement {
    azihsm_pota_endorsement_source source;
    const struct azihsm_pota_endorsement_data *endorsement; /* CALLER only */
};

/* Opaque here: hsmbridge passes NULL (no automatic recovery inside the
 * library; the backend reopens its session itself). */
struct azihsm_resiliency_config;

struct azihsm_part_prop {
    azihsm_part_prop_id id;
    void *val;
    uint32_t len;
};

struct azihsm_session_prop {
    azihsm_session_prop_id id;
    void *val;
    uint32_t len;
};

struct azihsm_algo {
    azihsm_algo_id id;
    void *params;
    uint32_t len;
};

struct azihsm_key_prop {
    azihsm_key_prop_id id;
    void *val;
    uint32_t len;
};

struct azihsm_key_prop_list {
    struct azihsm_key_prop *props;
    uint32_t count;
};

struct azihsm_algo_ecdh_params {
    const struct azihsm_buffer *pub_key; /* peer's DER SubjectPublicKeyInfo */
};

struct azihsm_algo_hkdf_params {
    azihsm_algo_id hmac_algo_id;
    const struct azihsm_buffer *salt;
    const struct azihsm_buffer *info;
};

struct azihsm_algo_kbkdf_counter_params {
    azihsm_algo_id hmac_algo_id;
    const struct azihsm_buffer *label;
    const struct azihsm_buffer *context;
};

struct azihsm_algo_rsa_pkcs_oaep_params {
    azihsm_algo_id hash_algo_id;
    azihsm_mgf1_id mgf1_hash_algo_id;
    const struct azihsm_buffer *label;
};

struct azihsm_algo_rsa_aes_key_wrap_params {
    uint32_t aes_key_bits;
    const struct azihsm_algo_rsa_pkcs_oaep_params *oaep_params;
};

struct azihsm_algo_rsa_pkcs_pss_params {
    azihsm_algo_id hash_algo_id;
    azihsm_mgf1_id mgf_id;
    uint32_t salt_len;
};

/* ---- functions ---------------------------------------------------------- */
/* X(name, return, parameters): the binding makes a function-pointer type and
 * a dlsym per entry; the emulator defines each one. */
#define AZIHSM_API_FUNCTIONS(X)                                                 \
    X(azihsm_part_get_list, (azihsm_handle *list))                              \
    X(azihsm_part_free_list, (azihsm_handle list))                              \
    X(azihsm_part_get_count, (azihsm_handle list, uint32_t *count))             \
    X(azihsm_part_get_info, (azihsm_handle list, uint32_t index,                \
                             struct azihsm_part_info *info))                    \
    X(azihsm_part_open, (const struct azihsm_str *path, azihsm_handle *part,    \
                         struct azihsm_api_rev api_rev))                        \
    X(azihsm_part_init, (azihsm_handle part,                                    \
                         const struct azihsm_credentials *creds,                \
                         const struct azihsm_buffer *bmk,                       \
                         const struct azihsm_buffer *muk,                       \
                         const struct azihsm_owner_backup_key_config *obk,      \
                         const struct azihsm_pota_endorsement *pota,            \
                         const struct azihsm_resiliency_config *resiliency))    \
    X(azihsm_part_get_prop, (azihsm_handle part, struct azihsm_part_prop *prop))\
    X(azihsm_part_close, (azihsm_handle part))                                  \
    X(azihsm_sess_open, (azihsm_handle part,                                    \
                         const struct azihsm_credentials *creds,                \
                         const struct azihsm_buffer *seed,                      \
                         azihsm_handle *session))                               \
    X(azihsm_session_get_prop, (azihsm_handle session,                          \
                                struct azihsm_session_prop *prop))              \
    X(azihsm_sess_close, (azihsm_handle session))                               \
    X(azihsm_key_gen_pair, (azihsm_handle session, struct azihsm_algo *algo,    \
                            const struct azihsm_key_prop_list *priv_props,      \
                            const struct azihsm_key_prop_list *pub_props,       \
                            azihsm_handle *priv, azihsm_handle *pub))           \
    X(azihsm_key_unwrap_pair, (struct azihsm_algo *algo,                        \
                               azihsm_handle unwrapping_key,                    \
                               const struct azihsm_buffer *wrapped,             \
                               const struct azihsm_key_prop_list *priv_props,   \
                               const struct azihsm_key_prop_list *pub_props,    \
                               azihsm_handle *priv, azihsm_handle *pub))        \
    X(azihsm_key_unmask, (azihsm_handle session, azihsm_key_kind kind,          \
                          const struct azihsm_buffer *masked,                   \
                          azihsm_handle *key))                                  \
    X(azihsm_key_unmask_pair, (azihsm_handle session, azihsm_key_kind kind,     \
                               const struct azihsm_buffer *masked,              \
                               azihsm_handle *priv, azihsm_handle *pub))        \
    X(azihsm_key_derive, (azihsm_handle session, struct azihsm_algo *algo,      \
                          azihsm_handle base_key,                               \
                          const struct azihsm_key_prop_list *props,             \
                          azihsm_handle *key))                                  \
    X(azihsm_key_delete, (azihsm_handle key))                                   \
    X(azihsm_key_get_prop, (azihsm_handle key, struct azihsm_key_prop *prop))   \
    X(azihsm_crypt_sign, (struct azihsm_algo *algo, azihsm_handle key,          \
                          const struct azihsm_buffer *data,                     \
                          struct azihsm_buffer *sig))                           \
    X(azihsm_crypt_verify, (struct azihsm_algo *algo, azihsm_handle key,        \
                            const struct azihsm_buffer *data,                   \
                            const struct azihsm_buffer *sig))                   \
    X(azihsm_crypt_sign_init, (struct azihsm_algo *algo, azihsm_handle key,     \
                               azihsm_handle *ctx))                             \
    X(azihsm_crypt_sign_update, (azihsm_handle ctx,                             \
                                 const struct azihsm_buffer *data))             \
    X(azihsm_crypt_sign_finish, (azihsm_handle ctx, struct azihsm_buffer *sig)) \
    X(azihsm_crypt_encrypt, (struct azihsm_algo *algo, azihsm_handle key,       \
                             const struct azihsm_buffer *plain,                 \
                             struct azihsm_buffer *cipher))                     \
    X(azihsm_crypt_decrypt, (struct azihsm_algo *algo, azihsm_handle key,       \
                             const struct azihsm_buffer *cipher,                \
                             struct azihsm_buffer *plain))                      \
    X(azihsm_free_ctx_handle, (azihsm_handle ctx))

#define AZIHSM_DECLARE_(name, params) azihsm_status name params;
#ifndef AZIHSM_NO_PROTOTYPES
AZIHSM_API_FUNCTIONS(AZIHSM_DECLARE_)
#endif
#undef AZIHSM_DECLARE_

#ifdef __cplusplus
}
#endif
#endif
