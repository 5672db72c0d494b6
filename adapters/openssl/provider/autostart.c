/*
 * Starting hsmhost when nothing answers on the socket.
 *
 * Autostart never forks the application (it may have threads running, and
 * a Go runtime must not be in it anyway): hsmhost is started with
 * posix_spawn through a short-lived /bin/sh that backgrounds it and prints
 * its pid, so the host ends up in its own session, re-parented to init, and
 * the application is left with no child to reap.
 *
 * It creates nothing itself: hsmhost makes the socket's folder (with the
 * modes socket.c checks) and its start-up lock. The binary is looked up
 * first, so a missing hsmhost fails at once; a host that exits before it
 * listens (bad config, another host won the race and is alive) is noticed
 * by its pid instead of waiting out HB_AUTOSTART_WAIT_MS. Every failure here
 * is a "trip": the circuit breaker (breaker.c) then keeps the next requests
 * from trying again for hsmbridge_retry_ms.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn_int.h"
#include "errors.h"

extern char **environ;

#define HB_AUTOSTART_WAIT_MS 5000

/* An executable regular file. */
static int executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode)
        && access(path, X_OK) == 0;
}

/*
 * The binary to run: hsmbridge_hsmhost as given when it has a slash, else
 * searched in PATH as the shell would. 0 (f filled) if there is none.
 */
static int find_binary(HB_PROV_CTX *provctx, char *out, size_t n, HB_FAIL *f,
                       int err)
{
    const char *name = provctx->hsmhost_path;
    const char *path = getenv("PATH"), *p, *end;

    if (strchr(name, '/') != NULL) {
        if (executable(name) && strlen(name) < n) {
            strcpy(out, name);
            return 1;
        }
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                    "cannot reach hsmhost at %s: %s; autostart cannot run "
                    "'%s': %s (set hsmbridge_hsmhost or HSMBRIDGE_HSMHOST to "
                    "the hsmhost binary, or start 'hsmhost serve' yourself)",
                    provctx->socket_path, strerror(err), name,
                    access(name, F_OK) == 0 ? "not an executable file"
                                            : "not found");
        return 0;
    }
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; ; p = end + 1) {
        end = strchr(p, ':');
        if (end == NULL)
            end = p + strlen(p);
        if ((size_t)snprintf(out, n, "%.*s/%s", end == p ? 1 : (int)(end - p),
                             end == p ? "." : p, name) < n
            && executable(out))
            return 1;
        if (*end == '\0')
            break;
    }
    hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                "cannot reach hsmhost at %s: %s; autostart cannot run '%s': "
                "not found in PATH (%s); set hsmbridge_hsmhost or "
                "HSMBRIDGE_HSMHOST to the hsmhost binary, or start 'hsmhost "
                "serve' yourself",
                provctx->socket_path, strerror(err), name, path);
    return 0;
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

/* Reads the pid the shell prints; 0 if none came. */
static pid_t read_pid(int fd, int64_t deadline)
{
    char buf[32];
    size_t got = 0;

    while (got < sizeof(buf) - 1) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        int64_t left = deadline - hb_now_ms();
        ssize_t r;

        int pr;

        if (left <= 0)
            break;
        pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return (pid_t)atol(buf);
}

/* Starts "<binary> serve"; 0 or an errno. *pid: the host's pid, or 0. */
static int spawn_host(HB_PROV_CTX *provctx, const char *binary, pid_t *hostpid)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none, deflt;
    char **env;
    pid_t pid;
    int rc, status, pfd[2];
    /* $0 is the hsmhost path: no quoting problems whatever it contains. */
    char *argv[] = { "sh", "-c",
                     "\"$0\" serve </dev/null >/dev/null 2>&1 & echo $!",
                     (char *)binary, NULL };

    *hostpid = 0;
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return errno;
    env = spawn_env(provctx->socket_path);
    if (env == NULL) {
        close(pfd[0]);
        close(pfd[1]);
        return ENOMEM;
    }
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
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1); /* the shell's echo */
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pfd[1]);
    {
        size_t i = 0;

        while (env[i + 1] != NULL)
            i++;
        free(env[i]); /* the one string we allocated is last */
    }
    free(env);
    if (rc != 0) {
        close(pfd[0]);
        return rc;
    }
    *hostpid = read_pid(pfd[0], hb_now_ms() + 1000);
    close(pfd[0]);
    HB_DEBUG("spawned %s serve (pid %ld, via sh pid %ld) for %s", binary,
             (long)*hostpid, (long)pid, provctx->socket_path);
    /* The shell exits at once; the application may reap it first. */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Whether the host we spawned has exited (gone, or a zombie nobody reaped). */
static int host_exited(pid_t pid)
{
    char path[64], buf[256], *rp;
    FILE *fp;
    int gone = 0;

    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    fp = fopen(path, "re");
    if (fp == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), fp) != NULL && (rp = strrchr(buf, ')')) != NULL)
        gone = rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
    fclose(fp);
    return gone;
}

static int lock_with_deadline(int fd, int64_t deadline)
{
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return 0;
        if (hb_now_ms() >= deadline)
            return 0;
        hb_sleep_ms(20);
    }
    return 1;
}

/*
 * The lock on "<socket>.lock" is the one hsmhost itself holds from start-up
 * until it listens, so holding it while we check and spawn serialises
 * autostarts across processes, and waiting for it means waiting for a host
 * that is starting. We only open an existing lock file: a host that is
 * starting has made it, and without one two starters may both spawn, which
 * hsmhost's own lock settles (the second finds the first alive and exits).
 * We must drop it right after spawning or the new host could not take it.
 */
int hb_autostart_open(HB_PROV_CTX *provctx, int err, int *fd, HB_FAIL *f)
{
    char binary[PATH_MAX], lockpath[PATH_MAX];
    int64_t start = hb_now_ms(), deadline = start + HB_AUTOSTART_WAIT_MS;
    int lockfd, locked = 0, rc, serr, delay = 10;
    pid_t pid = 0;

    if (!find_binary(provctx, binary, sizeof(binary), f, err))
        return HB_SOCK_FAILED;

    snprintf(lockpath, sizeof(lockpath), "%s.lock", provctx->socket_path);
    lockfd = open(lockpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (lockfd >= 0)
        locked = lock_with_deadline(lockfd, deadline);

    /* Someone may have started it while we waited for the lock. */
    rc = hb_sock_open(provctx, fd, &err, f);
    serr = 0;
    if (rc == HB_SOCK_ABSENT)
        serr = spawn_host(provctx, binary, &pid);
    if (lockfd >= 0) {
        if (locked)
            flock(lockfd, LOCK_UN);
        close(lockfd);
    }
    if (rc != HB_SOCK_ABSENT)
        return rc;
    if (serr != 0) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                    "cannot reach hsmhost at %s: %s; autostart could not run "
                    "'%s serve': %s", provctx->socket_path, strerror(err),
                    binary, strerror(serr));
        return HB_SOCK_FAILED;
    }
    for (;;) {
        int exited = host_exited(pid);

        rc = hb_sock_open(provctx, fd, &err, f);
        if (rc != HB_SOCK_ABSENT)
            return rc;
        if (exited) {
            hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                        "cannot reach hsmhost at %s: %s; autostart ran '%s "
                        "serve' (pid %ld), which exited after %ld ms without "
                        "listening (run '%s serve' by hand to see why, or set "
                        "hsmbridge_hsmhost / HSMBRIDGE_HSMHOST)",
                        provctx->socket_path, strerror(err), binary, (long)pid,
                        (long)(hb_now_ms() - start), binary);
            return HB_SOCK_FAILED;
        }
        if (hb_now_ms() >= deadline)
            break;
        hb_sleep_ms(delay);
        if (delay < 200)
            delay *= 2;
    }
    hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                "cannot reach hsmhost at %s: %s; autostart of '%s serve' "
                "did not bring it up within %d s (run '%s serve' by hand "
                "to see why, or set hsmbridge_hsmhost / HSMBRIDGE_HSMHOST)",
                provctx->socket_path, strerror(err), binary,
                HB_AUTOSTART_WAIT_MS / 1000, binary);
    return HB_SOCK_FAILED;
}
