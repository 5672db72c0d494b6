/*
 * signbench: signing latency and throughput of hsmbridge keys against the
 * same algorithms on key files handled by OpenSSL's default provider, in
 * one run, with one-shot EVP_PKEY_sign on a 32-byte SHA-256 digest.
 *
 *   signbench [-m MODULE] [-p NAME] [-r RSA-REF] [-e EC-REF] [-s SECONDS]
 *             [-t THREADS[,THREADS...]] [-a ALG[,ALG]]
 *
 *   -m  the provider module (.so path) or the directory holding it
 *       (default: build/ossl-modules)
 *   -p  provider name to load (default hsmbridge)
 *   -r  RSA-2048 key reference (default managedhsm:MyHSM:bench-rsa2048)
 *   -e  P-256 key reference (default managedhsm:MyHSM:bench-p256)
 *   -s  seconds per row (default 2)
 *   -t  thread counts (default 1,4; at most MAX_THREADS each)
 *   -a  algorithms to run: RSA-2048, P-256 or both (default both); a
 *       backend that only has one of the keys is benched without the other
 *
 * For hsmbridge rows the provider reports the host's timing of each request
 * through the signature context parameters "hsmbridge-last-total-ns" and
 * "hsmbridge-last-plugin-ns"; "bridge p50" is the median of total minus
 * plugin time, i.e. what the bridge (socket, hsmhost, go-plugin gRPC) adds
 * to the backend's own work. Every row's first signature is verified with
 * the public key in a library context holding only the default provider.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#define MAX_THREADS 64

typedef struct {
    const char *backend; /* "default-file", or the -l label of the bridge rows */
    const char *alg;     /* "RSA-2048" or "P-256" */
    EVP_PKEY *key;
} TARGET;

typedef struct {
    EVP_PKEY *key;
    int hsm;
    double seconds;
    uint64_t *lat, *bridge; /* ns per op; bridge overhead per op */
    uint64_t *seg[3];       /* front end + socket, hsmhost, plugin RPC */
    size_t n, cap, nbridge;
    int failed;
} WORKER;

static OSSL_LIB_CTX *vlib; /* default provider only, for verification */
static unsigned char digest[32];

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static EVP_PKEY_CTX *sign_ctx(EVP_PKEY *key)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    OSSL_PARAM p[2];

    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                            "SHA256", 0);
    p[1] = OSSL_PARAM_construct_end();
    if (c == NULL || EVP_PKEY_sign_init(c) <= 0
        || EVP_PKEY_CTX_set_params(c, p) <= 0) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    return c;
}

static void *run_worker(void *arg)
{
    WORKER *w = arg;
    EVP_PKEY_CTX *c = sign_ctx(w->key);
    unsigned char sig[1024];
    uint64_t end, t0, t1, total, host, backend, plugin;
    OSSL_PARAM tp[5];

    if (c == NULL) {
        w->failed = 1;
        return NULL;
    }
    end = now_ns() + (uint64_t)(w->seconds * 1e9);
    do {
        size_t len = sizeof(sig);

        t0 = now_ns();
        if (EVP_PKEY_sign(c, sig, &len, digest, sizeof(digest)) <= 0) {
            w->failed = 1;
            break;
        }
        t1 = now_ns();
        if (w->n < w->cap)
            w->lat[w->n++] = t1 - t0;
        if (w->hsm) {
            total = host = backend = plugin = 0;
            tp[0] = OSSL_PARAM_construct_uint64("hsmbridge-last-total-ns", &total);
            tp[1] = OSSL_PARAM_construct_uint64("hsmbridge-last-host-ns", &host);
            tp[2] = OSSL_PARAM_construct_uint64("hsmbridge-last-backend-ns", &backend);
            tp[3] = OSSL_PARAM_construct_uint64("hsmbridge-last-plugin-ns", &plugin);
            tp[4] = OSSL_PARAM_construct_end();
            if (EVP_PKEY_CTX_get_params(c, tp) > 0 && total > 0
                && w->nbridge < w->cap) {
                w->seg[0][w->nbridge] = total > host ? total - host : 0;
                w->seg[1][w->nbridge] = host > backend ? host - backend : 0;
                w->seg[2][w->nbridge] = backend > plugin ? backend - plugin : 0;
                w->bridge[w->nbridge++] = total > plugin ? total - plugin : 0;
            }
        }
    } while (t1 < end);
    EVP_PKEY_CTX_free(c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Signs once and verifies with an independent copy of the public key. */
static int check_signature(EVP_PKEY *key)
{
    EVP_PKEY_CTX *c = sign_ctx(key), *v = NULL;
    unsigned char sig[1024], *der = NULL;
    const unsigned char *p;
    size_t len = sizeof(sig);
    EVP_PKEY *pub = NULL;
    OSSL_PARAM prm[2];
    int derlen, ok = 0;

    prm[0] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                              "SHA256", 0);
    prm[1] = OSSL_PARAM_construct_end();
    if (c == NULL || EVP_PKEY_sign(c, sig, &len, digest, sizeof(digest)) <= 0)
        goto done;
    derlen = i2d_PUBKEY(key, &der);
    p = der;
    if (derlen <= 0 || (pub = d2i_PUBKEY_ex(NULL, &p, derlen, vlib, NULL)) == NULL)
        goto done;
    v = EVP_PKEY_CTX_new_from_pkey(vlib, pub, NULL);
    ok = v != NULL && EVP_PKEY_verify_init(v) > 0
        && EVP_PKEY_CTX_set_params(v, prm) > 0
        && EVP_PKEY_verify(v, sig, len, digest, sizeof(digest)) == 1;
done:
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_CTX_free(v);
    EVP_PKEY_free(pub);
    OPENSSL_free(der);
    return ok;
}

typedef struct {
    double ops, p50, p99, bridge50, seg50[3];
    int ok;
} RESULT;

static RESULT bench(const TARGET *t, int threads, double seconds)
{
    WORKER w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    RESULT r;
    uint64_t *all, *br, *seg[3], start, wall;
    size_t n = 0, nb = 0, cap = 1000000 / (size_t)threads;
    int i, k;

    memset(&r, 0, sizeof(r));

    r.ok = check_signature(t->key);
    if (!r.ok)
        return r;
    memset(w, 0, sizeof(w));
    start = now_ns();
    for (i = 0; i < threads; i++) {
        w[i].key = t->key;
        w[i].hsm = strcmp(t->backend, "default-file") != 0;
        w[i].seconds = seconds;
        w[i].cap = cap;
        w[i].lat = malloc(cap * sizeof(uint64_t));
        w[i].bridge = malloc(cap * sizeof(uint64_t));
        for (k = 0; k < 3; k++)
            w[i].seg[k] = malloc(cap * sizeof(uint64_t));
        pthread_create(&tid[i], NULL, run_worker, &w[i]);
    }
    for (i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    wall = now_ns() - start;
    all = malloc(cap * (size_t)threads * sizeof(uint64_t));
    br = malloc(cap * (size_t)threads * sizeof(uint64_t));
    for (k = 0; k < 3; k++)
        seg[k] = malloc(cap * (size_t)threads * sizeof(uint64_t));
    for (i = 0; i < threads; i++) {
        if (w[i].failed)
            r.ok = 0;
        memcpy(all + n, w[i].lat, w[i].n * sizeof(uint64_t));
        n += w[i].n;
        memcpy(br + nb, w[i].bridge, w[i].nbridge * sizeof(uint64_t));
        for (k = 0; k < 3; k++) {
            memcpy(seg[k] + nb, w[i].seg[k], w[i].nbridge * sizeof(uint64_t));
            free(w[i].seg[k]);
        }
        nb += w[i].nbridge;
        free(w[i].lat);
        free(w[i].bridge);
    }
    qsort(all, n, sizeof(uint64_t), cmp_u64);
    qsort(br, nb, sizeof(uint64_t), cmp_u64);
    r.ops = (double)n / ((double)wall / 1e9);
    r.p50 = pct(all, n, 0.50);
    r.p99 = pct(all, n, 0.99);
    r.bridge50 = nb ? pct(br, nb, 0.50) : -1;
    for (k = 0; k < 3; k++) {
        qsort(seg[k], nb, sizeof(uint64_t), cmp_u64);
        r.seg50[k] = nb ? pct(seg[k], nb, 0.50) : -1;
        free(seg[k]);
    }
    free(all);
    free(br);
    return r;
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
    if (k == NULL) {
        fprintf(stderr, "signbench: cannot load %s:\n", uri);
        ERR_print_errors_fp(stderr);
    }
    return k;
}

/* A key generated by the default provider, written to a PEM file and read back. */
static EVP_PKEY *file_key(const char *alg)
{
    char path[] = "/tmp/signbench-XXXXXX";
    EVP_PKEY *gen, *k = NULL;
    FILE *f;
    int fd;

    gen = strcmp(alg, "RSA-2048") == 0
        ? EVP_PKEY_Q_keygen(NULL, "provider=default", "RSA", (size_t)2048)
        : EVP_PKEY_Q_keygen(NULL, "provider=default", "EC", "P-256");
    fd = mkstemp(path);
    if (gen == NULL || fd < 0 || (f = fdopen(fd, "w+")) == NULL) {
        EVP_PKEY_free(gen);
        return NULL;
    }
    PEM_write_PrivateKey(f, gen, NULL, NULL, 0, NULL, NULL);
    rewind(f);
    k = PEM_read_PrivateKey_ex(f, NULL, NULL, NULL, NULL, "provider=default");
    fclose(f);
    unlink(path);
    EVP_PKEY_free(gen);
    return k;
}

int main(int argc, char **argv)
{
    const char *module = "build/ossl-modules", *name = "hsmbridge";
    const char *rsa_ref = "managedhsm:MyHSM:bench-rsa2048";
    const char *ec_ref = "managedhsm:MyHSM:bench-p256";
    const char *label = "hsmbridge";
    char *tlist = strdup("1,4"), *tok, *save = NULL;
    double seconds = 2;
    int threads[16], nthreads = 0, opt, i, j, failed = 0;
    TARGET targets[4];
    RESULT base[16][2];
    int want[2] = { 1, 1 }; /* RSA-2048, P-256 */

    while ((opt = getopt(argc, argv, "m:p:r:e:s:t:a:l:h")) != -1) {
        switch (opt) {
        case 'm': module = optarg; break;
        case 'p': name = optarg; break;
        case 'r': rsa_ref = optarg; break;
        case 'e': ec_ref = optarg; break;
        case 's': seconds = atof(optarg); break;
        case 'l': label = optarg; break;
        case 't': free(tlist); tlist = strdup(optarg); break;
        case 'a':
            want[0] = strstr(optarg, "RSA-2048") != NULL;
            want[1] = strstr(optarg, "P-256") != NULL;
            if (!want[0] && !want[1]) {
                fprintf(stderr, "signbench: -a takes RSA-2048 and/or P-256\n");
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [-m module] [-p name] [-r rsa-ref] "
                    "[-e ec-ref] [-s seconds] [-t 1,4] [-a RSA-2048,P-256] "
                    "[-l label]\n",
                    argv[0]);
            return 2;
        }
    }
    for (tok = strtok_r(tlist, ",", &save); tok && nthreads < 16;
         tok = strtok_r(NULL, ",", &save)) {
        int t = atoi(tok);

        if (t >= 1 && t <= MAX_THREADS)
            threads[nthreads++] = t;
        else
            fprintf(stderr, "signbench: %d threads is more than %d, "
                    "skipped\n", t, MAX_THREADS);
    }
    free(tlist);
    for (i = 0; i < (int)sizeof(digest); i++)
        digest[i] = (unsigned char)(i * 7 + 1);

    /* Default first, so default-file rows run on the default provider only. */
    if (OSSL_PROVIDER_load(NULL, "default") == NULL)
        goto openssl_error;
    if (strstr(module, ".so") != NULL) {
        if (OSSL_PROVIDER_load(NULL, module) == NULL)
            goto openssl_error;
    } else {
        OSSL_PROVIDER_set_default_search_path(NULL, module);
        if (OSSL_PROVIDER_load(NULL, name) == NULL)
            goto openssl_error;
    }
    vlib = OSSL_LIB_CTX_new();
    if (vlib == NULL || OSSL_PROVIDER_load(vlib, "default") == NULL)
        goto openssl_error;

    memset(targets, 0, sizeof(targets));
    if (want[0]) {
        targets[0] = (TARGET){ "default-file", "RSA-2048", file_key("RSA-2048") };
        targets[1] = (TARGET){ label, "RSA-2048", load_ref(rsa_ref) };
    }
    if (want[1]) {
        targets[2] = (TARGET){ "default-file", "P-256", file_key("P-256") };
        targets[3] = (TARGET){ label, "P-256", load_ref(ec_ref) };
    }
    for (i = 0; i < 4; i++)
        if (want[i / 2] && targets[i].key == NULL)
            goto openssl_error;
    if ((want[0] && (EVP_PKEY_get_bits(targets[1].key) != 2048
                     || !EVP_PKEY_is_a(targets[1].key, "RSA")))
        || (want[1] && (!EVP_PKEY_is_a(targets[3].key, "EC")
                        || EVP_PKEY_get_bits(targets[3].key) != 256))) {
        fprintf(stderr, "signbench: %s must be RSA-2048 and %s P-256\n",
                rsa_ref, ec_ref);
        return 1;
    }

    printf("one-shot EVP_PKEY_sign of a SHA-256 digest, %.1f s per row\n\n",
           seconds);
    printf("%-13s %-9s %7s %10s %10s %10s %11s %11s\n", "backend", "alg",
           "threads", "ops/s", "p50 us", "p99 us", "vs default", "bridge p50");
    RESULT split[4][8];
    int nsplit = 0;

    for (i = 0; i < 4; i++) {
        int alg = i / 2;

        if (!want[alg])
            continue;
        for (j = 0; j < nthreads; j++) {
            RESULT r = bench(&targets[i], threads[j], seconds);
            char ratio[32] = "1.00x", bridge[32] = "-";

            if (!r.ok) {
                printf("%-13s %-9s %7d   FAILED (signature did not verify or "
                       "signing failed)\n", targets[i].backend,
                       targets[i].alg, threads[j]);
                ERR_print_errors_fp(stdout);
                failed = 1;
                continue;
            }
            if (i % 2 == 0) {
                base[j][alg] = r;
            } else {
                if (base[j][alg].ops > 0)
                    snprintf(ratio, sizeof(ratio), "%.3fx",
                             r.ops / base[j][alg].ops);
                if (r.bridge50 >= 0)
                    snprintf(bridge, sizeof(bridge), "%.1f", r.bridge50);
                if (j < 8)
                    split[i][j] = r;
                nsplit = 1;
            }
            printf("%-13s %-9s %7d %10.0f %10.1f %10.1f %11s %11s\n",
                   targets[i].backend, targets[i].alg, threads[j], r.ops,
                   r.p50, r.p99, ratio, bridge);
            fflush(stdout);
        }
    }
    printf("\nvs default: ops/s relative to the default-file row with the same "
           "alg and threads.\nbridge p50: median of (round trip - "
           "Response.timing.plugin_ns), in us: the bridge's added latency.\n");
    if (nsplit) {
        printf("\nwhere the bridge's time goes (p50 us per request):\n");
        printf("%-9s %7s %16s %10s %14s\n", "alg", "threads",
               "provider+socket", "hsmhost", "plugin RPC");
        for (i = 1; i < 4; i += 2)
            for (j = 0; j < nthreads && j < 8 && want[i / 2]; j++)
                printf("%-9s %7d %16.1f %10.1f %14.1f\n", targets[i].alg,
                       threads[j], split[i][j].seg50[0], split[i][j].seg50[1],
                       split[i][j].seg50[2]);
    }
    for (i = 0; i < 4; i++)
        EVP_PKEY_free(targets[i].key);
    return failed;

openssl_error:
    ERR_print_errors_fp(stderr);
    return 1;
}
