//go:build ignore

/*
 * Control calls of the emulation (azihsm_emu.h) and the leak report.
 *
 * When AZIHSM_EMU_LEAK_REPORT names a file, the library's destructor appends
 * one line to it, "pid=<pid> partitions=<n> sessions=<n> keys=<n>
 * contexts=<n>", counting the handles still open when the library is
 * unloaded or the process exits through exit(3). (A Go program's exit does
 * not run C destructors: there the line is written when the binding
 * dlcloses the library.)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emu.h"

static void counts(uint32_t *partitions, uint32_t *sessions, uint32_t *keys, uint32_t *contexts)
{
    uint32_t c[EMU_H_NTYPES];

    emu_handle_counts_locked(c);
    if (partitions != NULL)
        *partitions = c[EMU_H_PART];
    if (sessions != NULL)
        *sessions = c[EMU_H_SESSION];
    if (keys != NULL)
        *keys = c[EMU_H_PRIV] + c[EMU_H_PUB] + c[EMU_H_SECRET];
    if (contexts != NULL)
        *contexts = c[EMU_H_CTX];
}

EMU_EXPORT azihsm_status azihsm_emu_open_handles(uint32_t *partitions, uint32_t *sessions,
                                                 uint32_t *keys, uint32_t *contexts)
{
    emu_lock();
    counts(partitions, sessions, keys, contexts);
    emu_unlock();
    return AZIHSM_STATUS_SUCCESS;
}

__attribute__((destructor)) static void emu_unload(void)
{
    const char *path = getenv("AZIHSM_EMU_LEAK_REPORT");
    uint32_t p, s, k, c;

    emu_lock();
    counts(&p, &s, &k, &c);
    if (path != NULL && *path != '\0') {
        char line[160];
        int n = snprintf(line, sizeof(line),
                         "pid=%ld partitions=%u sessions=%u keys=%u contexts=%u\n",
                         (long)getpid(), p, s, k, c);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

        if (fd >= 0) {
            /* One write: lines of processes sharing the file do not mix. */
            if (write(fd, line, (size_t)n) != n)
                (void)0;
            close(fd);
        }
    }
    /*
     * Free what is plain memory. Key material is left alone: at exit,
     * libcrypto may already be cleaned up, and open handles are the
     * caller's leak, which the report shows.
     */
    if (emu_handles_teardown_locked())
        emu_state_teardown();
    emu_unlock();
}
