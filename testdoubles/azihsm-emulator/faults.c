//go:build ignore

/*
 * Faults, for the recovery tests of whoever drives the device.
 *
 * Two switches set the same per-process counters: the control call
 * azihsm_emu_inject_fault, and the control file <state dir>/faults, read
 * again whenever its inode, size or modification time changes (it is
 * stat'ed at every key and crypto call). Each line of the file is
 * "<fault> <count>"; blank lines and lines starting with # are skipped. A
 * line sets that fault's counter; faults the file does not name keep
 * theirs, and removing the file changes nothing (write "<fault> 0").
 *
 * A fault fires at a key or crypto call (key generation, unwrap, unmask,
 * derive, sign, verify, the streaming calls but free, encrypt, decrypt)
 * once its handles are found valid and before anything else is looked at;
 * the call then changes nothing. count > 0 fires that many times, -1 for
 * ever, 0 clears.
 *
 *   io_aborted                   the call returns IO_ABORTED
 *   device_not_ready             the call returns DEVICE_NOT_READY
 *   session_needs_renegotiation  every open session goes stale; the call
 *                                returns SESSION_NEEDS_RENEGOTIATION
 *   live_migration               every open session goes stale; the call
 *                                returns IO_ABORTED
 *
 * A stale session answers SESSION_NEEDS_RENEGOTIATION to every call on it
 * or its keys and contexts (key_get_prop and key_delete included) except
 * azihsm_sess_close and azihsm_free_ctx_handle; new sessions are fresh. With
 * count -1 the last two fault kinds make every session stale at its first
 * key or crypto call, new ones included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "emu.h"

enum fault {
    F_LIVE_MIGRATION,
    F_RENEGOTIATION,
    F_IO_ABORTED,
    F_DEVICE_NOT_READY,
    F_COUNT
};

/* In the order they are tried when several are armed. */
static const char *const g_names[F_COUNT] = {
    "live_migration",
    "session_needs_renegotiation",
    "io_aborted",
    "device_not_ready",
};

static int32_t g_armed[F_COUNT];
static uint32_t g_fired;

static struct {
    int present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} g_file;

static int fault_index(const char *name)
{
    for (int i = 0; i < F_COUNT; i++) {
        if (strcmp(name, g_names[i]) == 0)
            return i;
    }
    return -1;
}

static void read_faults_file(const char *path)
{
    char line[256];
    int lineno = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[64], extra[2];
        long count;
        char *p = line;
        int idx, n;

        lineno++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        n = sscanf(p, "%63s %ld %1s", name, &count, extra);
        idx = n == 2 ? fault_index(name) : -1;
        if (idx < 0 || count < -1 || count > INT32_MAX) {
            fprintf(stderr, "azihsm-emulator: %s:%d: ignored (want \"<fault> <count>\")\n",
                    path, lineno);
            continue;
        }
        g_armed[idx] = (int32_t)count;
    }
    fclose(f);
}

static void poll_faults_file_locked(void)
{
    const struct emu_state *s = emu_state();
    char path[4200];
    struct stat st;

    if (s->dir == NULL)
        return;
    snprintf(path, sizeof(path), "%s/faults", s->dir);
    if (stat(path, &st) != 0) {
        g_file.present = 0;
        return;
    }
    if (g_file.present && g_file.dev == st.st_dev && g_file.ino == st.st_ino &&
        g_file.size == st.st_size && g_file.mtime.tv_sec == st.st_mtim.tv_sec &&
        g_file.mtime.tv_nsec == st.st_mtim.tv_nsec)
        return;
    g_file.present = 1;
    g_file.dev = st.st_dev;
    g_file.ino = st.st_ino;
    g_file.size = st.st_size;
    g_file.mtime = st.st_mtim;
    read_faults_file(path);
}

static void stale_all(enum emu_htype type, azihsm_handle h, void *obj, void *arg)
{
    (void)h;
    (void)arg;
    if (type == EMU_H_SESSION)
        ((struct emu_session *)obj)->stale = 1;
}

azihsm_status emu_stale_locked(const struct emu_session *s)
{
    return s->stale ? AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION : AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_gate_locked(struct emu_session *s)
{
    poll_faults_file_locked();
    if (s->stale)
        return AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION;
    for (int i = 0; i < F_COUNT; i++) {
        if (g_armed[i] == 0)
            continue;
        if (g_armed[i] > 0)
            g_armed[i]--;
        g_fired++;
        switch (i) {
        case F_LIVE_MIGRATION:
            emu_handle_each_locked(stale_all, NULL);
            return AZIHSM_STATUS_IO_ABORTED;
        case F_RENEGOTIATION:
            emu_handle_each_locked(stale_all, NULL);
            return AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION;
        case F_IO_ABORTED:
            return AZIHSM_STATUS_IO_ABORTED;
        default:
            return AZIHSM_STATUS_DEVICE_NOT_READY;
        }
    }
    return AZIHSM_STATUS_SUCCESS;
}

EMU_EXPORT azihsm_status azihsm_emu_inject_fault(const char *fault, int32_t count)
{
    int idx;

    if (fault == NULL || count < -1)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    idx = fault_index(fault);
    if (idx < 0)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    g_armed[idx] = count;
    emu_unlock();
    return AZIHSM_STATUS_SUCCESS;
}

EMU_EXPORT azihsm_status azihsm_emu_faults_fired(uint32_t *n)
{
    if (n == NULL)
        return AZIHSM_STATUS_INVALID_ARGUMENT;
    emu_lock();
    *n = g_fired;
    emu_unlock();
    return AZIHSM_STATUS_SUCCESS;
}
