/*
 * Error reporting and debug tracing.
 *
 * Errors go on OpenSSL's error queue through the core's error upcalls (the
 * provider-side form of ERR_raise_data), so they carry our own library code
 * and the reason strings from hb_reason_strings. Host errors keep the host's
 * message verbatim: it already names the key reference and the cause.
 */
#ifndef HSMBRIDGE_ERRORS_H
#define HSMBRIDGE_ERRORS_H

#include "provider.h"

/* Reason codes: local ones, then 100 + host ErrorKind. */
enum {
    HB_R_INTERNAL = 1,
    HB_R_HOST_UNREACHABLE,
    HB_R_PROTOCOL,
    HB_R_TIMEOUT,
    HB_R_CONNECTION_LOST,
    HB_R_AUTOSTART_FAILED,
    HB_R_INVALID_ARGUMENT,
    HB_R_UNSUPPORTED_DIGEST,
    HB_R_UNSUPPORTED_PADDING,
    HB_R_BAD_DIGEST_LENGTH,
    HB_R_BUFFER_TOO_SMALL,
    HB_R_NOT_AN_HSM_KEY,
    HB_R_BAD_KEY,
    HB_R_BAD_REFERENCE_FILE,
    HB_R_PRIVATE_KEY_NOT_EXPORTABLE,
    HB_R_OPERATION_NOT_INITIALIZED,
    HB_R_MALLOC_FAILURE,

    HB_R_HOST_BASE = 100,
    HB_R_HOST_INTERNAL = 101,
    HB_R_HOST_INVALID_REFERENCE = 102,
    HB_R_HOST_NOT_FOUND = 103,
    HB_R_HOST_OPERATION_NOT_ALLOWED = 104,
    HB_R_HOST_UNSUPPORTED = 105,
    HB_R_HOST_INVALID_INPUT = 106,
    HB_R_HOST_UNAVAILABLE = 107,
    HB_R_HOST_PERMISSION_DENIED = 108,
    HB_R_HOST_UNAUTHENTICATED = 109,
    HB_R_HOST_ALREADY_EXISTS = 110,
    HB_R_HOST_NO_ROUTE = 111,
};

extern const OSSL_ITEM hb_reason_strings[];

void hb_raise(const HB_PROV_CTX *provctx, const char *file, int line,
              const char *func, int reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define HB_RAISE(ctx, reason, ...) \
    hb_raise((ctx), __FILE__, __LINE__, __func__, (reason), __VA_ARGS__)

/* Tracing to stderr when HSMBRIDGE_DEBUG=1. */
extern int hb_debug_enabled;
void hb_debug_init(void);
void hb_debug_printf(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define HB_DEBUG(...) \
    do { \
        if (hb_debug_enabled) \
            hb_debug_printf(__func__, __VA_ARGS__); \
    } while (0)

#endif
