/*
 * Framing (api/hostapi/host.proto): a 4-byte big-endian length, then one
 * protobuf message, at most 1 MiB. Every wait goes through poll with the
 * request's deadline, so nothing blocks past it; the sockets are
 * non-blocking from the moment they are made (socket.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "conn_int.h"

#define HB_MAX_FRAME (1u << 20)

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd;
    int64_t left;
    int r;

    for (;;) {
        left = deadline - hb_now_ms();
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

int hb_exchange(int fd, const Hsmbridge__Host__V1__Request *req,
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
    if (resp->id == req->id) {
        *out = resp;
        return IO_OK;
    }
    /*
     * A frame the host cannot parse (a string that is not valid UTF-8, a
     * frame too large) has no id it could read: it answers with id 0 and an
     * error that says why, then closes. We never pipeline and our ids start
     * at 1, so that answer is to this request; its connection is done.
     */
    if (resp->id == 0 && resp->error != NULL) {
        *out = resp;
        return IO_LAST;
    }
    /* Any other id means the stream is out of step. */
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return IO_PROTO;
}
