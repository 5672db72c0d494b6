/*
 * The connection pool and requests; see conn.h. Framing is in wire.c,
 * finding and trusting the socket in socket.c, autostart in autostart.c and
 * the circuit breaker in breaker.c (conn_int.h ties them together).
 *
 * Fork safety follows pkcs11-provider's model: the pthread_atfork child
 * handler only re-initialises each pool's lock and marks the pool stale.
 * Every checkout also compares getpid() with the pid that filled the pool,
 * so a child that was created without running atfork handlers is caught
 * too. A stale pool's descriptors are closed in the child, never used: they
 * share the socket with the parent, and a request the parent had in flight
 * is not continued in the child.
 *
 * A request (call) first asks the breaker whether the host is worth trying;
 * every way it can then fail without an answer from the host is collected
 * in one HB_FAIL, raised once at the end and handed to the breaker, which
 * opens on the slow ones (timeouts, failed autostarts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn_int.h"
#include "errors.h"

#define HB_MAX_IDLE 16

typedef struct hb_conn {
    int fd;
    unsigned generation;
    struct hb_conn *next_idle;
    struct hb_conn *next_all;
} HB_CONN;

struct hb_pool {
    pthread_mutex_t lock;
    pid_t pid;          /* process that opened the connections */
    int stale;          /* set in a fork child */
    unsigned generation;
    HB_CONN *idle;
    int nidle;
    HB_CONN *all;       /* every connection, idle or checked out */
    uint64_t next_id;
    HB_BREAKER breaker;
    struct hb_pool *next_pool;
};

/* All pools of this process, for the atfork child handler. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hb_pool *pools;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- clocks and failures ------------------------------------------------- */

uint64_t hb_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t hb_now_ms(void)
{
    return (int64_t)(hb_now_ns() / 1000000u);
}

void hb_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void hb_fail_set(HB_FAIL *f, int reason, int trip, const char *fmt, ...)
{
    va_list ap;

    f->reason = reason;
    f->trip = trip;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
}

/* ---- sessions and fork --------------------------------------------------- */

/*
 * The application's session (HelloRequest.session): one per process, so a
 * session key lives exactly as long as the process keeps a connection to
 * hsmhost. A forked child is another application instance and gets its own.
 * Drawn with getrandom, never RAND_bytes: the library's DRBG may be ours.
 */
static char session_id[33];
static pid_t session_pid;

static void new_session(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    size_t got = 0, i;

    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof(r)) {
        /* No getrandom (old kernel): still unique per process and time. */
        struct timespec ts;
        uint64_t t;

        clock_gettime(CLOCK_REALTIME, &ts);
        t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        memcpy(r, &t, sizeof(t));
        t = (uint64_t)getpid() ^ ((uint64_t)(uintptr_t)&got << 16);
        memcpy(r + 8, &t, sizeof(t));
    }
    for (i = 0; i < sizeof(r); i++) {
        session_id[2 * i] = hex[r[i] >> 4];
        session_id[2 * i + 1] = hex[r[i] & 15];
    }
    session_id[32] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
    session_pid = getpid();
}

static void atfork_child(void)
{
    struct hb_pool *p;

    pthread_mutex_init(&pools_lock, NULL);
    for (p = pools; p != NULL; p = p->next_pool) {
        pthread_mutex_init(&p->lock, NULL);
        p->stale = 1;
    }
    new_session();
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* ---- the pool ------------------------------------------------------------ */

int hb_pool_init(HB_PROV_CTX *provctx)
{
    struct hb_pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return 0;
    pthread_mutex_init(&p->lock, NULL);
    p->pid = getpid();
    p->next_id = 1;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pools_lock);
    if (session_pid != p->pid)
        new_session();
    p->next_pool = pools;
    pools = p;
    pthread_mutex_unlock(&pools_lock);
    provctx->pool = p;
    return 1;
}

/* Caller holds p->lock. Closes (or, in a child, just forgets) everything. */
static void pool_drop_all(struct hb_pool *p)
{
    HB_CONN *c, *next;

    for (c = p->all; c != NULL; c = next) {
        next = c->next_all;
        if (c->fd >= 0)
            close(c->fd);
        free(c);
    }
    p->all = NULL;
    p->idle = NULL;
    p->nidle = 0;
    p->generation++;
}

void hb_pool_free(HB_PROV_CTX *provctx)
{
    struct hb_pool *p = provctx->pool, **pp;

    free(provctx->conf_error);
    provctx->conf_error = NULL;
    if (p == NULL)
        return;
    pthread_mutex_lock(&pools_lock);
    for (pp = &pools; *pp != NULL; pp = &(*pp)->next_pool) {
        if (*pp == p) {
            *pp = p->next_pool;
            break;
        }
    }
    pthread_mutex_unlock(&pools_lock);
    pthread_mutex_lock(&p->lock);
    pool_drop_all(p);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
    free(p);
    provctx->pool = NULL;
}

/* ---- settings ------------------------------------------------------------ */

/*
 * A setting that is not valid is not guessed at, and does not stop the
 * provider from loading either (OpenSSL would drop it silently unless
 * config_diagnostics is set): every request fails with the message instead.
 * A bad hsmbridge_host_uid thus fails closed, even if the copy cannot be
 * made: the uid is simply not trusted.
 */
static void conf_error(HB_PROV_CTX *provctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void conf_error(HB_PROV_CTX *provctx, const char *fmt, ...)
{
    char buf[700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    HB_DEBUG("configuration: %s", buf);
    if (provctx->conf_error == NULL)
        provctx->conf_error = hb_strdup(buf);
}

static void parse_ms(HB_PROV_CTX *provctx, const char *name, const char *s,
                     long min, long max, int *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        conf_error(provctx, "%s = \"%s\" in openssl.cnf: want a number of "
                   "milliseconds from %ld to %ld", name, s, min, max);
        return;
    }
    *out = (int)v;
}

static void parse_host_uids(HB_PROV_CTX *provctx, const char *s)
{
    char buf[512], *tok, *save = NULL;

    provctx->nhost_uids = 0;
    if (s == NULL || *s == '\0')
        return;
    if (strlen(s) >= sizeof(buf)) {
        conf_error(provctx, "hsmbridge_host_uid in openssl.cnf is too long");
        return;
    }
    strcpy(buf, s);
    for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        char *end, pwbuf[1024];
        unsigned long v;
        struct passwd pw, *res = NULL;
        uid_t uid;

        if (provctx->nhost_uids == HB_MAX_HOST_UIDS) {
            conf_error(provctx, "hsmbridge_host_uid = \"%s\" in openssl.cnf: "
                       "at most %d users", s, HB_MAX_HOST_UIDS);
            return;
        }
        errno = 0;
        v = strtoul(tok, &end, 10);
        if (*tok >= '0' && *tok <= '9' && *end == '\0' && errno == 0
            && v < (unsigned long)(uid_t)-1) {
            uid = (uid_t)v;
        } else if (getpwnam_r(tok, &pw, pwbuf, sizeof(pwbuf), &res) == 0
                   && res != NULL) {
            uid = pw.pw_uid;
        } else {
            conf_error(provctx, "hsmbridge_host_uid = \"%s\" in openssl.cnf: "
                       "there is no user \"%s\" (give user names or numeric "
                       "uids)", s, tok);
            return;
        }
        provctx->host_uids[provctx->nhost_uids++] = uid;
    }
}

void hb_conn_configure(HB_PROV_CTX *provctx, const char *host_uid,
                       const char *timeout_ms, const char *retry_ms)
{
    provctx->retry_ms = 1000;
    parse_ms(provctx, "hsmbridge_timeout_ms", timeout_ms, 1, 3600000,
             &provctx->timeout_ms);
    parse_ms(provctx, "hsmbridge_retry_ms", retry_ms, 0, 3600000,
             &provctx->retry_ms);
    parse_host_uids(provctx, host_uid);
}

/* ---- connections --------------------------------------------------------- */

static void raise_host_error(HB_PROV_CTX *provctx,
                             const Hsmbridge__Host__V1__Response *resp,
                             const char *prefix)
{
    int kind = (int)resp->error->kind;
    const char *msg = resp->error->message != NULL && *resp->error->message
        ? resp->error->message
        : "hsmhost reported an error without a message";

    if (kind < 1 || kind > 11)
        kind = 1;
    if (prefix != NULL)
        HB_RAISE(provctx, HB_R_HOST_BASE + kind, "%s: %s", prefix, msg);
    else
        HB_RAISE(provctx, HB_R_HOST_BASE + kind, "%s", msg);
}

static int hello(HB_PROV_CTX *provctx, int fd, HB_FAIL *f)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__HelloRequest h = HSMBRIDGE__HOST__V1__HELLO_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp = NULL;
    char client[96];
    int rc, ok = 0;

    snprintf(client, sizeof(client), "hsmbridge-openssl/%s pid=%ld",
             HB_PROV_VERSION, (long)getpid());
    h.version = HSMBRIDGE__HOST__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
    h.client = client;
    h.session = session_id;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_HELLO;
    req.hello = &h;
    req.id = __atomic_fetch_add(&provctx->pool->next_id, 1, __ATOMIC_RELAXED);
    rc = hb_exchange(fd, &req, &resp, hb_now_ms() + provctx->timeout_ms);
    if (rc != IO_OK && rc != IO_LAST) {
        if (rc == IO_TIMEOUT)
            hb_fail_set(f, HB_R_TIMEOUT, 1,
                        "hsmhost at %s did not answer the hello within %d ms "
                        "(hsmbridge_timeout_ms)", provctx->socket_path,
                        provctx->timeout_ms);
        else
            hb_fail_set(f, HB_R_PROTOCOL, 0,
                        "hsmhost at %s did not answer the hello (connection "
                        "failed)", provctx->socket_path);
        return 0;
    }
    f->reason = 0; /* raised here, if at all */
    if (resp->error != NULL) {
        raise_host_error(provctx, resp, NULL);
    } else if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_HELLO
               || resp->hello->version
                      != HSMBRIDGE__HOST__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "hsmhost at %s does not speak protocol version 1",
                 provctx->socket_path);
    } else {
        HB_DEBUG("connected to hsmhost %s at %s", resp->hello->host_version,
                 provctx->socket_path);
        ok = 1;
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return ok;
}

static HB_CONN *new_conn(HB_PROV_CTX *provctx, HB_FAIL *f)
{
    struct hb_pool *p = provctx->pool;
    HB_CONN *c;
    int err = 0, fd = -1, rc;

    rc = hb_sock_open(provctx, &fd, &err, f);
    if (rc == HB_SOCK_ABSENT && provctx->autostart)
        rc = hb_autostart_open(provctx, err, &fd, f);
    if (rc == HB_SOCK_ABSENT)
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "cannot reach hsmhost at %s: %s; start it with "
                    "'hsmhost serve' (with HSMBRIDGE_SOCKET=%s) or enable "
                    "hsmbridge_autostart",
                    provctx->socket_path, strerror(err), provctx->socket_path);
    if (rc != HB_SOCK_OK)
        return NULL;
    if (!hello(provctx, fd, f)) {
        close(fd);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        hb_fail_set(f, HB_R_MALLOC_FAILURE, 0, "out of memory");
        return NULL;
    }
    c->fd = fd;
    pthread_mutex_lock(&p->lock);
    c->generation = p->generation;
    c->next_all = p->all;
    p->all = c;
    pthread_mutex_unlock(&p->lock);
    return c;
}

/* Caller holds the lock. */
static void check_fork(struct hb_pool *p)
{
    pid_t pid = getpid();

    if (p->stale || p->pid != pid) {
        HB_DEBUG("fork detected (pool of pid %ld, now %ld): dropping inherited "
                 "connections", (long)p->pid, (long)pid);
        pool_drop_all(p);
        p->pid = pid;
        p->stale = 0;
        pthread_mutex_lock(&pools_lock);
        if (session_pid != pid)
            new_session(); /* a child made without atfork handlers */
        pthread_mutex_unlock(&pools_lock);
    }
}

static HB_CONN *checkout(HB_PROV_CTX *provctx, int fresh, HB_FAIL *f)
{
    struct hb_pool *p = provctx->pool;
    HB_CONN *c = NULL;

    pthread_mutex_lock(&p->lock);
    check_fork(p);
    if (!fresh && p->idle != NULL) {
        c = p->idle;
        p->idle = c->next_idle;
        p->nidle--;
        c->next_idle = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (c != NULL)
        return c;
    return new_conn(provctx, f);
}

static void checkin(HB_PROV_CTX *provctx, HB_CONN *c, int healthy)
{
    struct hb_pool *p = provctx->pool;
    HB_CONN **cc;

    pthread_mutex_lock(&p->lock);
    check_fork(p);
    if (c->generation != p->generation) {
        /* Dropped by a fork reset while we used it: already freed. */
        pthread_mutex_unlock(&p->lock);
        return;
    }
    if (healthy && p->nidle < HB_MAX_IDLE) {
        c->next_idle = p->idle;
        p->idle = c;
        p->nidle++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    for (cc = &p->all; *cc != NULL; cc = &(*cc)->next_all) {
        if (*cc == c) {
            *cc = c->next_all;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    close(c->fd);
    free(c);
}

/* ---- requests ------------------------------------------------------------ */

static Hsmbridge__Host__V1__Response *call(HB_PROV_CTX *provctx,
                                           Hsmbridge__Host__V1__Request *req,
                                           int idempotent, HB_TIMING *timing,
                                           const char *prefix, int keep_error);

/*
 * A request for a key opened from a masked blob names the blob's handle. A
 * host that restarted has forgotten it and answers NOT_FOUND: the blob is
 * opened again (store_azihsm.c keeps its bytes) and the request retried
 * once with the new handle. Requests naming a handle already replaced by
 * such a re-open are sent with the new one straight away.
 */
static Hsmbridge__Host__V1__Response *call_masked(
    HB_PROV_CTX *provctx, Hsmbridge__Host__V1__Request *req, int idempotent,
    HB_TIMING *timing, const char *prefix)
{
    Hsmbridge__Host__V1__Response *resp;
    HB_MASKED_SWAP swap;
    int rc;

    hb_masked_refresh(req, &swap);
    resp = call(provctx, req, idempotent, timing, prefix, 1);
    if (resp != NULL && resp->error != NULL) {
        rc = resp->error->kind
                == HSMBRIDGE__HOST__V1__ERROR_KIND__ERROR_KIND_NOT_FOUND
            ? hb_masked_reopen(provctx, req, &swap) : 0;
        if (rc > 0) {
            HB_DEBUG("retrying op %d with the re-opened masked key",
                     (int)req->op_case);
            hsmbridge__host__v1__response__free_unpacked(resp, NULL);
            resp = call(provctx, req, idempotent, timing, prefix, 0);
        } else {
            if (rc == 0) /* not a blob we opened: the host's word stands */
                raise_host_error(provctx, resp, prefix);
            hsmbridge__host__v1__response__free_unpacked(resp, NULL);
            resp = NULL;
        }
    }
    hb_masked_restore(req, &swap);
    return resp;
}

/*
 * errno is preserved: some callers (Python's ssl module) report a stale
 * EAGAIN from our non-blocking socket as the cause of an unrelated failure.
 */
Hsmbridge__Host__V1__Response *hb_call(HB_PROV_CTX *provctx,
                                       Hsmbridge__Host__V1__Request *req,
                                       int idempotent, HB_TIMING *timing)
{
    return hb_call_prefixed(provctx, req, idempotent, timing, NULL);
}

Hsmbridge__Host__V1__Response *hb_call_prefixed(HB_PROV_CTX *provctx,
                                                Hsmbridge__Host__V1__Request *req,
                                                int idempotent,
                                                HB_TIMING *timing,
                                                const char *prefix)
{
    int saved = errno;
    Hsmbridge__Host__V1__Response *resp;

    if (hb_masked_names_handle(req))
        resp = call_masked(provctx, req, idempotent, timing, prefix);
    else
        resp = call(provctx, req, idempotent, timing, prefix, 0);
    errno = saved;
    return resp;
}

static Hsmbridge__Host__V1__Response *call(HB_PROV_CTX *provctx,
                                           Hsmbridge__Host__V1__Request *req,
                                           int idempotent, HB_TIMING *timing,
                                           const char *prefix, int keep_error)
{
    struct hb_pool *p = provctx->pool;
    Hsmbridge__Host__V1__Response *resp = NULL;
    HB_CONN *c;
    HB_FAIL f;
    uint64_t start = hb_now_ns();
    int attempt, rc = IO_BROKEN, probe = 0, admitted;

    if (provctx->conf_error != NULL) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "%s", provctx->conf_error);
        return NULL;
    }
    f.reason = 0;
    f.trip = 0;
    f.msg[0] = '\0';
    pthread_mutex_lock(&p->lock);
    admitted = hb_breaker_admit(&p->breaker, provctx, &probe, &f);
    pthread_mutex_unlock(&p->lock);
    if (!admitted) {
        HB_RAISE(provctx, f.reason, "%s", f.msg);
        return NULL;
    }

    for (attempt = 0; attempt < 2; attempt++) {
        c = checkout(provctx, attempt > 0, &f);
        if (c == NULL) {
            rc = -1; /* f says why */
            break;
        }
        req->id = __atomic_fetch_add(&p->next_id, 1, __ATOMIC_RELAXED);
        rc = hb_exchange(c->fd, req, &resp, hb_now_ms() + provctx->timeout_ms);
        checkin(provctx, c, rc == IO_OK);
        if (rc == IO_LAST)
            rc = IO_OK; /* an answer; the connection is closed above */
        if (rc == IO_OK)
            break;
        HB_DEBUG("request %llu (op %d) failed: %d (attempt %d)",
                 (unsigned long long)req->id, (int)req->op_case, rc, attempt);
        if (rc != IO_BROKEN || !idempotent)
            break;
    }
    if (rc != IO_OK) {
        switch (rc) {
        case -1:
            break;
        case IO_TIMEOUT:
            hb_fail_set(&f, HB_R_TIMEOUT, 1,
                        "hsmhost at %s did not answer within %d ms "
                        "(hsmbridge_timeout_ms, HSMBRIDGE_TIMEOUT_MS)",
                        provctx->socket_path, provctx->timeout_ms);
            break;
        case IO_PROTO:
            hb_fail_set(&f, HB_R_PROTOCOL, 0,
                        "malformed or out-of-order frame from hsmhost at %s",
                        provctx->socket_path);
            break;
        default:
            hb_fail_set(&f, HB_R_CONNECTION_LOST, 0,
                        "connection to hsmhost at %s was lost during the "
                        "request", provctx->socket_path);
        }
        pthread_mutex_lock(&p->lock);
        hb_breaker_done(&p->breaker, provctx, probe, &f);
        pthread_mutex_unlock(&p->lock);
        if (f.reason != 0)
            HB_RAISE(provctx, f.reason, "%s", f.msg);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    hb_breaker_done(&p->breaker, provctx, probe, NULL);
    pthread_mutex_unlock(&p->lock);
    if (timing != NULL) {
        memset(timing, 0, sizeof(*timing));
        timing->total_ns = hb_now_ns() - start;
        if (resp->timing != NULL) {
            timing->host_ns = resp->timing->host_ns;
            timing->backend_ns = resp->timing->backend_ns;
            timing->plugin_ns = resp->timing->plugin_ns;
        }
    }
    if (resp->error != NULL && !keep_error) {
        raise_host_error(provctx, resp, prefix);
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

Hsmbridge__Host__V1__Response *hb_get_key(HB_PROV_CTX *provctx,
                                          const char *reference)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__GetKeyRequest g =
        HSMBRIDGE__HOST__V1__GET_KEY_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;

    g.reference = (char *)reference;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_GET_KEY;
    req.get_key = &g;
    resp = hb_call(provctx, &req, 1, NULL);
    if (resp == NULL)
        return NULL;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_KEY
        || resp->key == NULL) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "hsmhost answered GetKey for %s without a key", reference);
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

int hb_sign_digest(HB_PROV_CTX *provctx, const char *reference,
                   const char *version, const unsigned char *digest,
                   size_t digest_len, const unsigned char *message,
                   size_t message_len,
                   const Hsmbridge__Host__V1__SignatureScheme *scheme,
                   unsigned char *sig, size_t *siglen, size_t sigsize,
                   HB_TIMING *timing)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__SignRequest s = HSMBRIDGE__HOST__V1__SIGN_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;
    int ok = 0;

    s.reference = (char *)reference;
    s.version = (char *)(version != NULL ? version : "");
    s.digest.data = (uint8_t *)digest;
    s.digest.len = digest_len;
    if (message != NULL) {
        s.message.data = (uint8_t *)message;
        s.message.len = message_len;
    }
    s.scheme = (Hsmbridge__Host__V1__SignatureScheme *)scheme;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_SIGN;
    req.sign = &s;
    resp = hb_call(provctx, &req, 1, timing);
    if (resp == NULL)
        return 0;
    if (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_SIGN
        || resp->sign == NULL || resp->sign->signature.len == 0) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "hsmhost answered Sign for %s without a signature", reference);
    } else if (resp->sign->signature.len > sigsize) {
        HB_RAISE(provctx, HB_R_BUFFER_TOO_SMALL,
                 "signature from %s is %zu bytes, buffer holds %zu", reference,
                 resp->sign->signature.len, sigsize);
    } else {
        memcpy(sig, resp->sign->signature.data, resp->sign->signature.len);
        *siglen = resp->sign->signature.len;
        ok = 1;
    }
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return ok;
}
