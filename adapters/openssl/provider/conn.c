/*
 * Connection pool, framing and autostart; see conn.h.
 *
 * Fork safety follows pkcs11-provider's model: the pthread_atfork child
 * handler only re-initialises each pool's lock and marks the pool stale.
 * Every checkout also compares getpid() with the pid that filled the pool,
 * so a child that was created without running atfork handlers is caught
 * too. A stale pool's descriptors are closed in the child, never used: they
 * share the socket with the parent, and a request the parent had in flight
 * is not continued in the child.
 *
 * Autostart never forks the application (it may have threads running, and
 * a Go runtime must not be in it anyway): hsmhost is started with
 * posix_spawn through a short-lived /bin/sh that backgrounds it, so the host
 * ends up in its own session, re-parented to init, and the application is
 * left with no child to reap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "errors.h"

extern char **environ;

#define HB_MAX_FRAME (1u << 20)
#define HB_MAX_IDLE 16
#define HB_AUTOSTART_WAIT_MS 5000

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
    struct hb_pool *next_pool;
};

/* All pools of this process, for the atfork child handler. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hb_pool *pools;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * The application's session (HelloRequest.session): one per process, so a
 * session key lives exactly as long as the process keeps a connection to
 * hsmhost. A forked child is another application instance and gets its own.
 * Drawn with getrandom, never RAND_bytes: the library's DRBG may be ours.
 */
static char session_id[33];
static pid_t session_pid;
static uint64_t now_ns_for_session(void);

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
        uint64_t t = now_ns_for_session();

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

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns_for_session(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t now_ms(void)
{
    return (int64_t)(now_ns() / 1000000u);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

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

/* ---- socket path ------------------------------------------------------ */

char *hb_default_socket_path(void)
{
    const char *env = getenv("HSMBRIDGE_SOCKET");
    const char *xdg;
    char buf[PATH_MAX];

    if (env != NULL && *env != '\0')
        return hb_strdup(env);
    if (getuid() == 0)
        return hb_strdup("/run/hsmbridge/hsmhost.sock");
    xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg != NULL && *xdg != '\0')
        snprintf(buf, sizeof(buf), "%s/hsmbridge/hsmhost.sock", xdg);
    else
        snprintf(buf, sizeof(buf), "/tmp/hsmbridge-%lu/hsmhost.sock",
                 (unsigned long)getuid());
    return hb_strdup(buf);
}

/* ---- low-level I/O with a deadline --------------------------------------- */

enum { IO_OK = 0, IO_BROKEN, IO_TIMEOUT, IO_PROTO };

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd;
    int64_t left;
    int r;

    for (;;) {
        left = deadline - now_ms();
        if (left <= 0)
            return IO_TIMEOUT;
        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;
        r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return IO_OK; /* errors and hangups show up in the read/write */
        if (r == 0)
            return IO_TIMEOUT;
        if (errno != EINTR)
            return IO_BROKEN;
    }
}

static int write_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, deadline);

            if (w != IO_OK)
                return w;
            continue;
        }
        return IO_BROKEN;
    }
    return IO_OK;
}

static int read_all(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return IO_BROKEN; /* the host closed the connection */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);

            if (w != IO_OK)
                return w;
            continue;
        }
        return IO_BROKEN;
    }
    return IO_OK;
}

/*
 * One request/response exchange on fd. On IO_OK *out holds the response
 * carrying the request's id.
 */
static int exchange(int fd, const Hsmbridge__Host__V1__Request *req,
                    Hsmbridge__Host__V1__Response **out, int64_t deadline)
{
    size_t len = hsmbridge__host__v1__request__get_packed_size(req);
    uint8_t *buf, hdr[4];
    uint32_t rlen;
    Hsmbridge__Host__V1__Response *resp;
    int rc;

    *out = NULL;
    if (len > HB_MAX_FRAME)
        return IO_PROTO;
    buf = malloc(len + 4);
    if (buf == NULL)
        return IO_PROTO;
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    hsmbridge__host__v1__request__pack(req, buf + 4);
    rc = write_all(fd, buf, len + 4, deadline);
    /* Frames can carry key material (wrap, unwrap, decrypt): wipe them. */
    OPENSSL_cleanse(buf, len + 4);
    free(buf);
    if (rc != IO_OK)
        return rc;

    rc = read_all(fd, hdr, 4, deadline);
    if (rc != IO_OK)
        return rc;
    rlen = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16)
        | ((uint32_t)hdr[2] << 8) | (uint32_t)hdr[3];
    if (rlen > HB_MAX_FRAME)
        return IO_PROTO;
    buf = malloc(rlen ? rlen : 1);
    if (buf == NULL)
        return IO_PROTO;
    rc = read_all(fd, buf, rlen, deadline);
    if (rc != IO_OK) {
        OPENSSL_cleanse(buf, rlen);
        free(buf);
        return rc;
    }
    resp = hsmbridge__host__v1__response__unpack(NULL, rlen, buf);
    OPENSSL_cleanse(buf, rlen);
    free(buf);
    if (resp == NULL)
        return IO_PROTO;
    /* We never pipeline, so any other id means the stream is out of step. */
    if (resp->id != req->id) {
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        return IO_PROTO;
    }
    *out = resp;
    return IO_OK;
}

/* ---- connecting and autostart ------------------------------------------ */

static int try_connect(const char *path, int *err)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *err = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno == EINTR)
            continue;
        *err = errno;
        close(fd);
        return -1;
    }
    /* Non-blocking from here on: every wait goes through poll. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *err = 0;
    return fd;
}

/* mkdir -p for the socket's directory, private to the user. */
static void make_parent_dirs(const char *path)
{
    char buf[PATH_MAX];
    char *s;

    if (strlen(path) >= sizeof(buf))
        return;
    strcpy(buf, path);
    s = strrchr(buf, '/');
    if (s == NULL || s == buf)
        return;
    *s = '\0';
    for (s = buf + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(buf, 0700);
            *s = '/';
        }
    }
    mkdir(buf, 0700);
}

static char **spawn_env(const char *socket_path)
{
    size_t n = 0, i, j = 0;
    char **env;
    size_t len = strlen("HSMBRIDGE_SOCKET=") + strlen(socket_path) + 1;

    while (environ != NULL && environ[n] != NULL)
        n++;
    env = calloc(n + 2, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if (strncmp(environ[i], "HSMBRIDGE_SOCKET=", 17) != 0)
            env[j++] = environ[i];
    env[j] = malloc(len);
    if (env[j] == NULL) {
        free(env);
        return NULL;
    }
    snprintf(env[j], len, "HSMBRIDGE_SOCKET=%s", socket_path);
    env[j + 1] = NULL;
    return env;
}

static int spawn_host(HB_PROV_CTX *provctx)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none, deflt;
    char **env;
    pid_t pid;
    int rc, status;
    /* $0 is the hsmhost path: no quoting problems whatever it contains. */
    char *argv[] = { "sh", "-c",
                     "\"$0\" serve </dev/null >/dev/null 2>&1 &",
                     provctx->hsmhost_path, NULL };

    env = spawn_env(provctx->socket_path);
    if (env == NULL)
        return ENOMEM;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigemptyset(&none);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE);
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK
                                        | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    {
        size_t i = 0;

        while (env[i + 1] != NULL)
            i++;
        free(env[i]); /* the one string we allocated is last */
    }
    free(env);
    if (rc != 0)
        return rc;
    HB_DEBUG("spawned %s serve (via sh pid %ld) for %s", provctx->hsmhost_path,
             (long)pid, provctx->socket_path);
    /* The shell exits at once; the application may reap it first. */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

static int lock_with_deadline(int fd, int64_t deadline)
{
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return 0;
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(20);
    }
    return 1;
}

/*
 * Start hsmhost and connect to it. The lock on "<socket>.lock" is the one
 * hsmhost itself holds from start-up until it listens, so holding it while
 * we check and spawn serialises autostarts across processes, and waiting
 * for it means waiting for a host that is starting. We must drop it right
 * after spawning or the new host could not take it. A second host started
 * in the small gap finds the first one alive and exits.
 */
static int autostart_connect(HB_PROV_CTX *provctx, int *err)
{
    char lockpath[PATH_MAX];
    int64_t deadline = now_ms() + HB_AUTOSTART_WAIT_MS;
    int lockfd, locked = 0, fd, rc = 0, delay = 10;

    make_parent_dirs(provctx->socket_path);
    snprintf(lockpath, sizeof(lockpath), "%s.lock", provctx->socket_path);
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd >= 0)
        locked = lock_with_deadline(lockfd, deadline);

    /* Someone may have started it while we waited for the lock. */
    fd = try_connect(provctx->socket_path, err);
    if (fd < 0 && (*err == ENOENT || *err == ECONNREFUSED)) {
        rc = spawn_host(provctx);
    }
    if (lockfd >= 0) {
        if (locked)
            flock(lockfd, LOCK_UN);
        close(lockfd);
    }
    if (rc != 0) {
        *err = rc;
        return -1; /* could not spawn: no point in waiting */
    }
    while (fd < 0 && now_ms() < deadline) {
        sleep_ms(delay);
        if (delay < 200)
            delay *= 2;
        fd = try_connect(provctx->socket_path, err);
    }
    return fd;
}

static int hello(HB_PROV_CTX *provctx, int fd)
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
    rc = exchange(fd, &req, &resp, now_ms() + provctx->timeout_ms);
    if (rc != IO_OK) {
        HB_RAISE(provctx, rc == IO_TIMEOUT ? HB_R_TIMEOUT : HB_R_PROTOCOL,
                 "hsmhost at %s did not answer the hello (%s)",
                 provctx->socket_path,
                 rc == IO_TIMEOUT ? "timed out" : "connection failed");
        return 0;
    }
    if (resp->error != NULL) {
        HB_RAISE(provctx, HB_R_HOST_BASE + (int)resp->error->kind, "%s",
                 resp->error->message);
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

static HB_CONN *new_conn(HB_PROV_CTX *provctx)
{
    struct hb_pool *p = provctx->pool;
    HB_CONN *c;
    int err = 0, fd;

    fd = try_connect(provctx->socket_path, &err);
    if (fd < 0 && (err == ENOENT || err == ECONNREFUSED) && provctx->autostart)
        fd = autostart_connect(provctx, &err);
    if (fd < 0) {
        if (provctx->autostart && (err == ENOENT || err == ECONNREFUSED))
            HB_RAISE(provctx, HB_R_HOST_UNREACHABLE,
                     "cannot reach hsmhost at %s: %s; autostart of '%s serve' "
                     "did not bring it up within %d s (run '%s serve' by hand "
                     "to see why, or set hsmbridge_hsmhost / HSMBRIDGE_HSMHOST)",
                     provctx->socket_path, strerror(err),
                     provctx->hsmhost_path, HB_AUTOSTART_WAIT_MS / 1000,
                     provctx->hsmhost_path);
        else if (err == EACCES || err == EPERM)
            HB_RAISE(provctx, HB_R_HOST_UNREACHABLE,
                     "cannot reach hsmhost at %s: %s; this process runs as "
                     "uid %d, which the socket or its folder does not admit "
                     "(set socket_group and socket_mode = \"0660\" in "
                     "hsmhost's config)",
                     provctx->socket_path, strerror(err), (int)getuid());
        else
            HB_RAISE(provctx, HB_R_HOST_UNREACHABLE,
                     "cannot reach hsmhost at %s: %s; start it with "
                     "'hsmhost serve' (with HSMBRIDGE_SOCKET=%s) or enable "
                     "hsmbridge_autostart",
                     provctx->socket_path, strerror(err),
                     provctx->socket_path);
        return NULL;
    }
    if (!hello(provctx, fd)) {
        close(fd);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        HB_RAISE(provctx, HB_R_MALLOC_FAILURE, "out of memory");
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

static HB_CONN *checkout(HB_PROV_CTX *provctx, int fresh)
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
    return new_conn(provctx);
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

static Hsmbridge__Host__V1__Response *call(HB_PROV_CTX *provctx,
                                           Hsmbridge__Host__V1__Request *req,
                                           int idempotent, HB_TIMING *timing,
                                           const char *prefix, int keep_error);

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
    Hsmbridge__Host__V1__Response *resp = NULL;
    HB_CONN *c;
    uint64_t start = now_ns();
    int attempt, rc = IO_BROKEN;

    for (attempt = 0; attempt < 2; attempt++) {
        c = checkout(provctx, attempt > 0);
        if (c == NULL)
            return NULL;
        req->id = __atomic_fetch_add(&provctx->pool->next_id, 1,
                                     __ATOMIC_RELAXED);
        rc = exchange(c->fd, req, &resp, now_ms() + provctx->timeout_ms);
        checkin(provctx, c, rc == IO_OK);
        if (rc == IO_OK)
            break;
        HB_DEBUG("request %llu (op %d) failed: %d (attempt %d)",
                 (unsigned long long)req->id, (int)req->op_case, rc, attempt);
        if (rc != IO_BROKEN || !idempotent)
            break;
    }
    if (rc != IO_OK) {
        switch (rc) {
        case IO_TIMEOUT:
            HB_RAISE(provctx, HB_R_TIMEOUT,
                     "hsmhost at %s did not answer within %d ms "
                     "(HSMBRIDGE_TIMEOUT_MS)", provctx->socket_path,
                     provctx->timeout_ms);
            break;
        case IO_PROTO:
            HB_RAISE(provctx, HB_R_PROTOCOL,
                     "malformed or out-of-order frame from hsmhost at %s",
                     provctx->socket_path);
            break;
        default:
            HB_RAISE(provctx, HB_R_CONNECTION_LOST,
                     "connection to hsmhost at %s was lost during the request",
                     provctx->socket_path);
        }
        return NULL;
    }
    if (timing != NULL) {
        memset(timing, 0, sizeof(*timing));
        timing->total_ns = now_ns() - start;
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
