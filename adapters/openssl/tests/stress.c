/*
 * Concurrency and fork check for the provider: T threads sign with one key
 * loaded by reference, then a forked child (which inherits the parent's
 * pooled connections) signs too. Every signature is verified with the
 * public key in a separate library context that has only the default
 * provider, so a wrong signature from our path cannot verify itself.
 *
 *   stress <module-dir> <provider-name> <key-uri> [threads] [iterations]
 *
 * Exit status 0 only if every signature verified.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>

static EVP_PKEY *key, *verify_key;
static OSSL_LIB_CTX *vctx;
static int iterations = 20;

static int sign_and_check(const char *tag, int i)
{
    unsigned char data[64], sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new(), *vmd = EVP_MD_CTX_new();
    int ok;

    snprintf((char *)data, sizeof(data), "%s message %d", tag, i);
    ok = EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
        && EVP_DigestSign(md, sig, &siglen, data, strlen((char *)data)) == 1
        && EVP_DigestVerifyInit_ex(vmd, NULL, "SHA256", vctx, NULL,
                                   verify_key, NULL) == 1
        && EVP_DigestVerify(vmd, sig, siglen, data, strlen((char *)data)) == 1;
    if (!ok) {
        fprintf(stderr, "%s: signature %d failed\n", tag, i);
        ERR_print_errors_fp(stderr);
    }
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(vmd);
    return ok;
}

static int verify_message(const unsigned char *sig, size_t siglen, const char *msg)
{
    EVP_MD_CTX *vmd = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit_ex(vmd, NULL, "SHA256", vctx, NULL, verify_key, NULL) == 1
        && EVP_DigestVerify(vmd, sig, siglen, (const unsigned char *)msg, strlen(msg)) == 1;

    EVP_MD_CTX_free(vmd);
    return ok;
}

/*
 * Fork between DigestSignUpdate and DigestSignFinal. The provider hashes
 * locally, so a signing context holds no backend state: the child finishes
 * its copy over a connection of its own and the parent finishes the
 * original. Both signatures must verify over the whole message.
 */
static int fork_mid_stream(void)
{
    const char *first = "signed across a fork: ", *second = "the second half";
    char whole[128];
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok, status;
    pid_t pid;

    snprintf(whole, sizeof(whole), "%s%s", first, second);
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1
        || EVP_DigestSignUpdate(md, first, strlen(first)) != 1) {
        ERR_print_errors_fp(stderr);
        return 0;
    }
    pid = fork();
    ok = EVP_DigestSignUpdate(md, second, strlen(second)) == 1
        && EVP_DigestSignFinal(md, sig, &siglen) == 1
        && verify_message(sig, siglen, whole);
    if (pid == 0) {
        if (!ok)
            ERR_print_errors_fp(stderr);
        _exit(!ok);
    }
    EVP_MD_CTX_free(md);
    if (!ok) {
        fprintf(stderr, "parent: signature finished after fork failed\n");
        ERR_print_errors_fp(stderr);
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child: signature finished after fork failed\n");
        ok = 0;
    }
    return ok;
}

static void *worker(void *arg)
{
    long n = (long)arg, bad = 0;
    char tag[32];
    int i;

    snprintf(tag, sizeof(tag), "thread %ld", n);
    for (i = 0; i < iterations; i++)
        bad += !sign_and_check(tag, i);
    return (void *)bad;
}

int main(int argc, char **argv)
{
    OSSL_STORE_CTX *st;
    OSSL_STORE_INFO *info;
    unsigned char *der = NULL;
    const unsigned char *p;
    int threads = 8, derlen, i, status;
    long bad = 0;
    pthread_t tid[64];
    pid_t pid;

    if (argc < 4) {
        fprintf(stderr, "usage: %s module-dir provider key-uri [threads] [iterations]\n", argv[0]);
        return 2;
    }
    if (argc > 4)
        threads = atoi(argv[4]);
    if (argc > 5)
        iterations = atoi(argv[5]);
    if (threads < 1 || threads > 64)
        threads = 8;
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    if (OSSL_PROVIDER_load(NULL, argv[2]) == NULL || OSSL_PROVIDER_load(NULL, "default") == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    st = OSSL_STORE_open(argv[3], NULL, NULL, NULL, NULL);
    while (st != NULL && !OSSL_STORE_eof(st) && key == NULL) {
        info = OSSL_STORE_load(st);
        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            key = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    if (key == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* The verifier's copy of the public key lives with the default provider only. */
    vctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER_load(vctx, "default");
    derlen = i2d_PUBKEY(key, &der);
    p = der;
    verify_key = d2i_PUBKEY_ex(NULL, &p, derlen, vctx, NULL);
    if (verify_key == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }

    bad += !sign_and_check("parent-before-threads", 0);
    bad += !fork_mid_stream();
    for (i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, worker, (void *)(long)i);
    /* Fork while the threads are signing: the child must not reuse their sockets. */
    pid = fork();
    if (pid == 0) {
        int cbad = 0;

        for (i = 0; i < iterations; i++)
            cbad += !sign_and_check("child", i);
        _exit(cbad != 0);
    }
    for (i = 0; i < threads; i++) {
        void *r;

        pthread_join(tid[i], &r);
        bad += (long)r;
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed\n");
        bad++;
    }
    bad += !sign_and_check("parent-after-fork", 0);
    printf("%s: fork mid-stream, %d threads x %d signatures + forked child: %s\n", argv[3],
           threads, iterations, bad ? "FAILED" : "all verified");
    OPENSSL_free(der);
    return bad != 0;
}
