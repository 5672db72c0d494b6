//go:build ignore

/*
 * The device's persistent state: a directory (AZIHSM_EMU_STATE_DIR, else
 * $TMPDIR or /tmp, then /azihsm-emu-<uid>) made with mode 0700, holding
 *
 *   device.key     "AZEMDEV1", a 16-byte device id, the 32-byte masking key
 *   partition.key  PKCS#8 DER of the partition identity key (P-384)
 *   credential     "AZEMCRD1", the credential id, SHA-256 of the PIN
 *   faults         optional fault switches (faults.c)
 *
 * Every file is mode 0600 and created exclusively: it is written in full to
 * a temporary file opened with O_EXCL and published with link(2), which
 * fails if the name exists. Two processes starting on one directory at once
 * therefore both end up reading the same device.key, whichever wrote it,
 * and never a half-written one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "emu.h"

#define DEVICE_MAGIC "AZEMDEV1"
#define CRED_MAGIC   "AZEMCRD1"
#define MAGIC_LEN    8
#define DEVICE_FILE_LEN (MAGIC_LEN + EMU_ID_LEN + 32)
#define CRED_FILE_LEN   (MAGIC_LEN + 16 + 32)
#define MAX_KEY_FILE    4096

static struct emu_state g_state;

const struct emu_state *emu_state(void)
{
    return &g_state;
}

const char *emu_device_path_locked(void)
{
    if (g_state.device_path == NULL) {
        const char *p = getenv("AZIHSM_EMU_DEVICE_PATH");

        g_state.device_path = strdup(p != NULL && *p != '\0' ? p : "/dev/azihsm0");
    }
    return g_state.device_path;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads a whole regular file of at most max bytes: 0, or -1 with errno. */
static int read_file(const char *path, uint8_t *buf, size_t max, size_t *len)
{
    struct stat st;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            errno = EIO;
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return 0;
}

/*
 * Creates dir/name with data unless it exists: 0 when this call created
 * it, 1 when it existed, -1 on error.
 */
static int publish_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char tmpname[96];
    uint8_t rnd[8];
    char *tmp, *final;
    size_t off = 0;
    int fd, rc = -1;

    emu_random(rnd, sizeof(rnd));
    snprintf(tmpname, sizeof(tmpname), ".%s.%ld.%02x%02x%02x%02x%02x%02x%02x%02x", name,
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    tmp = path_join(dir, tmpname);
    final = path_join(dir, name);
    if (tmp == NULL || final == NULL)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        goto out;
    }
    if (link(tmp, final) == 0)
        rc = 0;
    else if (errno == EEXIST)
        rc = 1;
    unlink(tmp);
out:
    free(tmp);
    free(final);
    return rc;
}

static char *default_dir(void)
{
    const char *env = getenv("AZIHSM_EMU_STATE_DIR");
    const char *tmp;
    char buf[4096];

    if (env != NULL && *env != '\0')
        return strdup(env);
    tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    snprintf(buf, sizeof(buf), "%s/azihsm-emu-%lu", tmp, (unsigned long)getuid());
    return strdup(buf);
}

static azihsm_status load_device_key(void)
{
    uint8_t buf[DEVICE_FILE_LEN + 1];
    size_t len = 0;
    char *path = path_join(g_state.dir, "device.key");
    azihsm_status st = AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;

    if (path == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    if (read_file(path, buf, sizeof(buf), &len) != 0) {
        uint8_t fresh[DEVICE_FILE_LEN];

        if (errno != ENOENT)
            goto out;
        memcpy(fresh, DEVICE_MAGIC, MAGIC_LEN);
        emu_random(fresh + MAGIC_LEN, EMU_ID_LEN + 32);
        if (publish_file(g_state.dir, "device.key", fresh, sizeof(fresh)) < 0) {
            OPENSSL_cleanse(fresh, sizeof(fresh));
            goto out;
        }
        OPENSSL_cleanse(fresh, sizeof(fresh));
        /* Read back whatever won, ours or another process's. */
        if (read_file(path, buf, sizeof(buf), &len) != 0)
            goto out;
    }
    if (len != DEVICE_FILE_LEN || memcmp(buf, DEVICE_MAGIC, MAGIC_LEN) != 0)
        goto out;
    memcpy(g_state.device_id, buf + MAGIC_LEN, EMU_ID_LEN);
    memcpy(g_state.mask_key, buf + MAGIC_LEN + EMU_ID_LEN, 32);
    st = AZIHSM_STATUS_SUCCESS;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    free(path);
    return st;
}

static azihsm_status load_partition_key(void)
{
    uint8_t *buf = malloc(MAX_KEY_FILE);
    size_t len = 0;
    char *path = path_join(g_state.dir, "partition.key");
    const unsigned char *p;
    EVP_PKEY *pkey = NULL;
    azihsm_status st = AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;

    if (buf == NULL || path == NULL) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    if (read_file(path, buf, MAX_KEY_FILE, &len) != 0) {
        EVP_PKEY *fresh;
        PKCS8_PRIV_KEY_INFO *p8 = NULL;
        unsigned char *der = NULL;
        int n = -1, rc;

        if (errno != ENOENT)
            goto out;
        fresh = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
        if (fresh != NULL && (p8 = EVP_PKEY2PKCS8(fresh)) != NULL)
            n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
        PKCS8_PRIV_KEY_INFO_free(p8);
        EVP_PKEY_free(fresh);
        if (n <= 0)
            goto out;
        rc = publish_file(g_state.dir, "partition.key", der, (size_t)n);
        OPENSSL_clear_free(der, (size_t)n);
        if (rc < 0)
            goto out;
        if (read_file(path, buf, MAX_KEY_FILE, &len) != 0)
            goto out;
    }
    p = buf;
    {
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);

        if (p8 != NULL && p == buf + len)
            pkey = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
    }
    if (pkey == NULL || emu_curve_of(pkey) != AZIHSM_ECC_CURVE_P384)
        goto out;
    st = emu_spki(pkey, &g_state.part_pub_der, &g_state.part_pub_der_len);
out:
    EVP_PKEY_free(pkey);
    if (buf != NULL)
        emu_wipe_free(buf, MAX_KEY_FILE);
    free(path);
    return st;
}

azihsm_status emu_state_load_locked(void)
{
    struct stat st;
    azihsm_status rc;

    if (g_state.loaded)
        return AZIHSM_STATUS_SUCCESS;
    emu_device_path_locked();
    if (g_state.dir == NULL)
        g_state.dir = default_dir();
    if (g_state.dir == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    if (mkdir(g_state.dir, 0700) != 0 && errno != EEXIST)
        return AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;
    if (lstat(g_state.dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;
    rc = load_device_key();
    if (rc == AZIHSM_STATUS_SUCCESS)
        rc = load_partition_key();
    if (rc != AZIHSM_STATUS_SUCCESS)
        return rc;
    g_state.loaded = 1;
    return AZIHSM_STATUS_SUCCESS;
}

azihsm_status emu_state_credential(const struct azihsm_credentials *creds, int establish)
{
    uint8_t want[CRED_FILE_LEN], have[CRED_FILE_LEN + 1];
    size_t len = 0;
    unsigned int mdlen = 0;
    char *path = path_join(g_state.dir, "credential");
    azihsm_status st = AZIHSM_STATUS_CREDENTIALS_NOT_ESTABLISHED;

    if (path == NULL)
        return AZIHSM_STATUS_INTERNAL_ERROR;
    memcpy(want, CRED_MAGIC, MAGIC_LEN);
    memcpy(want + MAGIC_LEN, creds->id, 16);
    if (!EVP_Digest(creds->pin, sizeof(creds->pin), want + MAGIC_LEN + 16, &mdlen,
                    EVP_sha256(), NULL)) {
        st = AZIHSM_STATUS_INTERNAL_ERROR;
        goto out;
    }
    if (read_file(path, have, sizeof(have), &len) != 0) {
        if (errno != ENOENT) {
            st = AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;
            goto out;
        }
        if (!establish)
            goto out;
        if (publish_file(g_state.dir, "credential", want, sizeof(want)) < 0) {
            st = AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;
            goto out;
        }
        if (read_file(path, have, sizeof(have), &len) != 0) {
            st = AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE;
            goto out;
        }
    }
    if (len == CRED_FILE_LEN && CRYPTO_memcmp(have, want, CRED_FILE_LEN) == 0)
        st = AZIHSM_STATUS_SUCCESS;
out:
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(have, sizeof(have));
    free(path);
    return st;
}

void emu_state_teardown(void)
{
    free(g_state.dir);
    free(g_state.device_path);
    free(g_state.part_pub_der);
    OPENSSL_cleanse(&g_state, sizeof(g_state));
}
