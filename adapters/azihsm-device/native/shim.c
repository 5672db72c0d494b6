#include "shim.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static char *dup_dlerror(const char *fallback)
{
    const char *e = dlerror();
    return strdup(e != NULL ? e : fallback);
}

hb_lib *hb_open(const char *path, char **err, const char **missing)
{
    *err = NULL;
    *missing = NULL;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        *err = dup_dlerror("dlopen failed");
        return NULL;
    }
    hb_lib *l = calloc(1, sizeof *l);
    if (l == NULL) {
        dlclose(dl);
        *err = strdup("out of memory");
        return NULL;
    }
    l->dl = dl;
    /* One dlsym per entry of the list in the header; the first missing
     * symbol fails the load. (The void ** store is POSIX's way to put an
     * object pointer into a function pointer.) */
#define HB_RESOLVE_(name, params)                                            \
    if (*missing == NULL) {                                                  \
        (void)dlerror();                                                     \
        *(void **)(&l->name) = dlsym(dl, #name);                             \
        if (l->name == NULL) {                                               \
            *missing = #name;                                                \
            *err = dup_dlerror("symbol not found");                          \
        }                                                                    \
    }
    AZIHSM_API_FUNCTIONS(HB_RESOLVE_)
#undef HB_RESOLVE_
    if (*missing != NULL) {
        dlclose(dl);
        free(l);
        return NULL;
    }
    *(void **)(&l->azihsm_emu_open_handles) = dlsym(dl, "azihsm_emu_open_handles");
    *(void **)(&l->azihsm_emu_inject_fault) = dlsym(dl, "azihsm_emu_inject_fault");
    (void)dlerror();
    return l;
}

void hb_close(hb_lib *l)
{
    if (l == NULL)
        return;
    dlclose(l->dl);
    free(l);
}

void hb_wipe_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    memset(p, 0, n);
    /* Tell the compiler the zeroed memory is read, so the memset stays. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
    free(p);
}

azihsm_status hb_part_get_list(hb_lib *l, azihsm_handle *list)
{
    return l->azihsm_part_get_list(list);
}

azihsm_status hb_part_free_list(hb_lib *l, azihsm_handle list)
{
    return l->azihsm_part_free_list(list);
}

azihsm_status hb_part_get_count(hb_lib *l, azihsm_handle list, uint32_t *count)
{
    return l->azihsm_part_get_count(list, count);
}

azihsm_status hb_part_get_info(hb_lib *l, azihsm_handle list, uint32_t index,
                               struct azihsm_part_info *info)
{
    return l->azihsm_part_get_info(list, index, info);
}

azihsm_status hb_part_open(hb_lib *l, const struct azihsm_str *path, azihsm_handle *part,
                           const struct azihsm_api_rev *rev)
{
    return l->azihsm_part_open(path, part, *rev);
}

azihsm_status hb_part_init(hb_lib *l, azihsm_handle part, const struct azihsm_credentials *creds,
                           const struct azihsm_buffer *bmk, const struct azihsm_buffer *muk,
                           const struct azihsm_owner_backup_key_config *obk,
                           const struct azihsm_pota_endorsement *pota)
{
    return l->azihsm_part_init(part, creds, bmk, muk, obk, pota, NULL);
}

azihsm_status hb_part_get_prop(hb_lib *l, azihsm_handle part, struct azihsm_part_prop *prop)
{
    return l->azihsm_part_get_prop(part, prop);
}

azihsm_status hb_part_close(hb_lib *l, azihsm_handle part)
{
    return l->azihsm_part_close(part);
}

azihsm_status hb_sess_open(hb_lib *l, azihsm_handle part, const struct azihsm_credentials *creds,
                           const struct azihsm_buffer *seed, azihsm_handle *session)
{
    return l->azihsm_sess_open(part, creds, seed, session);
}

azihsm_status hb_session_get_prop(hb_lib *l, azihsm_handle session,
                                  struct azihsm_session_prop *prop)
{
    return l->azihsm_session_get_prop(session, prop);
}

azihsm_status hb_sess_close(hb_lib *l, azihsm_handle session)
{
    return l->azihsm_sess_close(session);
}

azihsm_status hb_key_gen_pair(hb_lib *l, azihsm_handle session, struct azihsm_algo *algo,
                              const struct azihsm_key_prop_list *priv_props,
                              const struct azihsm_key_prop_list *pub_props, azihsm_handle *priv,
                              azihsm_handle *pub)
{
    return l->azihsm_key_gen_pair(session, algo, priv_props, pub_props, priv, pub);
}

azihsm_status hb_key_unwrap_pair(hb_lib *l, struct azihsm_algo *algo, azihsm_handle unwrapping_key,
                                 const struct azihsm_buffer *wrapped,
                                 const struct azihsm_key_prop_list *priv_props,
                                 const struct azihsm_key_prop_list *pub_props,
                                 azihsm_handle *priv, azihsm_handle *pub)
{
    return l->azihsm_key_unwrap_pair(algo, unwrapping_key, wrapped, priv_props, pub_props, priv,
                                     pub);
}

azihsm_status hb_key_unmask(hb_lib *l, azihsm_handle session, azihsm_key_kind kind,
                            const struct azihsm_buffer *masked, azihsm_handle *key)
{
    return l->azihsm_key_unmask(session, kind, masked, key);
}

azihsm_status hb_key_unmask_pair(hb_lib *l, azihsm_handle session, azihsm_key_kind kind,
                                 const struct azihsm_buffer *masked, azihsm_handle *priv,
                                 azihsm_handle *pub)
{
    return l->azihsm_key_unmask_pair(session, kind, masked, priv, pub);
}

azihsm_status hb_key_derive(hb_lib *l, azihsm_handle session, struct azihsm_algo *algo,
                            azihsm_handle base_key, const struct azihsm_key_prop_list *props,
                            azihsm_handle *key)
{
    return l->azihsm_key_derive(session, algo, base_key, props, key);
}

azihsm_status hb_key_delete(hb_lib *l, azihsm_handle key)
{
    return l->azihsm_key_delete(key);
}

azihsm_status hb_key_get_prop(hb_lib *l, azihsm_handle key, struct azihsm_key_prop *prop)
{
    return l->azihsm_key_get_prop(key, prop);
}

azihsm_status hb_crypt_sign(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                            const struct azihsm_buffer *data, struct azihsm_buffer *sig)
{
    return l->azihsm_crypt_sign(algo, key, data, sig);
}

azihsm_status hb_crypt_verify(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                              const struct azihsm_buffer *data, const struct azihsm_buffer *sig)
{
    return l->azihsm_crypt_verify(algo, key, data, sig);
}

azihsm_status hb_crypt_sign_init(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                                 azihsm_handle *ctx)
{
    return l->azihsm_crypt_sign_init(algo, key, ctx);
}

azihsm_status hb_crypt_sign_update(hb_lib *l, azihsm_handle ctx, const struct azihsm_buffer *data)
{
    return l->azihsm_crypt_sign_update(ctx, data);
}

azihsm_status hb_crypt_sign_finish(hb_lib *l, azihsm_handle ctx, struct azihsm_buffer *sig)
{
    return l->azihsm_crypt_sign_finish(ctx, sig);
}

azihsm_status hb_crypt_decrypt(hb_lib *l, struct azihsm_algo *algo, azihsm_handle key,
                               const struct azihsm_buffer *cipher, struct azihsm_buffer *plain)
{
    return l->azihsm_crypt_decrypt(algo, key, cipher, plain);
}

azihsm_status hb_free_ctx_handle(hb_lib *l, azihsm_handle ctx)
{
    return l->azihsm_free_ctx_handle(ctx);
}

int hb_has_emu_open_handles(const hb_lib *l)
{
    return l->azihsm_emu_open_handles != NULL;
}

int hb_has_emu_inject_fault(const hb_lib *l)
{
    return l->azihsm_emu_inject_fault != NULL;
}

azihsm_status hb_emu_open_handles(hb_lib *l, uint32_t *partitions, uint32_t *sessions,
                                  uint32_t *keys, uint32_t *contexts)
{
    return l->azihsm_emu_open_handles(partitions, sessions, keys, contexts);
}

azihsm_status hb_emu_inject_fault(hb_lib *l, const char *fault, int32_t count)
{
    return l->azihsm_emu_inject_fault(fault, count);
}
