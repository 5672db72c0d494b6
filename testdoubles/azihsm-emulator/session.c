//go:build ignore

/*
 * Sessions. A session is opened on an initialised partition handle with the
 * established credential and gets a random 16-byte id, which session keys
 * carry in their blobs. Closing a session deletes every key handle and
 * streaming context made in it.
 */
#include <stdlib.h>
#include <string.h>

#include "emu.h"

EMU_EXPORT azihsm_status azihsm_sess_open(azihsm_handle part,
                                          const struct azihsm_credentials *creds,
                                          const struct azihsm_buffer *seed,
                                          azihsm_handle *session)
{
    struct emu_part *p;
    struct emu_session *s;
    const uint8_t *sp;
    uint32_t slen;
    azihsm_status st;

    if (creds == NULL || session == NULL || emu_in_opt(seed, &sp, &slen) != AZIHSM_STATUS_SUCCESS)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    p = emu_handle_get_locked(part, EMU_H_PART);
    if (p == NULL) {
        st = AZIHSM_STATUS_INVALID_HANDLE;
        goto out;
    }
    if (!p->initialised) {
        st = AZIHSM_STATUS_PARTITION_NOT_PROVISIONED;
        goto out;
    }
    st = emu_state_credential(creds, 0);
    if (st != AZIHSM_STATUS_SUCCESS)
        goto out;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    s->part = part;
    s->rev = p->rev;
    emu_random(s->id, sizeof(s->id));
    st = emu_handle_alloc_locked(EMU_H_SESSION, s, &s->handle);
    if (st != AZIHSM_STATUS_SUCCESS)
        free(s);
    else
        *session = s->handle;
out:
    emu_unlock();
    return st;
}

EMU_EXPORT azihsm_status azihsm_session_get_prop(azihsm_handle session,
                                                 struct azihsm_session_prop *prop)
{
    struct emu_session *s;
    azihsm_status st;

    if (prop == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    s = emu_handle_get_locked(session, EMU_H_SESSION);
    if (s == NULL)
        st = AZIHSM_STATUS_INVALID_HANDLE;
    else if ((st = emu_stale_locked(s)) != AZIHSM_STATUS_SUCCESS)
        ;
    else if (prop->id == AZIHSM_SESSION_PROP_ID_API_REV)
        st = emu_prop_out(prop->val, &prop->len, &s->rev, sizeof(s->rev));
    else
        st = AZIHSM_STATUS_UNSUPPORTED_PROPERTY;
    emu_unlock();
    return st;
}

static void close_children(enum emu_htype type, azihsm_handle h, void *obj, void *arg)
{
    azihsm_handle sh = *(azihsm_handle *)arg;

    if (type == EMU_H_PRIV || type == EMU_H_PUB || type == EMU_H_SECRET) {
        struct emu_key *k = obj;

        if (k->session == sh) {
            emu_handle_release_locked(h);
            emu_key_free(k);
        }
    } else if (type == EMU_H_CTX && emu_ctx_session(obj) == sh) {
        emu_handle_release_locked(h);
        emu_ctx_free(obj);
    }
}

void emu_session_close_locked(struct emu_session *s)
{
    azihsm_handle sh = s->handle;

    emu_handle_each_locked(close_children, &sh);
    emu_handle_release_locked(sh);
    free(s);
}

struct emu_session *emu_key_session_locked(const struct emu_key *k)
{
    return emu_handle_get_locked(k->session, EMU_H_SESSION);
}

EMU_EXPORT azihsm_status azihsm_sess_close(azihsm_handle session)
{
    struct emu_session *s;

    emu_lock();
    s = emu_handle_get_locked(session, EMU_H_SESSION);
    if (s != NULL)
        emu_session_close_locked(s);
    emu_unlock();
    return s != NULL ? AZIHSM_STATUS_SUCCESS : AZIHSM_STATUS_INVALID_HANDLE;
}
