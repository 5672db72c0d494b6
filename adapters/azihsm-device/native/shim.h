/*
 * The C half of package native: the library handle with one function
 * pointer per entry of AZIHSM_API_FUNCTIONS, and one trampoline per function
 * because cgo cannot call through a C function pointer. The trampolines
 * only forward; every decision (the two-call convention, wiping, freeing)
 * is made in Go, in one place.
 */
#ifndef HSMBRIDGE_NATIVE_SHIM_H
#define HSMBRIDGE_NATIVE_SHIM_H

#define AZIHSM_NO_PROTOTYPES
#include "azihsm_api.h"

#include <stddef.h>

#define HB_FN_TYPE_(name, params) typedef azihsm_status (*name##_fn) params;
AZIHSM_API_FUNCTIONS(HB_FN_TYPE_)
#undef HB_FN_TYPE_

/* The emulated device's control calls (optional: the real library has none). */
typedef azihsm_status (*azihsm_emu_open_handles_fn)(uint32_t *partitions, uint32_t *sessions,
                                                    uint32_t *keys, uint32_t *contexts);
typedef azihsm_status (*azihsm_emu_inject_fault_fn)(const char *fault, int32_t count);

typedef struct hb_lib {
    void *dl;
#define HB_FIELD_(name, params) name##_fn name;
    AZIHSM_API_FUNCTIONS(HB_FIELD_)
#undef HB_FIELD_
    azihsm_emu_open_handles_fn azihsm_emu_open_handles; /* NULL if absent */
    azihsm_emu_inject_fault_fn azihsm_emu_inject_fault; /* NULL if absent */
} hb_lib;

/* hb_open loads path and resolves every API function. On failure it returns
 * NULL and sets *err to a malloc'd message (the caller frees it) and
 * *missing to the name of the first unresolved symbol, or NULL when the
 * library itself did not load. */
hb_lib *hb_open(const char *path, char **err, const char **missing);
void hb_close(hb_lib *lib);

/* hb_wipe_free zeroes n bytes at p (in a way the compiler keeps) and frees p. */
void hb_wipe_free(void *p, size_t n);

azihsm_status hb_part_get_list(hb_lib *l, azihsm_handle *list);
azihsm_status hb_part_free_list(hb_lib *l, azihsm_handle list);
azihsm_status hb_part_get_count(hb_lib *l, azihsm_handle list, uint32_t *count);
azihsm_status hb_part_get_info(hb_lib *l, azihsm_handle list, uint32_t index,
                               struct azihsm_part_info *info);
azihsm_status hb_part_open(hb_lib *l, const struct azihsm_str *path, azihsm_handle *part,
                           const struct azihsm_api_rev *rev);
azihsm_status hb_part_init(hb_lib *l, azihsm_handle part, const struct azihsm_credentials *creds,
                           const struct azihsm_buffer *bmk, const struct azihsm_buffer *muk,
                           const struct azihsm_owner_backup_key_config *obk,
                           const struct azihsm_pota_endorsement *pota);
azihsm_status hb_part_get_prop(hb_lib *l, azihsm_handle part, struct azihsm_part_prop *prop);
azihsm_status hb_part_close(hb_lib *l, azihsm_handle part);
azihsm_status hb_sess_open(hb_lib *l, azihsm_handle part, const struct azihsm_credentials *creds,
                           const struct azihsm_buffer *seed, azihsm_handle *session);
azihsm_status hb_session_get_prop(hb_lib *l, azihsm_handle session,
                                  struct azihsm_session_prop *prop);
azihsm_status hb_sess_close(hb_lib *l, azihsm_handle session);
azihsm_status hb_key_gen_pair(hb_lib *l, azihsm_handle session, struct azihsm_algo *algo,
                              const struct azihsm_key_prop_list *priv_props,
                              const struct azihsm_key_prop_list *pub_props, azihsm_handle *priv,
                              azihsm_handle *pub);
azihsm_status hb_key_unwrap_pair(hb_lib *l, struct azihsm_algo *algo, azihsm_handle unwrapping_key,
                                 const struct azihsm_buffer *wrapped,
                                 const struct azihsm_key_prop_list *priv_props,
                                 const struct azihsm_key_prop_list *pub_props,
                                 azihsm_handle *priv, azihsm_handle *pub);
azihsm_status hb_key_unmask(hb_lib *l, azihsm_handle session, azihsm_key_kind kind,
                            const struct azihsm_buffer *masked, azihsm_handle *key);
azihsm_status hb_key_unmask_pair(hb_lib *l, azihsm_handle session, azihsm_key_kind kind,
                                 const struct azihsm_buffer *masked, azihsm_handle *priv,
                                 azihsm_handle *pub);
azihsm_status hb_key_derive(hb_lib *l, azihsm_handle session, struct azihsm_algo *algo,
                            azihsm_handle base_key, const struct azihsm_key_prop_list *props,
                            azihsm_handle *key);
azihsm_status hb_key_delete(hb_lib *l, azihsm_handle key);
azihsm_status hb_key_get_prop(hb_lib *l, azihsm_handle key, struct azihsm_key_prop *prop);
azihsm_status hb_crypt_sign(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                            const struct azihsm_buffer *data, struct azihsm_buffer *sig);
azihsm_status hb_crypt_verify(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                              const struct azihsm_buffer *data, const struct azihsm_buffer *sig);
azihsm_status hb_crypt_sign_init(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                                 azihsm_handle *ctx);
azihsm_status hb_crypt_sign_update(hb_lib *l, azihsm_handle ctx, const struct azihsm_buffer *data);
azihsm_status hb_crypt_sign_finish(hb_lib *l, azihsm_handle ctx, struct azihsm_buffer *sig);
azihsm_status hb_crypt_decrypt(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                               const struct azihsm_buffer *cipher, struct azihsm_buffer *plain);
azihsm_status hb_free_ctx_handle(hb_lib *l, azihsm_handle ctx);

int hb_has_emu_open_handles(const hb_lib *l);
int hb_has_emu_inject_fault(const hb_lib *l);
azihsm_status hb_emu_open_handles(hb_lib *l, uint32_t *partitions, uint32_t *sessions,
                                  uint32_t *keys, uint32_t *contexts);
azihsm_status hb_emu_inject_fault(hb_lib *l, const char *fault, int32_t count);

#endif
