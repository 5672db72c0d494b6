/*
 * provrss: the resident memory the provider module adds to a process.
 *
 *   provrss MODULE-DIR PROVIDER KEY-URI
 *
 * In one process: libcrypto with the default provider signs once with a
 * P-256 key of its own (so its signing code is paged in), and VmRSS is
 * read; then PROVIDER is loaded from MODULE-DIR, KEY-URI is loaded through
 * OSSL_STORE and signs once (so the provider has connected to hsmhost and
 * holds the key), and VmRSS is read again. Prints both and the difference,
 * in kB:
 *
 *   rss_kb before=<kB> after=<kB> added=<kB>
 *
 * VmRSS counts the shared pages the process touches (the module, its
 * libraries such as libprotobuf-c) as well as its own heap, which is what
 * an application owner sees the process grow by.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

static long vmrss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kb;
}

static int sign_once(EVP_PKEY *key)
{
    static const unsigned char digest[32] = { 1 };
    unsigned char sig[256];
    size_t len = sizeof(sig);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok;

    ok = c != NULL && EVP_PKEY_sign_init(c) > 0
        && EVP_PKEY_sign(c, sig, &len, digest, sizeof(digest)) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static EVP_PKEY *load_ref(const char *uri)
{
    OSSL_STORE_CTX *st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    OSSL_STORE_INFO *info;
    EVP_PKEY *k = NULL;

    while (st != NULL && k == NULL && !OSSL_STORE_eof(st)) {
        info = OSSL_STORE_load(st);
        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            k = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    return k;
}

int main(int argc, char **argv)
{
    EVP_PKEY *own, *ref;
    long before, after;

    if (argc != 4) {
        fprintf(stderr, "usage: %s MODULE-DIR PROVIDER KEY-URI\n", argv[0]);
        return 2;
    }
    if (OSSL_PROVIDER_load(NULL, "default") == NULL
        || (own = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL
        || !sign_once(own))
        goto fail;
    before = vmrss_kb();

    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    if (OSSL_PROVIDER_load(NULL, argv[2]) == NULL
        || (ref = load_ref(argv[3])) == NULL || !sign_once(ref))
        goto fail;
    after = vmrss_kb();

    printf("rss_kb before=%ld after=%ld added=%ld\n", before, after,
           after - before);
    EVP_PKEY_free(ref);
    EVP_PKEY_free(own);
    return 0;
fail:
    fprintf(stderr, "provrss: %s failed:\n", argv[3]);
    ERR_print_errors_fp(stderr);
    return 1;
}
