//go:build ignore

/*
 * Partitions: the list (one entry, the device path), open, init, properties
 * and close. A partition handle becomes usable for sessions only after
 * azihsm_part_init succeeded on that very handle; the first init on a state
 * directory establishes the credential (state.c).
 */
#include <stdlib.h>
#include <string.h>

#include "emu.h"

static const struct azihsm_api_rev k_rev_min = {1, 0};
static const struct azihsm_api_rev k_rev_max = {1, 0};

static int rev_cmp(struct azihsm_api_rev a, struct azihsm_api_rev b)
{
    if (a.major != b.major)
        return a.major < b.major ? -1 : 1;
    if (a.minor != b.minor)
        return a.minor < b.minor ? -1 : 1;
    return 0;
}

EMU_EXPORT azihsm_status azihsm_part_get_list(azihsm_handle *list)
{
    struct emu_part_list *l;
    azihsm_status st;

    if (list == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    emu_lock();
    l->path = strdup(emu_device_path_locked());
    st = l->path ? emu_handle_alloc_locked(EMU_H_PART_LIST, l, list)
                 : AZIHSM_STATUS_INTERNAL_ERROR;
    emu_unlock();
    if (st != AZIHSM_STATUS_SUCCESS) {
        free(l->path);
        free(l);
    }
    return st;
}

EMU_EXPORT azihsm_status azihsm_part_free_list(azihsm_handle list)
{
    struct emu_part_list *l;

    emu_lock();
    l = emu_handle_get_locked(list, EMU_H_PART_LIST);
    if (l != NULL)
        emu_handle_release_locked(list);
    emu_unlock();
    if (l == NULL)
        return AZIHSM_STATUS_INVALID_HANDLE;
    free(l->path);
    free(l);
    return AZIHSM_STATUS_SUCCESS;
}

EMU_EXPORT azihsm_status azihsm_part_get_count(azihsm_handle list, uint32_t *count)
{
    azihsm_status st = AZIHSM_STATUS_SUCCESS;

    if (count == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    if (emu_handle_get_locked(list, EMU_H_PART_LIST) == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else
        *count = 1;
    emu_unlock();
    return st;
}

EMU_EXPORT azihsm_status azihsm_part_get_info(azihsm_handle list, uint32_t index,
                                              struct azihsm_part_info *info)
{
    struct emu_part_list *l;
    azihsm_status st = AZIHSM_STATUS_SUCCESS;
    uint32_t need;

    if (info == NULL || (info->path.str == NULL && info->path.len != 0))
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    l = emu_handle_get_locked(list, EMU_H_PART_LIST);
    if (l == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    if (index != 0) {
        st = AZIHSM_STATUS_INDEX_OUT_OF_RANGE;
        goto out;
    }
    need = (uint32_t)strlen(l->path) + 1u;
    if (info->path.len < need) {
        info->path.len = need;
        st = AZIHSM_STATUS_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(info->path.str, l->path, need);
    info->path.len = need;
    info->api_rev_min = k_rev_min;
    info->api_rev_max = k_rev_max;
out:
    emu_unlock();
    return st;
}

EMU_EXPORT azihsm_status azihsm_part_open(const struct azihsm_str *path, azihsm_handle *part,
                                          struct azihsm_api_rev api_rev)
{
    struct emu_part *p;
    const char *dev;
    azihsm_status st;

    if (path == NULL || part == NULL || path->str == NULL || path->len == 0 ||
        path->str[path->len - 1] != 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    dev = emu_device_path_locked();
    if (strlen(dev) + 1u != path->len || memcmp(dev, path->str, path->len) != 0) {
        st = AZIHSM_STATUS_NOT_FOUND;
        goto out;
    }
    if (rev_cmp(api_rev, k_rev_min) < 0 || rev_cmp(api_rev, k_rev_max) > 0) {
        st = AZIHSM_STATUS_UNSUPPORTED_API_REVISION;
        goto out;
    }
    st = emu_state_load_locked();
    if (st != AZIHSM_STATUS_SUCCESS)
        goto out;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    p->rev = api_rev;
    st = emu_handle_alloc_locked(EMU_H_PART, p, &p->handle);
    if (st != AZIHSM_STATUS_SUCCESS)
        free(p);
    else
        *part = p->handle;
out:
    emu_unlock();
    return st;
}

static int buf_nonempty(const struct azihsm_buffer *b)
{
    return b != NULL && b->ptr != NULL && b->len != 0;
}

static azihsm_status check_obk(const struct azihsm_owner_backup_key_config *obk)
{
    if (obk == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    switch (obk->source) {
    case AZIHSM_OWNER_BACKUP_KEY_SOURCE_CALLER:
        /* Exactly one of the owner backup key and its masked form. */
        if (buf_nonempty(obk->owner_backup_key) == buf_nonempty(obk->masked_owner_backup_key))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        if ((obk->owner_backup_key != NULL && !buf_nonempty(obk->owner_backup_key)) ||
            (obk->masked_owner_backup_key != NULL && !buf_nonempty(obk->masked_owner_backup_key)))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        return AZIHSM_STATUS_SUCCESS;
    case AZIHSM_OWNER_BACKUP_KEY_SOURCE_TPM:
        if (obk->owner_backup_key != NULL || obk->masked_owner_backup_key != NULL)
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        return AZIHSM_STATUS_SUCCESS;
    default:
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    }
}

static azihsm_status check_pota(const struct azihsm_pota_endorsement *pota)
{
    if (pota == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    switch (pota->source) {
    case AZIHSM_POTA_ENDORSEMENT_SOURCE_CALLER:
        if (pota->endorsement == NULL || !buf_nonempty(pota->endorsement->signature) ||
            !buf_nonempty(pota->endorsement->public_key))
            return AZIHSM_STATUS_INVALID_ARGUMENT;
        return AZIHSM_STATUS_SUCCESS;
    case AZIHSM_POTA_ENDORSEMENT_SOURCE_TPM:
        return pota->endorsement == NULL ? AZIHSM_STATUS_SUCCESS
                                         : AZIHSM_STATUS_INVALID_ARGUMENT;
    default:
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    }
}

EMU_EXPORT azihsm_status azihsm_part_init(azihsm_handle part,
                                          const struct azihsm_credentials *creds,
                                          const struct azihsm_buffer *bmk,
                                          const struct azihsm_buffer *muk,
                                          const struct azihsm_owner_backup_key_config *obk,
                                          const struct azihsm_pota_endorsement *pota,
                                          const struct azihsm_resiliency_config *resiliency)
{
    struct emu_part *p;
    azihsm_status st;

    emu_lock();
    p = emu_handle_get_locked(part, EMU_H_PART);
    if (p == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    st = AZIHSM_STATUS_INVALID_ARGUMENT;
    if (creds == NULL || (bmk != NULL && bmk->ptr == NULL && bmk->len != 0) ||
        (muk != NULL && muk->ptr == NULL && muk->len != 0))
        goto out;
    /* Resiliency callbacks are not modelled: the caller recovers itself. */
    if (resiliency != NULL)
        goto out;
    st = check_obk(obk);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = check_pota(pota);
    if (st == AZIHSM_STATUS_SUCCESS)
        st = emu_state_credential(creds, 1);
    if (st == AZIHSM_STATUS_SUCCESS)
        p->initialised = 1;
out:
    emu_unlock();
    return st;
}

static azihsm_status prop_str(struct azihsm_part_prop *prop, const char *s)
{
    return emu_prop_out(prop->val, &prop->len, s, (uint32_t)strlen(s) + 1u);
}

EMU_EXPORT azihsm_status azihsm_part_get_prop(azihsm_handle part, struct azihsm_part_prop *prop)
{
    struct emu_part *p;
    azihsm_status st;
    uint32_t type = AZIHSM_PART_TYPE_VIRTUAL;

    if (prop == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    p = emu_handle_get_locked(part, EMU_H_PART);
    if (p == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    switch (prop->id) {
    case AZIHSM_PART_PROP_ID_TYPE:
        st = emu_prop_out(prop->val, &prop->len, &type, sizeof(type));
        break;
    case AZIHSM_PART_PROP_ID_PATH:
        st = prop_str(prop, emu_device_path_locked());
        break;
    case AZIHSM_PART_PROP_ID_DRIVER_VERSION:
        st = prop_str(prop, "emulated-driver-1.0.0");
        break;
    case AZIHSM_PART_PROP_ID_FIRMWARE_VERSION:
        st = prop_str(prop, "emulated-firmware-1.0.0");
        break;
    case AZIHSM_PART_PROP_ID_HARDWARE_VERSION:
        st = prop_str(prop, "emulated-hardware-1.0");
        break;
    case AZIHSM_PART_PROP_ID_PCI_HW_ID:
        st = prop_str(prop, "0000:00:00.0");
        break;
    case AZIHSM_PART_PROP_ID_MIN_API_REV:
        st = emu_prop_out(prop->val, &prop->len, &k_rev_min, sizeof(k_rev_min));
        break;
    case AZIHSM_PART_PROP_ID_MAX_API_REV:
        st = emu_prop_out(prop->val, &prop->len, &k_rev_max, sizeof(k_rev_max));
        break;
    case AZIHSM_PART_PROP_ID_PART_PUB_KEY:
        st = emu_prop_out(prop->val, &prop->len, emu_state()->part_pub_der,
                          emu_state()->part_pub_der_len);
        break;
    default:
        /* Certificate chain, BMK, MOBK and anything else. */
        st = AZIHSM_STATUS_PROPERTY_NOT_PRESENT;
        break;
    }
out:
    emu_unlock();
    return st;
}

static void close_part_sessions(enum emu_htype type, azihsm_handle h, void *obj, void *arg)
{
    (void)h;
    if (type == EMU_H_SESSION && ((struct emu_session *)obj)->part == *(azihsm_handle *)arg)
        emu_session_close_locked(obj);
}

EMU_EXPORT azihsm_status azihsm_part_close(azihsm_handle part)
{
    struct emu_part *p;

    emu_lock();
    p = emu_handle_get_locked(part, EMU_H_PART);
    if (p == NULL) {
        emu_unlock();
        return AZIHSM_STATUS_INVALID_HANDLE;
    }
    emu_handle_each_locked(close_part_sessions, &part);
    emu_handle_release_locked(part);
    emu_unlock();
    free(p);
    return AZIHSM_STATUS_SUCCESS;
}
