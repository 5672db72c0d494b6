/*
 * Failing fast while hsmhost is unavailable: a circuit breaker per pool
 * (per loaded provider instance, so per process and socket).
 *
 * A single-threaded server (an nginx worker) that waits for the host waits
 * with every connection it serves. So after a *slow* failure — an autostart
 * that did not bring a host up, a request or Hello that timed out, a listen
 * queue that is full — the breaker opens for hsmbridge_retry_ms: every
 * request fails at once, saying the host is unavailable, why, and when it
 * will be tried again. The first request after the window is the one probe
 * (others still fail at once while it runs); if the host answers it, the
 * breaker closes, if it fails slowly again, the window starts over. Fast
 * failures (connection refused with autostart off, a refused socket, an
 * error the host answered) do not open it: they cost nothing to repeat and
 * the next attempt may well succeed.
 *
 * The state lives in the pool and is guarded by the pool's lock (callers
 * hold it). A fork child inherits it as it stands, which is right (the host
 * is as unavailable for the child); a probe in flight in the parent is
 * recognised by its pid and does not count in the child.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn_int.h"
#include "errors.h"

int hb_breaker_admit(HB_BREAKER *b, const HB_PROV_CTX *provctx, int *probe,
                     HB_FAIL *f)
{
    int64_t now;

    *probe = 0;
    if (provctx->retry_ms <= 0 || b->open_until == 0)
        return 1;
    now = hb_now_ms();
    if (now < b->open_until) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "hsmhost at %s is unavailable; failing at once until it "
                    "is tried again in %ld ms (hsmbridge_retry_ms = %d). "
                    "%ld ms ago: %s",
                    provctx->socket_path, (long)(b->open_until - now),
                    provctx->retry_ms, (long)(now - b->opened_at), b->cause);
        return 0;
    }
    if (b->probe_pid == getpid()) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "hsmhost at %s is unavailable; one request is trying it "
                    "again now, and the others fail at once until that try "
                    "ends (at most hsmbridge_timeout_ms = %d ms). "
                    "%ld ms ago: %s",
                    provctx->socket_path, provctx->timeout_ms,
                    (long)(now - b->opened_at), b->cause);
        return 0;
    }
    b->probe_pid = getpid();
    *probe = 1;
    HB_DEBUG("breaker: probing hsmhost at %s", provctx->socket_path);
    return 1;
}

void hb_breaker_done(HB_BREAKER *b, const HB_PROV_CTX *provctx, int probe,
                     const HB_FAIL *f)
{
    if (f != NULL && f->trip && provctx->retry_ms > 0) {
        b->opened_at = hb_now_ms();
        b->open_until = b->opened_at + provctx->retry_ms;
        snprintf(b->cause, sizeof(b->cause), "%s", f->msg);
        b->probe_pid = 0;
        HB_DEBUG("breaker: open for %d ms: %s", provctx->retry_ms, f->msg);
        return;
    }
    if (f == NULL || probe) {
        if (b->open_until != 0)
            HB_DEBUG("breaker: closed (%s)", f == NULL ? "the host answered"
                                                       : "fast failure");
        b->open_until = 0;
        b->probe_pid = 0;
    }
}
