//go:build ignore

/*
 * The handle table: one per process, guarded by the library's one mutex.
 *
 * A handle is a slot index (low 20 bits, plus one so 0 is never valid) and
 * the slot's generation (high 12 bits). Freeing a slot bumps its
 * generation, so a handle kept after its object went away no longer matches
 * and is refused as stale (AZIHSM_STATUS_INVALID_HANDLE) instead of naming
 * whatever reuses the slot. Each slot records the object's type, and a
 * lookup names the type it wants: a session handle passed where a key is
 * expected is refused the same way.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

#define SLOT_BITS 20u
#define MAX_SLOTS ((1u << SLOT_BITS) - 1u)
#define GEN_MASK  0xFFFu

struct slot {
    uint16_t gen;
    uint8_t type;
    uint32_t next_free; /* index + 1 of the next free slot, 0 ends the list */
    void *obj;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *g_slots;
static uint32_t g_nslots; /* slots in use or on the free list */
static uint32_t g_cap;
static uint32_t g_free; /* index + 1 of the first free slot */

void emu_lock(void)
{
    pthread_mutex_lock(&g_lock);
}

void emu_unlock(void)
{
    pthread_mutex_unlock(&g_lock);
}

static azihsm_handle make_handle(uint32_t idx)
{
    return ((azihsm_handle)(g_slots[idx].gen & GEN_MASK) << SLOT_BITS) | (idx + 1u);
}

azihsm_status emu_handle_alloc_locked(enum emu_htype type, void *obj, azihsm_handle *out)
{
    uint32_t idx;

    if (g_free != 0) {
        idx = g_free - 1u;
        g_free = g_slots[idx].next_free;
    } else {
        if (g_nslots == MAX_SLOTS)
            return AZIHSM_STATUS_INTERNAL_ERROR;
        if (g_nslots == g_cap) {
            uint32_t cap = g_cap ? g_cap * 2u : 64u;
            struct slot *s;

            if (cap > MAX_SLOTS)
                cap = MAX_SLOTS;
            s = realloc(g_slots, (size_t)cap * sizeof(*s));
            if (s == NULL)
                return AZIHSM_STATUS_INTERNAL_ERROR;
            g_slots = s;
            g_cap = cap;
        }
        idx = g_nslots++;
        g_slots[idx].gen = 1;
    }
    g_slots[idx].type = (uint8_t)type;
    g_slots[idx].obj = obj;
    g_slots[idx].next_free = 0;
    *out = make_handle(idx);
    return AZIHSM_STATUS_SUCCESS;
}

static struct slot *find(azihsm_handle h)
{
    uint32_t idx = (h & MAX_SLOTS);

    if (idx == 0 || idx > g_nslots)
        return NULL;
    idx -= 1u;
    if (g_slots[idx].type == EMU_H_FREE || make_handle(idx) != h)
        return NULL;
    return &g_slots[idx];
}

void *emu_handle_get_locked(azihsm_handle h, enum emu_htype type)
{
    struct slot *s = find(h);

    if (s == NULL || s->type != (uint8_t)type)
        return NULL;
    return s->obj;
}

void *emu_handle_get_key_locked(azihsm_handle h, enum emu_htype *type)
{
    struct slot *s = find(h);

    if (s == NULL)
        return NULL;
    if (s->type != EMU_H_PRIV && s->type != EMU_H_PUB && s->type != EMU_H_SECRET)
        return NULL;
    if (type != NULL)
        *type = (enum emu_htype)s->type;
    return s->obj;
}

void emu_handle_release_locked(azihsm_handle h)
{
    struct slot *s = find(h);
    uint32_t idx;

    if (s == NULL)
        return;
    idx = (uint32_t)(s - g_slots);
    s->type = EMU_H_FREE;
    s->obj = NULL;
    s->gen = (uint16_t)((s->gen + 1u) & GEN_MASK);
    if (s->gen == 0)
        s->gen = 1;
    s->next_free = g_free;
    g_free = idx + 1u;
}

void emu_handle_each_locked(void (*fn)(enum emu_htype type, azihsm_handle h, void *obj,
                                       void *arg),
                            void *arg)
{
    for (uint32_t i = 0; i < g_nslots; i++) {
        if (g_slots[i].type != EMU_H_FREE)
            fn((enum emu_htype)g_slots[i].type, make_handle(i), g_slots[i].obj, arg);
    }
}

void emu_handle_counts_locked(uint32_t counts[EMU_H_NTYPES])
{
    memset(counts, 0, sizeof(uint32_t) * EMU_H_NTYPES);
    for (uint32_t i = 0; i < g_nslots; i++)
        counts[g_slots[i].type]++;
}

int emu_handles_teardown_locked(void)
{
    for (uint32_t i = 0; i < g_nslots; i++) {
        if (g_slots[i].type != EMU_H_FREE)
            return 0; /* the caller leaked handles: leave them reachable */
    }
    free(g_slots);
    g_slots = NULL;
    g_nslots = g_cap = g_free = 0;
    return 1;
}
