/*
 * Inside the connection layer (conn.c and the files it is split into):
 *
 *   conn.c       the pool, fork handling, sessions, requests (hb_call)
 *   wire.c       framing: one request/response exchange under a deadline
 *   socket.c     which socket, whether to trust it, connecting
 *   autostart.c  starting hsmhost when nothing answers
 *   breaker.c    failing fast while the host is unavailable
 *
 * Nothing here is used outside those files; the rest of the provider sees
 * conn.h only.
 */
#ifndef HSMBRIDGE_CONN_INT_H
#define HSMBRIDGE_CONN_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "conn.h"

/* Monotonic clock. */
uint64_t hb_now_ns(void);
int64_t hb_now_ms(void);
void hb_sleep_ms(int ms);

/*
 * Why a request could not be made. The connection layer fills one of these
 * instead of raising at once, so that call() raises exactly one error and
 * the circuit breaker can keep its text as the cause it reports later.
 */
#define HB_FAIL_MSG 900

typedef struct hb_fail {
    int reason;    /* HB_R_*; 0: nothing to raise (already on the queue) */
    int trip;      /* a slow failure: opens the circuit breaker */
    char msg[HB_FAIL_MSG];
} HB_FAIL;

void hb_fail_set(HB_FAIL *f, int reason, int trip, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- wire.c ---- */

enum {
    IO_OK = 0,
    IO_BROKEN,  /* the connection failed or the host closed it */
    IO_TIMEOUT, /* the deadline passed */
    IO_PROTO,   /* a frame we cannot use */
    IO_LAST     /* a usable answer, after which the host closes: do not reuse */
};

/*
 * One request/response exchange on fd. On IO_OK or IO_LAST *out holds the
 * response to req.
 */
int hb_exchange(int fd, const Hsmbridge__Host__V1__Request *req,
                Hsmbridge__Host__V1__Response **out, int64_t deadline);

/* ---- socket.c ---- */

enum {
    HB_SOCK_OK = 0, /* connected, and the peer is trusted */
    HB_SOCK_ABSENT, /* nothing listens (ENOENT, ECONNREFUSED): autostart may help */
    HB_SOCK_FAILED  /* refused or unreachable; f says why */
};

/*
 * Connects to provctx->socket_path after checking the socket and its folder,
 * then checks the peer's SO_PEERCRED uid. On HB_SOCK_OK *fd is a
 * non-blocking, close-on-exec socket. On HB_SOCK_ABSENT *err is the errno.
 */
int hb_sock_open(HB_PROV_CTX *provctx, int *fd, int *err, HB_FAIL *f);

/* ---- autostart.c ---- */

/*
 * Called after hb_sock_open answered HB_SOCK_ABSENT (err: its errno): starts
 * hsmhost and connects. Same results as hb_sock_open; HB_SOCK_ABSENT is
 * never returned (a host that did not come up is HB_SOCK_FAILED, a trip).
 */
int hb_autostart_open(HB_PROV_CTX *provctx, int err, int *fd, HB_FAIL *f);

/* ---- breaker.c ---- */

typedef struct hb_breaker {
    int64_t open_until; /* ms, monotonic; 0: closed */
    int64_t opened_at;
    pid_t probe_pid;    /* a request of this process is probing; 0: none */
    char cause[HB_FAIL_MSG]; /* the failure that opened it */
} HB_BREAKER;

/*
 * The caller holds the pool's lock for both. admit: 1 lets the request go
 * ahead (*probe = 1 when it is the one probe after the window); 0 fills f
 * with "unavailable, tried again in ..." and the request must fail at once.
 * done: the request's outcome; f NULL when the host answered.
 */
int hb_breaker_admit(HB_BREAKER *b, const HB_PROV_CTX *provctx, int *probe,
                     HB_FAIL *f);
void hb_breaker_done(HB_BREAKER *b, const HB_PROV_CTX *provctx, int probe,
                     const HB_FAIL *f);

#endif
