/* Error queue and debug tracing; see errors.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "errors.h"

const OSSL_ITEM hb_reason_strings[] = {
    { HB_R_INTERNAL, "hsmbridge internal error" },
    { HB_R_HOST_UNREACHABLE, "hsmhost unreachable" },
    { HB_R_PROTOCOL, "hsmhost protocol error" },
    { HB_R_TIMEOUT, "hsmhost request timed out" },
    { HB_R_CONNECTION_LOST, "connection to hsmhost lost" },
    { HB_R_AUTOSTART_FAILED, "could not start hsmhost" },
    { HB_R_INVALID_ARGUMENT, "invalid argument" },
    { HB_R_UNSUPPORTED_DIGEST, "unsupported digest" },
    { HB_R_UNSUPPORTED_PADDING, "unsupported padding" },
    { HB_R_BAD_DIGEST_LENGTH, "digest length does not match the digest" },
    { HB_R_BUFFER_TOO_SMALL, "output buffer too small" },
    { HB_R_NOT_AN_HSM_KEY, "key is public only, not held by a backend" },
    { HB_R_BAD_KEY, "bad key" },
    { HB_R_BAD_REFERENCE_FILE, "malformed key reference file" },
    { HB_R_PRIVATE_KEY_NOT_EXPORTABLE, "private key never leaves the backend" },
    { HB_R_OPERATION_NOT_INITIALIZED, "operation not initialized" },
    { HB_R_MALLOC_FAILURE, "out of memory" },
    { HB_R_HOST_INTERNAL, "backend internal error" },
    { HB_R_HOST_INVALID_REFERENCE, "invalid key reference" },
    { HB_R_HOST_NOT_FOUND, "key not found" },
    { HB_R_HOST_OPERATION_NOT_ALLOWED, "operation not allowed for key" },
    { HB_R_HOST_UNSUPPORTED, "unsupported by backend" },
    { HB_R_HOST_INVALID_INPUT, "invalid input" },
    { HB_R_HOST_UNAVAILABLE, "backend unavailable" },
    { HB_R_HOST_PERMISSION_DENIED, "permission denied" },
    { HB_R_HOST_UNAUTHENTICATED, "not authenticated to backend" },
    { HB_R_HOST_ALREADY_EXISTS, "key already exists" },
    { HB_R_HOST_NO_ROUTE, "no backend for key reference" },
    { 0, NULL },
};

/*
 * OpenSSL keeps at most ERR_MAX_DATA_SIZE - 1 bytes of an error's text, and
 * a text that does not fit is not cut but dropped whole (ERR_vset_error
 * keeps nothing when BIO_vsnprintf reports truncation): a long host message
 * would leave the reason alone, e.g. "invalid key reference" without the
 * reference or why. So long texts are shortened here, keeping both ends:
 * host messages name the key first and give the cause last.
 */
#define HB_ERR_TEXT_MAX (ERR_MAX_DATA_SIZE - 1)
#define HB_ERR_TAIL 384
#define HB_ELISION " \xe2\x80\xa6 " /* " … " */

static int utf8_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Cuts the middle out of s (length len > HB_ERR_TEXT_MAX), in place. */
static void elide(char *s, size_t len)
{
    size_t sep = strlen(HB_ELISION);
    size_t head = HB_ERR_TEXT_MAX - HB_ERR_TAIL - sep, tail = len - HB_ERR_TAIL;

    /* Whole UTF-8 characters only: the text is for people. */
    while (head > 0 && utf8_cont((unsigned char)s[head]))
        head--;
    while (tail < len && utf8_cont((unsigned char)s[tail]))
        tail++;
    memcpy(s + head, HB_ELISION, sep);
    memmove(s + head + sep, s + tail, len - tail + 1);
}

static void set_error(const HB_PROV_CTX *provctx, int reason,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    provctx->core_vset_error(provctx->handle, reason, fmt, ap);
    va_end(ap);
}

void hb_raise(const HB_PROV_CTX *provctx, const char *file, int line,
              const char *func, int reason, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && (text = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (hb_debug_enabled)
        hb_debug_printf(func, "error %d: %s", reason,
                        text != NULL ? text : fmt);
    if (provctx == NULL || provctx->core_new_error == NULL
        || provctx->core_vset_error == NULL) {
        free(text);
        return;
    }
    provctx->core_new_error(provctx->handle);
    if (provctx->core_set_error_debug != NULL)
        provctx->core_set_error_debug(provctx->handle, file, line, func);
    if (text != NULL) {
        if ((size_t)n > HB_ERR_TEXT_MAX)
            elide(text, (size_t)n);
        set_error(provctx, reason, "%s", text);
    } else {
        /* Out of memory: OpenSSL formats it, if it fits. */
        va_start(ap, fmt);
        provctx->core_vset_error(provctx->handle, reason, fmt, ap);
        va_end(ap);
    }
    free(text);
}

int hb_debug_enabled;

void hb_debug_init(void)
{
    const char *v = getenv("HSMBRIDGE_DEBUG");

    hb_debug_enabled = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

void hb_debug_printf(const char *func, const char *fmt, ...)
{
    char buf[2048];
    struct timespec ts;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* One write per line so lines from threads do not interleave. */
    fprintf(stderr, "hsmbridge[%ld] %ld.%06ld %s: %s\n", (long)getpid(),
            (long)ts.tv_sec, ts.tv_nsec / 1000, func, buf);
}
