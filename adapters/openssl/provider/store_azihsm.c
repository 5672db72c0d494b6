/*
 * The azihsm:// store: masked-key files, the Integrated HSM seed's way of
 * keeping keys outside the device.
 *
 *   azihsm://<path>;type=ec|rsa|rsa-pss
 *
 * <path> is relative to the application's working directory or absolute;
 * type is required, in any case. Loading reads the file here, in the
 * application, and sends the blob to hsmhost (OpenMaskedRequest, with the
 * canonical URI as the reference: it routes the request, the backend never
 * sees the path). The KeyInfo that comes back names a handle as its version,
 * and the key object signs and decrypts with that handle like any backend
 * key. RSA-PSS files give RSA-PSS keys, so OpenSSL signs them with PSS.
 *
 * Handles live in the backend's memory. If hsmhost or its plugin restarts,
 * a request naming an old handle is answered NOT_FOUND; the registry below
 * keeps each opened blob's bytes so that conn.c can open it again and
 * retry once, transparently (a session key whose session is gone then fails
 * with the backend's reason, prefixed with the file name). Every key object
 * from one load shares one registry entry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "errors.h"
#include "masked.h"
#include "provider.h"

#define HB_OLD_HANDLES 8

struct hb_masked {
    int refcnt;                   /* key objects holding it; atomic */
    char *uri;                    /* canonical, unpinned */
    char *file;                   /* as the application named it */
    unsigned char *blob;
    size_t bloblen;
    pthread_mutex_t reopen_lock;  /* one re-open at a time per blob */
    /* Under reg_lock: */
    char *handle;                 /* current handle */
    char *pinned;                 /* current reference, pinned to it */
    char *old[HB_OLD_HANDLES];    /* handles replaced by re-opens */
    int nold;
    struct hb_masked *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hb_masked *registry;
static pthread_once_t reg_atfork_once = PTHREAD_ONCE_INIT;

/* A child inherits the registry (its handles stay valid); not the locks. */
static void reg_atfork_child(void)
{
    struct hb_masked *m;

    pthread_mutex_init(&reg_lock, NULL);
    for (m = registry; m != NULL; m = m->next)
        pthread_mutex_init(&m->reopen_lock, NULL);
}

static void reg_register_atfork(void)
{
    pthread_atfork(NULL, NULL, reg_atfork_child);
}

/* ---- files --------------------------------------------------------------- */

/* What a file that is not a regular one is, for the error. */
static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "is a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "is a device";
    if (S_ISDIR(mode))
        return "is a directory";
    if (S_ISSOCK(mode))
        return "is a socket";
    return "is a special file";
}

static int refuse_irregular(HB_PROV_CTX *provctx, const char *path,
                            const char *what, mode_t mode)
{
    if (S_ISREG(mode))
        return 0;
    HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "%s %s %s, not a regular file",
             what, path, file_kind(mode));
    return 1;
}

/*
 * The path comes from the application's user (a URI, a -macopt), so it may
 * name anything. A FIFO must not block the application: open() of a FIFO
 * for reading waits for a writer, read() of a device may never end. So:
 * stat() first, so that a device is never even opened (opening some has
 * side effects: a watchdog arms, a tape rewinds); open with O_NONBLOCK
 * (a FIFO put there since then opens at once) and O_NOCTTY (a terminal
 * never becomes ours); fstat() the descriptor, which is what we read, so a
 * rename between the two checks gains nothing; only then blocking reads.
 * max caps what is read, not only the size fstat() reports: a file that
 * grows while we read, or reports no size, is still bounded.
 */
unsigned char *hb_read_file(HB_PROV_CTX *provctx, const char *path,
                            const char *what, size_t max, size_t *len)
{
    struct stat st;
    unsigned char *buf = NULL, *nbuf;
    size_t got = 0, cap = 0;
    int fd, fl;

    *len = 0;
    if (stat(path, &st) == 0 && refuse_irregular(provctx, path, what,
                                                 st.st_mode))
        return NULL;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "%s %s does not exist",
                     what, path);
        else
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot read %s %s: %s",
                     what, path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot read %s %s: %s",
                 what, path, strerror(errno));
        goto fail;
    }
    if (refuse_irregular(provctx, path, what, st.st_mode))
        goto fail;
    if ((unsigned long long)st.st_size > max) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "%s %s is %lld bytes, more than any such file (%zu)", what,
                 path, (long long)st.st_size, max);
        goto fail;
    }
    /* A regular file: back to blocking reads, as any other reader does. */
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot read %s %s: %s",
                 what, path, strerror(errno));
        goto fail;
    }
    /* One byte beyond what fstat() said: EOF is seen without a regrowth. */
    cap = (size_t)st.st_size + 1;
    if ((buf = OPENSSL_malloc(cap)) == NULL)
        goto fail;
    for (;;) {
        ssize_t n;

        if (got == cap) {
            size_t ncap;

            if (cap > max) {
                HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                         "%s %s grew while being read to more than any such "
                         "file (%zu bytes)", what, path, max);
                goto fail;
            }
            ncap = cap < (max + 1) / 2 ? cap * 2 : max + 1;
            /* clear_realloc: an input key file holds a private key. */
            if ((nbuf = OPENSSL_clear_realloc(buf, cap, ncap)) == NULL)
                goto fail;
            buf = nbuf;
            cap = ncap;
        }
        n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot read %s %s: %s",
                     what, path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break; /* shrank while we read: take what is there */
        got += (size_t)n;
    }
    close(fd);
    if (got == 0) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "%s %s is empty", what, path);
        OPENSSL_clear_free(buf, cap);
        return NULL;
    }
    *len = got;
    return buf;

fail:
    OPENSSL_clear_free(buf, buf != NULL ? cap : 0);
    close(fd);
    return NULL;
}

int hb_write_private_file(HB_PROV_CTX *provctx, const char *path,
                          const char *what, const unsigned char *data,
                          size_t len)
{
    size_t plen = strlen(path), off = 0;
    char *tmp = malloc(plen + 8);
    int fd, err = 0;

    if (tmp == NULL)
        return 0;
    /* Next to the target, so that rename() is atomic. */
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot write %s %s: %s",
                 what, path, strerror(errno));
        free(tmp);
        return 0;
    }
    while (off < len && err == 0) {
        ssize_t n = write(fd, data + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            err = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    if (err == 0 && fchmod(fd, 0600) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT, "cannot write %s %s: %s",
                 what, path, strerror(err));
    }
    free(tmp);
    return err == 0;
}

/* ---- URIs ---------------------------------------------------------------- */

const char *hb_azihsm_type(const char *s, size_t len)
{
    static const char *const types[] = { "ec", "rsa", "rsa-pss" };
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strlen(types[i]) == len && strncasecmp(s, types[i], len) == 0)
            return types[i];
    return NULL;
}

char *hb_azihsm_uri(const char *path, const char *type)
{
    size_t len = strlen("azihsm://") + strlen(path) + strlen(";type=")
        + strlen(type) + 1;
    char *s = malloc(len);

    if (s != NULL)
        snprintf(s, len, "azihsm://%s;type=%s", path, type);
    return s;
}

/* Splits azihsm://<path>;type=<t> into a path and a type. */
static int parse_uri(HB_PROV_CTX *provctx, const char *uri, char **path,
                     const char **type)
{
    const char *rest, *semi, *attr;

    *path = NULL;
    *type = NULL;
    if (strncasecmp(uri, "azihsm://", 9) != 0) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "%s: expected azihsm://<path>;type=ec|rsa|rsa-pss", uri);
        return 0;
    }
    rest = uri + 9;
    semi = strchr(rest, ';');
    if (semi == rest || *rest == '\0') {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "%s: the path of the masked key file is empty", uri);
        return 0;
    }
    for (attr = semi; attr != NULL && *attr == ';';) {
        const char *end = strchr(attr + 1, ';'), *eq;
        size_t alen;

        attr++;
        alen = end != NULL ? (size_t)(end - attr) : strlen(attr);
        eq = memchr(attr, '=', alen);
        if (eq != NULL && eq - attr == 4 && strncasecmp(attr, "type", 4) == 0) {
            const char *t = hb_azihsm_type(eq + 1, alen - 5);

            if (t == NULL || *type != NULL) {
                HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                         "%s: %s (type is ec, rsa or rsa-pss, given once)",
                         uri, t == NULL ? "unknown key type" : "type given twice");
                return 0;
            }
            *type = t;
        } else {
            HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                     "%s: unknown attribute '%.*s' (only type= is known)", uri,
                     (int)alen, attr);
            return 0;
        }
        attr = end;
    }
    if (*type == NULL) {
        HB_RAISE(provctx, HB_R_INVALID_ARGUMENT,
                 "%s: the key type is missing: add ;type=ec, ;type=rsa or "
                 ";type=rsa-pss", uri);
        return 0;
    }
    *path = semi != NULL ? strndup(rest, (size_t)(semi - rest)) : strdup(rest);
    return *path != NULL;
}

/* ---- key objects and the registry ---------------------------------------- */

struct hb_masked *hb_masked_up_ref(struct hb_masked *m)
{
    __atomic_add_fetch(&m->refcnt, 1, __ATOMIC_RELAXED);
    return m;
}

void hb_masked_free(struct hb_masked *m)
{
    struct hb_masked **mm;
    int i;

    if (m == NULL || __atomic_sub_fetch(&m->refcnt, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    pthread_mutex_lock(&reg_lock);
    for (mm = &registry; *mm != NULL; mm = &(*mm)->next) {
        if (*mm == m) {
            *mm = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    pthread_mutex_destroy(&m->reopen_lock);
    OPENSSL_clear_free(m->blob, m->bloblen);
    free(m->uri);
    free(m->file);
    free(m->handle);
    free(m->pinned);
    for (i = 0; i < m->nold; i++)
        free(m->old[i]);
    free(m);
}

static struct hb_masked *masked_new(const char *uri, const char *file,
                                    const unsigned char *blob, size_t bloblen,
                                    const char *handle, const char *pinned)
{
    struct hb_masked *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->refcnt = 1;
    pthread_mutex_init(&m->reopen_lock, NULL);
    m->uri = hb_strdup(uri);
    m->file = hb_strdup(file);
    m->handle = hb_strdup(handle);
    m->pinned = hb_strdup(pinned);
    m->blob = OPENSSL_memdup(blob, bloblen);
    m->bloblen = bloblen;
    if (m->uri == NULL || m->file == NULL || m->handle == NULL
        || m->pinned == NULL || m->blob == NULL) {
        hb_masked_free(m);
        return NULL;
    }
    pthread_once(&reg_atfork_once, reg_register_atfork);
    pthread_mutex_lock(&reg_lock);
    m->next = registry;
    registry = m;
    pthread_mutex_unlock(&reg_lock);
    return m;
}

/* An RSA public key as an RSA-PSS one (no restrictions), for RSA-PSS files. */
static EVP_PKEY *as_rsa_pss(const EVP_PKEY *rsa)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pss = NULL;

    if (EVP_PKEY_todata(rsa, EVP_PKEY_PUBLIC_KEY, &params) > 0
        && (pctx = EVP_PKEY_CTX_new_from_name(hb_priv_libctx(), "RSA-PSS",
                                              NULL)) != NULL
        && EVP_PKEY_fromdata_init(pctx) > 0
        && EVP_PKEY_fromdata(pctx, &pss, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pss = NULL;
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    return pss;
}

HB_KEY *hb_masked_key_new(HB_PROV_CTX *provctx, const void *vinfo,
                          const char *uri, const char *type, const char *file,
                          const unsigned char *blob, size_t bloblen)
{
    const Hsmbridge__Host__V1__KeyInfo *info = vinfo;
    int want_ec = strcmp(type, "ec") == 0;
    HB_KEY *key;

    if (info == NULL || info->version == NULL || *info->version == '\0'
        || info->reference == NULL || *info->reference == '\0') {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "%s: hsmhost opened the masked key without a handle", file);
        return NULL;
    }
    if (info->key_type != (want_ec ? HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_EC
                                   : HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_RSA)) {
        HB_RAISE(provctx, HB_R_BAD_KEY,
                 "%s: the masked key is %s key, but the URI says type=%s",
                 file,
                 info->key_type == HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_EC
                     ? "an EC"
                 : info->key_type == HSMBRIDGE__HOST__V1__KEY_TYPE__KEY_TYPE_RSA
                     ? "an RSA" : "a symmetric", type);
        return NULL;
    }
    key = hb_key_from_info(provctx, info);
    if (key == NULL)
        return NULL;
    if (strcmp(type, "rsa-pss") == 0) {
        EVP_PKEY *pss = as_rsa_pss(key->pkey);

        if (pss == NULL) {
            HB_RAISE(provctx, HB_R_INTERNAL,
                     "%s: cannot make an RSA-PSS key of the public key", file);
            hb_key_free(key);
            return NULL;
        }
        EVP_PKEY_free(key->pkey);
        key->pkey = pss;
        key->pss = 1;
    }
    if (info->n_allowed_ops > 0) {
        size_t i;

        key->no_encrypt = 1;
        for (i = 0; i < info->n_allowed_ops; i++)
            if (strcmp(info->allowed_ops[i], "encrypt") == 0)
                key->no_encrypt = 0;
    }
    key->masked = masked_new(uri, file, blob, bloblen, info->version,
                             info->reference);
    if (key->masked == NULL) {
        hb_key_free(key);
        return NULL;
    }
    HB_DEBUG("masked key %s opened as %s (handle %s)", file, info->reference,
             info->version);
    return key;
}

/* OpenMasked; the response has a KeyInfo. Errors are prefixed with file. */
static Hsmbridge__Host__V1__Response *open_blob(HB_PROV_CTX *provctx,
                                               const char *uri,
                                               const char *file,
                                               const unsigned char *blob,
                                               size_t bloblen)
{
    Hsmbridge__Host__V1__Request req = HSMBRIDGE__HOST__V1__REQUEST__INIT;
    Hsmbridge__Host__V1__OpenMaskedRequest o =
        HSMBRIDGE__HOST__V1__OPEN_MASKED_REQUEST__INIT;
    Hsmbridge__Host__V1__Response *resp;

    o.reference = (char *)uri;
    o.blob.data = (uint8_t *)blob;
    o.blob.len = bloblen;
    req.op_case = HSMBRIDGE__HOST__V1__REQUEST__OP_OPEN_MASKED;
    req.open_masked = &o;
    resp = hb_call_prefixed(provctx, &req, 1, NULL, file);
    if (resp != NULL
        && (resp->result_case != HSMBRIDGE__HOST__V1__RESPONSE__RESULT_KEY
            || resp->key == NULL)) {
        HB_RAISE(provctx, HB_R_PROTOCOL,
                 "%s: hsmhost answered OpenMasked without a key", file);
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
        resp = NULL;
    }
    return resp;
}

HB_KEY *hb_masked_open(HB_PROV_CTX *provctx, const char *uri,
                       const char *type, const char *file,
                       const unsigned char *blob, size_t bloblen)
{
    Hsmbridge__Host__V1__Response *resp;
    HB_KEY *key;

    resp = open_blob(provctx, uri, file, blob, bloblen);
    if (resp == NULL)
        return NULL;
    key = hb_masked_key_new(provctx, resp->key, uri, type, file, blob, bloblen);
    hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    return key;
}

HB_KEY *hb_azihsm_open_key(HB_PROV_CTX *provctx, const char *uri)
{
    char *path = NULL, *canon = NULL;
    const char *type;
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    HB_KEY *key = NULL;

    if (!parse_uri(provctx, uri, &path, &type))
        goto done;
    canon = hb_azihsm_uri(path, type);
    blob = hb_read_file(provctx, path, "masked key file", HB_MASKED_MAX_FILE,
                        &bloblen);
    if (canon == NULL || blob == NULL)
        goto done;
    key = hb_masked_open(provctx, canon, type, path, blob, bloblen);
done:
    if (blob != NULL)
        OPENSSL_clear_free(blob, bloblen);
    free(canon);
    free(path);
    return key;
}

/* ---- handles in requests (called by conn.c) ------------------------------ */

/* The message in the request's oneof, if it names a key by reference. */
static ProtobufCMessage *op_message(const Hsmbridge__Host__V1__Request *req)
{
    const ProtobufCFieldDescriptor *f;

    switch (req->op_case) {
    case HSMBRIDGE__HOST__V1__REQUEST__OP_HELLO:
    case HSMBRIDGE__HOST__V1__REQUEST__OP_OPEN_MASKED: /* unpinned anyway */
    case HSMBRIDGE__HOST__V1__REQUEST__OP__NOT_SET:
        return NULL;
    default:
        break;
    }
    f = protobuf_c_message_descriptor_get_field(
        &hsmbridge__host__v1__request__descriptor, (unsigned)req->op_case);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(ProtobufCMessage *const *)((const char *)req + f->offset);
}

static char **string_field(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f;

    if (m == NULL)
        return NULL;
    f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING
        || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (char **)((char *)m + f->offset);
}

/*
 * The handle a request names: its version field, else the reference's
 * ;version= attribute. Only for azihsm:// references.
 */
static int request_handle(const Hsmbridge__Host__V1__Request *req,
                          char ***ref_field, char ***ver_field,
                          const char **handle, size_t *hlen)
{
    ProtobufCMessage *m = op_message(req);
    char **ref = string_field(m, "reference"), **ver = string_field(m, "version");
    const char *a;

    if (ref == NULL || *ref == NULL || strncasecmp(*ref, "azihsm:", 7) != 0)
        return 0;
    *ref_field = ref;
    *ver_field = ver;
    if (ver != NULL && *ver != NULL && **ver != '\0') {
        *handle = *ver;
        *hlen = strlen(*ver);
        return 1;
    }
    for (a = strchr(*ref, ';'); a != NULL; a = strchr(a + 1, ';')) {
        if (strncasecmp(a + 1, "version=", 8) == 0) {
            const char *end = strchr(a + 9, ';');

            *handle = a + 9;
            *hlen = end != NULL ? (size_t)(end - *handle) : strlen(*handle);
            return *hlen > 0;
        }
    }
    return 0;
}

int hb_masked_names_handle(const Hsmbridge__Host__V1__Request *req)
{
    char **rf, **vf;
    const char *h;
    size_t hl;

    return request_handle(req, &rf, &vf, &h, &hl);
}

static int same(const char *s, const char *h, size_t hlen)
{
    return s != NULL && strlen(s) == hlen && memcmp(s, h, hlen) == 0;
}

/* Caller holds reg_lock. *current: whether h is the entry's live handle. */
static struct hb_masked *find_handle(const char *h, size_t hlen, int *current)
{
    struct hb_masked *m;
    int i;

    for (m = registry; m != NULL; m = m->next) {
        if (same(m->handle, h, hlen)) {
            *current = 1;
            return m;
        }
        for (i = 0; i < m->nold; i++) {
            if (same(m->old[i], h, hlen)) {
                *current = 0;
                return m;
            }
        }
    }
    return NULL;
}

/* Caller holds reg_lock: points the request at m's current handle. */
static int rewrite(struct hb_masked *m, char **ref_field, char **ver_field,
                   HB_MASKED_SWAP *swap)
{
    char *r = hb_strdup(m->pinned), *v = NULL;

    if (r == NULL)
        return 0;
    if (ver_field != NULL && *ver_field != NULL && **ver_field != '\0'
        && (v = hb_strdup(m->handle)) == NULL) {
        free(r);
        return 0;
    }
    if (swap->ref_field == NULL) {
        swap->ref_field = ref_field;
        swap->orig_ref = *ref_field;
    }
    free(swap->new_ref);
    swap->new_ref = r;
    *ref_field = r;
    if (v != NULL) {
        if (swap->ver_field == NULL) {
            swap->ver_field = ver_field;
            swap->orig_ver = *ver_field;
        }
        free(swap->new_ver);
        swap->new_ver = v;
        *ver_field = v;
    }
    return 1;
}

void hb_masked_refresh(Hsmbridge__Host__V1__Request *req, HB_MASKED_SWAP *swap)
{
    char **rf, **vf;
    const char *h;
    size_t hl;
    struct hb_masked *m;
    int current = 0;

    memset(swap, 0, sizeof(*swap));
    if (!request_handle(req, &rf, &vf, &h, &hl))
        return;
    pthread_mutex_lock(&reg_lock);
    m = find_handle(h, hl, &current);
    if (m != NULL && !current)
        rewrite(m, rf, vf, swap);
    pthread_mutex_unlock(&reg_lock);
}

int hb_masked_reopen(HB_PROV_CTX *provctx, Hsmbridge__Host__V1__Request *req,
                     HB_MASKED_SWAP *swap)
{
    char **rf, **vf, *lost = NULL;
    const char *h;
    size_t hl;
    struct hb_masked *m;
    Hsmbridge__Host__V1__Response *resp = NULL;
    int current = 0, rc = -1;

    if (!request_handle(req, &rf, &vf, &h, &hl))
        return 0;
    pthread_mutex_lock(&reg_lock);
    m = find_handle(h, hl, &current);
    if (m != NULL) {
        hb_masked_up_ref(m);
        lost = strndup(h, hl);
    }
    pthread_mutex_unlock(&reg_lock);
    if (m == NULL)
        return 0;
    if (lost == NULL)
        goto done;

    pthread_mutex_lock(&m->reopen_lock);
    pthread_mutex_lock(&reg_lock);
    current = strcmp(m->handle, lost) == 0; /* not yet re-opened by another */
    pthread_mutex_unlock(&reg_lock);
    if (current) {
        HB_DEBUG("handle %s of %s is gone: opening %s again", lost, m->uri,
                 m->file);
        resp = open_blob(provctx, m->uri, m->file, m->blob, m->bloblen);
        if (resp == NULL || resp->key->version == NULL
            || *resp->key->version == '\0' || resp->key->reference == NULL) {
            if (resp != NULL)
                HB_RAISE(provctx, HB_R_PROTOCOL,
                         "%s: hsmhost opened the masked key without a handle",
                         m->file);
            pthread_mutex_unlock(&m->reopen_lock);
            goto done;
        }
        pthread_mutex_lock(&reg_lock);
        if (m->nold == HB_OLD_HANDLES) {
            free(m->old[0]);
            memmove(m->old, m->old + 1, sizeof(m->old[0]) * (HB_OLD_HANDLES - 1));
            m->nold--;
        }
        m->old[m->nold++] = m->handle;
        m->handle = hb_strdup(resp->key->version);
        free(m->pinned);
        m->pinned = hb_strdup(resp->key->reference);
        if (m->handle == NULL || m->pinned == NULL) {
            /* Out of memory: keep the entry consistent, report failure. */
            free(m->handle);
            free(m->pinned);
            m->handle = m->old[--m->nold];
            m->pinned = hb_strdup(m->uri);
            pthread_mutex_unlock(&reg_lock);
            pthread_mutex_unlock(&m->reopen_lock);
            goto done;
        }
        pthread_mutex_unlock(&reg_lock);
    }
    pthread_mutex_unlock(&m->reopen_lock);
    pthread_mutex_lock(&reg_lock);
    rc = rewrite(m, rf, vf, swap) ? 1 : -1;
    pthread_mutex_unlock(&reg_lock);
done:
    if (resp != NULL)
        hsmbridge__host__v1__response__free_unpacked(resp, NULL);
    free(lost);
    hb_masked_free(m);
    return rc;
}

void hb_masked_restore(Hsmbridge__Host__V1__Request *req, HB_MASKED_SWAP *swap)
{
    (void)req;
    if (swap->ref_field != NULL)
        *swap->ref_field = swap->orig_ref;
    if (swap->ver_field != NULL)
        *swap->ver_field = swap->orig_ver;
    free(swap->new_ref);
    free(swap->new_ver);
    memset(swap, 0, sizeof(*swap));
}
