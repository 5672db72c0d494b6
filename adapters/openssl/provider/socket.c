/*
 * Which socket, and whether to trust whoever answers on it.
 *
 * A request carries what the application signs or decrypts, and the answer
 * is a signature the application will present as its own: the provider must
 * know it talks to the hsmhost its administrator meant. A "trusted uid" is
 * root, this process's effective uid, or one named in hsmbridge_host_uid.
 * Before connecting we check, with lstat (symbolic links are not followed):
 *
 *   - the socket's folder is a folder owned by a trusted uid, and no other
 *     user may write to it: no group or other write bit, unless the sticky
 *     bit is set (then only the socket's owner, the folder's owner and root
 *     may remove or rename the socket, as in /tmp). Whoever can write to
 *     the folder could otherwise replace the socket between our check and
 *     the host's next restart;
 *   - the socket is a socket owned by a trusted uid (its owner is the uid
 *     that bound it, i.e. the listening hsmhost).
 *
 * After connecting, the peer's SO_PEERCRED uid (the process that listens,
 * fixed by the kernel at listen time) must be trusted too. That check alone
 * is what guarantees who answers; the path checks close the gap between
 * lstat and connect from the other side, refuse before we send anything,
 * and let the error say which file is wrong. Nothing is sent to a refused
 * socket, not even the Hello.
 *
 * Ancestors above the socket's folder are not checked: an attacker who can
 * rename one can only point us at a folder or socket that fails the checks
 * above, or at another trusted host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn_int.h"
#include "errors.h"

/* ---- the default path --------------------------------------------------- */

/*
 * $XDG_RUNTIME_DIR counts only as the runtime folder its specification
 * describes: absolute, existing, a folder, owned by us. An inherited one
 * (`su` keeps the caller's) or a stale one falls back to /tmp, as in hsmhost
 * (internal/config DefaultSocketPath): both sides must pick the same path.
 */
static int usable_runtime_dir(const char *d)
{
    struct stat st;

    return d != NULL && d[0] == '/' && stat(d, &st) == 0
        && S_ISDIR(st.st_mode) && st.st_uid == getuid();
}

char *hb_default_socket_path(void)
{
    const char *env = getenv("HSMBRIDGE_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char buf[PATH_MAX];

    if (env != NULL && *env != '\0')
        return hb_strdup(env);
    if (getuid() == 0)
        return hb_strdup("/run/hsmbridge/hsmhost.sock");
    if (usable_runtime_dir(xdg))
        snprintf(buf, sizeof(buf), "%s/hsmbridge/hsmhost.sock", xdg);
    else
        snprintf(buf, sizeof(buf), "/tmp/hsmbridge-%lu/hsmhost.sock",
                 (unsigned long)getuid());
    return hb_strdup(buf);
}

/* ---- trusted uids ------------------------------------------------------- */

static int trusted(const HB_PROV_CTX *provctx, uid_t uid)
{
    int i;

    if (uid == 0 || uid == geteuid())
        return 1;
    for (i = 0; i < provctx->nhost_uids; i++)
        if (provctx->host_uids[i] == uid)
            return 1;
    return 0;
}

/* "uid 1001 (mallory)", or "uid 1001" when it has no name. */
static void describe_uid(uid_t uid, char *buf, size_t n)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];

    if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
        snprintf(buf, n, "uid %lu (%s)", (unsigned long)uid, pw.pw_name);
    else
        snprintf(buf, n, "uid %lu", (unsigned long)uid);
}

/* "root, uid 1000 (this process) or a uid in hsmbridge_host_uid (none set)" */
static void describe_trusted(const HB_PROV_CTX *provctx, char *buf, size_t n)
{
    size_t off;
    int i;

    off = (size_t)snprintf(buf, n, "root, uid %lu (this process) or a uid in "
                           "hsmbridge_host_uid (", (unsigned long)geteuid());
    for (i = 0; i < provctx->nhost_uids && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lu", i ? ", " : "",
                                (unsigned long)provctx->host_uids[i]);
    if (off < n)
        snprintf(buf + off, n - off, "%s)", provctx->nhost_uids ? "" : "none set");
}

/* The refusal: what is wrong, whose it is, what to configure. */
static void refuse_uid(HB_PROV_CTX *provctx, HB_FAIL *f, const char *what,
                       const char *verb, uid_t uid)
{
    char who[160], ok[200];

    describe_uid(uid, who, sizeof(who));
    describe_trusted(provctx, ok, sizeof(ok));
    hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                "refusing the hsmhost socket %s: %s %s %s, not %s %s, so "
                "another user may answer in hsmhost's place. If %s runs your "
                "hsmhost, set hsmbridge_host_uid = %lu in this provider's "
                "openssl.cnf section; otherwise stop that process, remove "
                "what it made and start hsmhost",
                provctx->socket_path, what, verb, who, verb, ok, who,
                (unsigned long)uid);
}

static void unreachable_errno(HB_PROV_CTX *provctx, HB_FAIL *f, int err)
{
    if (err == EACCES || err == EPERM)
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "cannot reach hsmhost at %s: %s; this process runs as "
                    "uid %d, which the socket or its folder does not admit "
                    "(set socket_group and socket_mode = \"0660\" in "
                    "hsmhost's config)",
                    provctx->socket_path, strerror(err), (int)getuid());
    else
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "cannot reach hsmhost at %s: %s", provctx->socket_path,
                    strerror(err));
}

/* ---- the path ----------------------------------------------------------- */

static int check_path(HB_PROV_CTX *provctx, int *err, HB_FAIL *f)
{
    const char *path = provctx->socket_path;
    char dir[PATH_MAX], what[PATH_MAX + 32];
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (strlen(path) >= sizeof(dir)) {
        unreachable_errno(provctx, f, ENAMETOOLONG);
        return HB_SOCK_FAILED;
    }
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

    if (lstat(dir, &st) != 0) {
        *err = errno;
        if (errno == ENOENT)
            return HB_SOCK_ABSENT;
        unreachable_errno(provctx, f, errno);
        return HB_SOCK_FAILED;
    }
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "refusing the hsmhost socket %s: its folder %s is %s; "
                    "name the socket by its real path in hsmbridge_socket",
                    path, dir, S_ISLNK(st.st_mode) ? "a symbolic link"
                                                   : "not a folder");
        return HB_SOCK_FAILED;
    }
    if (!trusted(provctx, st.st_uid)) {
        snprintf(what, sizeof(what), "its folder %s", dir);
        refuse_uid(provctx, f, what, "belongs to", st.st_uid);
        return HB_SOCK_FAILED;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "refusing the hsmhost socket %s: its folder %s (mode %04o) "
                    "is writable by other users and not sticky, so they could "
                    "replace the socket; run 'chmod go-w %s' (hsmhost makes it "
                    "0700, or 0750 with socket_group)",
                    path, dir, (unsigned)(st.st_mode & 07777), dir);
        return HB_SOCK_FAILED;
    }

    if (lstat(path, &st) != 0) {
        *err = errno;
        if (errno == ENOENT)
            return HB_SOCK_ABSENT;
        unreachable_errno(provctx, f, errno);
        return HB_SOCK_FAILED;
    }
    if (!S_ISSOCK(st.st_mode)) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "refusing %s as hsmhost's socket: it is %s", path,
                    S_ISLNK(st.st_mode) ? "a symbolic link (name the socket "
                                          "itself in hsmbridge_socket)"
                                        : "not a socket");
        return HB_SOCK_FAILED;
    }
    if (!trusted(provctx, st.st_uid)) {
        refuse_uid(provctx, f, "it", "belongs to", st.st_uid);
        return HB_SOCK_FAILED;
    }
    return HB_SOCK_OK;
}

/* ---- connecting ---------------------------------------------------------- */

int hb_sock_open(HB_PROV_CTX *provctx, int *fdp, int *err, HB_FAIL *f)
{
    struct sockaddr_un sa;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd, rc;

    *fdp = -1;
    *err = 0;
    rc = check_path(provctx, err, f);
    if (rc != HB_SOCK_OK)
        return rc;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(provctx->socket_path) >= sizeof(sa.sun_path)) {
        unreachable_errno(provctx, f, ENAMETOOLONG);
        return HB_SOCK_FAILED;
    }
    strcpy(sa.sun_path, provctx->socket_path);
    /* Non-blocking from the start: a full listen queue must not block us. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        unreachable_errno(provctx, f, errno);
        return HB_SOCK_FAILED;
    }
    while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) != 0
           && errno == EINTR)
        ;
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = { fd, POLLOUT, 0 };
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        rc = poll(&pfd, 1, provctx->timeout_ms);
        if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            errno = soerr;
        else if (rc == 0)
            errno = EAGAIN;
        rc = errno == 0 ? 0 : -1;
    }
    if (rc != 0) {
        int e = errno;

        close(fd);
        *err = e;
        if (e == ENOENT || e == ECONNREFUSED)
            return HB_SOCK_ABSENT;
        if (e == EAGAIN) {
            hb_fail_set(f, HB_R_HOST_UNREACHABLE, 1,
                        "hsmhost at %s does not accept connections (its "
                        "queue is full: the host is stopped or overloaded)",
                        provctx->socket_path);
            return HB_SOCK_FAILED;
        }
        unreachable_errno(provctx, f, e);
        return HB_SOCK_FAILED;
    }

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        hb_fail_set(f, HB_R_HOST_UNREACHABLE, 0,
                    "refusing the hsmhost socket %s: cannot learn which user "
                    "answers on it (SO_PEERCRED: %s)",
                    provctx->socket_path, strerror(errno));
        close(fd);
        return HB_SOCK_FAILED;
    }
    if (!trusted(provctx, cred.uid)) {
        char what[64];

        snprintf(what, sizeof(what), "the process answering on it (pid %ld)",
                 (long)cred.pid);
        refuse_uid(provctx, f, what, "runs as", cred.uid);
        close(fd);
        return HB_SOCK_FAILED;
    }
    HB_DEBUG("connected to %s, peer pid %ld uid %lu", provctx->socket_path,
             (long)cred.pid, (unsigned long)cred.uid);
    *fdp = fd;
    return HB_SOCK_OK;
}
