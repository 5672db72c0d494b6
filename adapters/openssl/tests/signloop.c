/*
 * One process that signs on command, for the fail-fast tests
 * (e2e/hardening_failfast_test.go). The provider's circuit breaker lives in
 * the process, so a test must be able to stop and resume hsmhost between
 * the requests of one process, which no openssl command allows.
 *
 *   signloop <key-uri|key-file>     (providers from OPENSSL_CONF)
 *
 * A key file is read with PEM_read_PrivateKey, as nginx reads
 * ssl_certificate_key; anything else is opened with OSSL_STORE.
 *
 * The key is loaded once, at start-up; then every line on stdin is a
 * command and gets one line on stdout:
 *
 *   sign      ->  ok <ms>  |  fail <ms> <the error queue, on one line>
 *   loop <n>  ->  n "sign" lines, then  done <ok> <fail> <ms>
 *
 * <ms> is the wall time of the attempt(s), monotonic clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/store.h>

static EVP_PKEY *key;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int collect(const char *str, size_t len, void *u)
{
    char *buf = u;
    size_t used = strlen(buf), i;

    for (i = 0; i < len && used + 4 < 8192; i++)
        buf[used++] = (str[i] == '\n' || str[i] == '\r') ? ' ' : str[i];
    if (used + 4 < 8192) {
        memcpy(buf + used, "| ", 2);
        used += 2;
    }
    buf[used] = '\0';
    return 1;
}

/* The error queue on one line, emptied. */
static void print_errors(void)
{
    static char buf[8192];

    buf[0] = '\0';
    ERR_print_errors_cb(collect, buf);
    printf("%s\n", buf[0] ? buf : "(no error on the queue)");
}

static int sign_once(void)
{
    static const unsigned char data[] = "signed by signloop";
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    double start = now_ms();
    int ok;

    ok = md != NULL
        && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
        && EVP_DigestSign(md, sig, &siglen, data, sizeof(data) - 1) == 1;
    EVP_MD_CTX_free(md);
    if (ok) {
        printf("ok %.0f\n", now_ms() - start);
    } else {
        printf("fail %.0f ", now_ms() - start);
        print_errors();
    }
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    OSSL_STORE_CTX *st;
    char line[256];
    FILE *fp;

    if (argc != 2) {
        fprintf(stderr, "usage: signloop <key-uri|key-file>\n");
        return 2;
    }
    fp = fopen(argv[1], "r");
    if (fp != NULL) {
        key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
        fclose(fp);
    }
    st = fp != NULL ? NULL : OSSL_STORE_open(argv[1], NULL, NULL, NULL, NULL);
    while (st != NULL && key == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);

        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            key = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    if (key == NULL) {
        printf("fail 0 cannot load %s: ", argv[1]);
        print_errors();
        return 1;
    }
    printf("loaded\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (strncmp(line, "sign", 4) == 0) {
            sign_once();
        } else if (strncmp(line, "loop ", 5) == 0) {
            int n = atoi(line + 5), i, good = 0;
            double start = now_ms();

            for (i = 0; i < n; i++)
                good += sign_once();
            printf("done %d %d %.0f\n", good, n - good, now_ms() - start);
            fflush(stdout);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    EVP_PKEY_free(key);
    return 0;
}
