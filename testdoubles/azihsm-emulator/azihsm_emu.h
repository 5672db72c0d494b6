/*
 * Control calls of the emulated Azure Integrated HSM device
 * (build/emulator/libazihsm_api_native.so). The real library has none of
 * these: a client finds them with dlsym and treats their absence as "real
 * device". README.md in this folder describes what each one does.
 */
#ifndef HSMBRIDGE_AZIHSM_EMU_H
#define HSMBRIDGE_AZIHSM_EMU_H

#include <stdint.h>

#include "azihsm_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef AZIHSM_NO_PROTOTYPES
/*
 * Counts of the handles this process has open, by type. Partition lists
 * (azihsm_part_get_list) are not counted. keys counts private, public and
 * secret key handles together. Any pointer may be NULL.
 */
azihsm_status azihsm_emu_open_handles(uint32_t *partitions, uint32_t *sessions,
                                      uint32_t *keys, uint32_t *contexts);

/*
 * Arms a fault: "io_aborted", "device_not_ready",
 * "session_needs_renegotiation" or "live_migration". count > 0: that many
 * times; -1: for ever; 0: clears it. Unknown name or count < -1:
 * AZIHSM_STATUS_INVALID_ARGUMENT.
 */
azihsm_status azihsm_emu_inject_fault(const char *fault, int32_t count);

/* How many faults have fired in this process since it loaded the library. */
azihsm_status azihsm_emu_faults_fired(uint32_t *n);
#endif

/* X(name, parameters), as AZIHSM_API_FUNCTIONS. */
#define AZIHSM_EMU_FUNCTIONS(X)                                                \
    X(azihsm_emu_open_handles, (uint32_t *partitions, uint32_t *sessions,      \
                                uint32_t *keys, uint32_t *contexts))           \
    X(azihsm_emu_inject_fault, (const char *fault, int32_t count))             \
    X(azihsm_emu_faults_fired, (uint32_t *n))

#ifdef __cplusplus
}
#endif
#endif
