/*
 * Internal header of the emulated Azure Integrated HSM device.
 *
 * Concurrency design. One mutex (emu_lock) guards the handle table and every
 * object reachable from it: partitions, sessions, key handles, streaming
 * contexts, the fault switches. API calls take it at their start and never
 * call another API function while holding it, so it is not recursive.
 * Functions named *_locked expect it held.
 *
 * Slow work (RSA key generation, signing, decryption) runs with the lock
 * released. That is safe because key material (struct emu_material) never
 * changes after it is made: a call takes a reference to it under the lock,
 * drops the lock, computes, and drops the reference. A handle can therefore
 * be deleted, or its session closed, while a call on it is in flight; the
 * call finishes on its own reference, and calls that create handles look
 * their session up again before they insert anything.
 *
 * The device state (state directory, device id, masking key, partition key)
 * is loaded once under the lock and is read-only afterwards.
 */
#ifndef HSMBRIDGE_AZIHSM_EMU_INTERNAL_H
#define HSMBRIDGE_AZIHSM_EMU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "azihsm_api.h"
#include "azihsm_emu.h"

#define EMU_EXPORT __attribute__((visibility("default")))

/* ---- handles.c ---------------------------------------------------------- */

enum emu_htype {
    EMU_H_FREE = 0,
    EMU_H_PART_LIST,
    EMU_H_PART,
    EMU_H_SESSION,
    EMU_H_PRIV,
    EMU_H_PUB,
    EMU_H_SECRET,
    EMU_H_CTX,
    EMU_H_NTYPES
};

void emu_lock(void);
void emu_unlock(void);

/* Inserts obj; AZIHSM_STATUS_INTERNAL_ERROR when the table is full. */
azihsm_status emu_handle_alloc_locked(enum emu_htype type, void *obj, azihsm_handle *out);
/* The object, or NULL when h is 0, stale, or of another type. */
void *emu_handle_get_locked(azihsm_handle h, enum emu_htype type);
/* Any of the key types; *type gets which. */
void *emu_handle_get_key_locked(azihsm_handle h, enum emu_htype *type);
void emu_handle_release_locked(azihsm_handle h);
/* Calls fn for every live handle; fn may release the handle it is given. */
void emu_handle_each_locked(void (*fn)(enum emu_htype type, azihsm_handle h, void *obj,
                                       void *arg),
                            void *arg);
void emu_handle_counts_locked(uint32_t counts[EMU_H_NTYPES]);
/* Frees the table itself if no handle is open (library unload): 1 if so. */
int emu_handles_teardown_locked(void);

/* ---- objects ------------------------------------------------------------ */

#define EMU_ID_LEN 16

struct emu_part_list {
    char *path;
};

struct emu_part {
    azihsm_handle handle;
    struct azihsm_api_rev rev;
    int initialised; /* azihsm_part_init succeeded on this handle */
};

struct emu_session {
    azihsm_handle handle;
    azihsm_handle part;
    struct azihsm_api_rev rev;
    uint8_t id[EMU_ID_LEN];
    int stale; /* needs renegotiation: every call but close fails */
};

/* Usage flags, as kept in key material and blobs. */
#define EMU_USE_ENCRYPT 0x01u
#define EMU_USE_DECRYPT 0x02u
#define EMU_USE_SIGN    0x04u
#define EMU_USE_VERIFY  0x08u
#define EMU_USE_WRAP    0x10u
#define EMU_USE_UNWRAP  0x20u
#define EMU_USE_DERIVE  0x40u

#define EMU_LABEL_MAX 127

/*
 * One key as the device holds it: a pair (RSA, ECC) or a secret. Both
 * halves of a pair share one material, so they report the same blob.
 * Immutable once made; reference counted.
 */
struct emu_material {
    int refs;
    azihsm_key_kind kind;
    uint32_t bits;
    azihsm_ecc_curve curve; /* ECC only */
    int session;            /* bound to session_id */
    int local;              /* made in the device */
    uint8_t session_id[EMU_ID_LEN];
    uint16_t use_priv; /* the private half, or the secret */
    uint16_t use_pub;
    uint8_t label_priv[EMU_LABEL_MAX];
    uint8_t label_pub[EMU_LABEL_MAX];
    uint8_t label_priv_len, label_pub_len;
    EVP_PKEY *pkey; /* pairs: the private key */
    uint8_t *pub_der; /* pairs: DER SubjectPublicKeyInfo */
    uint32_t pub_der_len;
    uint8_t *secret; /* secrets */
    uint32_t secret_len;
    uint8_t *blob; /* the masked key */
    uint32_t blob_len;
};

struct emu_material *emu_material_new(void);
struct emu_material *emu_material_ref(struct emu_material *m);
void emu_material_put(struct emu_material *m);

struct emu_key {
    azihsm_handle handle;
    azihsm_handle session;
    azihsm_key_class cls;
    struct emu_material *m;
};

/* Streaming sign context (crypto.c). */
struct emu_ctx;
void emu_ctx_free(struct emu_ctx *c);
azihsm_handle emu_ctx_session(const struct emu_ctx *c);

void emu_key_free(struct emu_key *k);

/* ---- session.c ---------------------------------------------------------- */

/* Closes a session: its keys and contexts go with it. */
void emu_session_close_locked(struct emu_session *s);
/*
 * The session that owns key handle k, and the gate every key and crypto
 * call passes (faults.c): INVALID_HANDLE if the session is gone.
 */
struct emu_session *emu_key_session_locked(const struct emu_key *k);

/* ---- state.c ------------------------------------------------------------ */

struct emu_state {
    int loaded;
    char *dir;
    char *device_path;
    uint8_t device_id[EMU_ID_LEN];
    uint8_t mask_key[32];
    uint8_t *part_pub_der;
    uint32_t part_pub_der_len;
};

/* The device path the partition list shows (no state directory needed). */
const char *emu_device_path_locked(void);
/* Loads or creates the state directory; DEVICE_NOT_ACCESSIBLE on failure. */
azihsm_status emu_state_load_locked(void);
const struct emu_state *emu_state(void);
/*
 * establish != 0 (azihsm_part_init): the first credential on a state
 * directory is recorded; later ones must equal it. establish == 0
 * (azihsm_sess_open): it must equal the recorded one.
 */
azihsm_status emu_state_credential(const struct azihsm_credentials *creds, int establish);
void emu_state_teardown(void);

/* ---- faults.c ----------------------------------------------------------- */

/*
 * Every key and crypto call passes here, with the lock held, once its
 * handles are known to be valid: a stale session answers
 * SESSION_NEEDS_RENEGOTIATION, then an armed fault may fire.
 */
azihsm_status emu_gate_locked(struct emu_session *s);
/* The stale check alone, for calls that do not reach the device. */
azihsm_status emu_stale_locked(const struct emu_session *s);

/* ---- masked.c ----------------------------------------------------------- */

/* Builds m->blob from the other fields of m. */
azihsm_status emu_mask(struct emu_material *m);
/* Decodes a blob made by emu_mask under this state directory. */
azihsm_status emu_unmask_blob(const uint8_t *blob, uint32_t len, struct emu_material **out);

/* ---- keys.c ------------------------------------------------------------- */

/* Makes key handles for m in session sh (which must still be open). */
azihsm_status emu_keys_insert(azihsm_handle sh, struct emu_material *m, int pair,
                              azihsm_handle *priv, azihsm_handle *pub);

/*
 * What a call on a key handle needs, taken under the lock by emu_key_begin
 * (which also passes the gate): a reference to the material, to be dropped
 * with emu_key_end.
 */
struct emu_key_ref {
    enum emu_htype type;
    azihsm_key_class cls;
    azihsm_handle session;
    uint8_t session_id[EMU_ID_LEN];
    struct emu_material *m;
};

azihsm_status emu_key_begin(azihsm_handle key, struct emu_key_ref *ref);
void emu_key_end(struct emu_key_ref *ref);

/* ---- crypto.c ----------------------------------------------------------- */

/*
 * RSA decryption with pkey: padding RSA_PKCS1_OAEP_PADDING (md, mgf1 and
 * label used) or RSA_PKCS1_PADDING. 0 on failure; out holds modulus bytes.
 */
int emu_rsa_decrypt(EVP_PKEY *pkey, int padding, const EVP_MD *md, const EVP_MD *mgf1,
                    const uint8_t *label, size_t labellen, const uint8_t *in, size_t inlen,
                    uint8_t *out, size_t *outlen);

/* ---- util.c ------------------------------------------------------------- */

/* Input buffer: NULL, or NULL ptr with len > 0, is INVALID_ARGUMENT. */
azihsm_status emu_in(const struct azihsm_buffer *b, const uint8_t **p, uint32_t *len);
/* Optional input buffer: NULL means empty. */
azihsm_status emu_in_opt(const struct azihsm_buffer *b, const uint8_t **p, uint32_t *len);
/*
 * Output buffer convention: NULL buffer, or NULL ptr with len > 0, is
 * INVALID_ARGUMENT; len < need sets len = need and is BUFFER_TOO_SMALL.
 */
azihsm_status emu_out_check(struct azihsm_buffer *b, uint32_t need);
/* The same convention for a (val, len) property pair, then the copy. */
azihsm_status emu_prop_out(void *val, uint32_t *len, const void *src, uint32_t n);

/* SHA-1/256/384/512 by their AZIHSM_ALGO_ID_SHA* ids; NULL otherwise. */
const EVP_MD *emu_md_for_hash(azihsm_algo_id id);
/* The MGF1 id that uses the same hash as the SHA* id, or 0. */
azihsm_mgf1_id emu_mgf1_for_hash(azihsm_algo_id id);
/* HMAC_SHA256/384/512 algorithm ids and key kinds. */
const EVP_MD *emu_md_for_hmac_algo(azihsm_algo_id id);
const EVP_MD *emu_md_for_hmac_kind(azihsm_key_kind kind);
int emu_is_hmac_kind(azihsm_key_kind kind);

const char *emu_curve_group(azihsm_ecc_curve c);
uint32_t emu_curve_bits(azihsm_ecc_curve c);
uint32_t emu_curve_field_bytes(azihsm_ecc_curve c);
/* The curve of an EC key, or 0 when it is not P-256/384/521. */
azihsm_ecc_curve emu_curve_of(const EVP_PKEY *pkey);

/* DER SubjectPublicKeyInfo of pkey (malloc'd). */
azihsm_status emu_spki(EVP_PKEY *pkey, uint8_t **der, uint32_t *len);

void emu_random(void *p, size_t n);
void emu_wipe_free(void *p, size_t n);

/* HMAC (hash md) of data under key, into out (EVP_MD_get_size(md) bytes). */
azihsm_status emu_hmac(const EVP_MD *md, const uint8_t *key, size_t keylen,
                       const uint8_t *data, size_t len, uint8_t *out);

#endif
