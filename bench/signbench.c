/*
 * signbench: signing (or RSA decryption) latency and throughput of
 * hsmbridge keys against the same algorithms on key files handled by
 * OpenSSL's default provider, in one run, with one-shot EVP_PKEY_sign on a
 * 32-byte SHA-256 digest, or with -o decrypt one-shot EVP_PKEY_decrypt of
 * an RSA-OAEP (SHA-256, MGF1 SHA-256) ciphertext of a 32-byte secret.
 *
 *   signbench [-m MODULE] [-p NAME] [-r RSA-REF] [-e EC-REF] [-s SECONDS]
 *             [-n OPS] [-t THREADS[,THREADS...]] [-a ALG[,ALG]]
 *             [-o sign|decrypt] [-l LABEL] [-R FILE]
 *
 *   -m  the provider module (.so path) or the directory holding it
 *       (default: build/ossl-modules)
 *   -p  provider name to load (default hsmbridge)
 *   -r  RSA-2048 key reference (default managedhsm:MyHSM:bench-rsa2048)
 *   -e  P-256 key reference (default managedhsm:MyHSM:bench-p256)
 *   -s  seconds per row (default 2)
 *   -n  a fixed number of operations per row instead (shared by the row's
 *       threads), so that a caller can divide CPU time read around the run
 *   -t  thread counts (default 1,4; at most MAX_THREADS each)
 *   -a  algorithms to run: RSA-2048, P-256 or both (default both, RSA-2048
 *       only for decrypt); a backend that only has one of the keys is
 *       benched without the other
 *   -o  the operation: sign (default) or decrypt (RSA-2048 only; the
 *       RSA key must allow decrypt)
 *   -l  the label of the hsmbridge rows (default hsmbridge)
 *   -R  also append every row to FILE, tab-separated: op, alg, backend,
 *       threads, ops/s, p50 us, p99 us, bridge p50 us (-1 when there is
 *       none: default-file rows, or the host reported no plugin time),
 *       failed workers (0 when the row is good)
 *
 * For hsmbridge rows the provider reports the host's timing of each request
 * through the signature (or asym cipher) context parameters
 * "hsmbridge-last-total-ns" and "hsmbridge-last-plugin-ns"; "bridge p50" is
 * the median of total minus plugin time, i.e. what the bridge (socket,
 * hsmhost, go-plugin gRPC) adds to the backend's own work. Every row's first
 * signature is verified with the public key in a library context holding
 * only the default provider; for decrypt, the ciphertext is made there with
 * the public key and the row's first plaintext compared with the secret.
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
    unsigned char ct[512]; /* decrypt: the secret under the public key */
    size_t ctlen;
} TARGET;

typedef struct {
    const TARGET *t;
    int hsm;
    double seconds;
    size_t ops;             /* fixed count, or 0: run for seconds */
    uint64_t *lat, *bridge; /* ns per op; bridge overhead per op */
    uint64_t *seg[3];       /* front end + socket, hsmhost, plugin RPC */
    size_t n, cap, nbridge;
    size_t nplugin;         /* requests whose plugin time was reported */
    int failed;
} WORKER;

static OSSL_LIB_CTX *vlib; /* default provider only, for verification */
static unsigned char digest[32];
static unsigned char secret[32]; /* what every decrypt row's ciphertext holds */
static int decrypt_mode;

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

/* RSA-OAEP with SHA-256 for both the OAEP and the MGF1 digest. */
static int set_oaep(EVP_PKEY_CTX *c)
{
    OSSL_PARAM p[4];

    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE,
                                            OSSL_PKEY_RSA_PAD_MODE_OAEP, 0);
    p[1] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
                                            "SHA256", 0);
    p[2] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
                                            "SHA256", 0);
    p[3] = OSSL_PARAM_construct_end();
    return EVP_PKEY_CTX_set_params(c, p) > 0;
}

static EVP_PKEY_CTX *decrypt_ctx(EVP_PKEY *key)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

    if (c == NULL || EVP_PKEY_decrypt_init(c) <= 0 || !set_oaep(c)) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    return c;
}

static EVP_PKEY_CTX *op_ctx(EVP_PKEY *key)
{
    return decrypt_mode ? decrypt_ctx(key) : sign_ctx(key);
}

/* One operation of the mode on a context from op_ctx. */
static int op_once(EVP_PKEY_CTX *c, const TARGET *t, unsigned char *out,
                   size_t *len)
{
    if (decrypt_mode)
        return EVP_PKEY_decrypt(c, out, len, t->ct, t->ctlen) > 0;
    return EVP_PKEY_sign(c, out, len, digest, sizeof(digest)) > 0;
}

static void *run_worker(void *arg)
{
    WORKER *w = arg;
    EVP_PKEY_CTX *c = op_ctx(w->t->key);
    unsigned char out[1024];
    uint64_t end, t0, t1, total, host, backend, plugin;
    size_t done = 0;
    OSSL_PARAM tp[5];

    if (c == NULL) {
        w->failed = 1;
        return NULL;
    }
    end = now_ns() + (uint64_t)(w->seconds * 1e9);
    do {
        size_t len = sizeof(out);

        t0 = now_ns();
        if (!op_once(c, w->t, out, &len)) {
            w->failed = 1;
            break;
        }
        done++;
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
                w->nplugin += plugin > 0;
            }
        }
    } while (w->ops > 0 ? done < w->ops : t1 < end);
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

/* An independent copy of key's public half in the verification context. */
static EVP_PKEY *public_copy(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    EVP_PKEY *pub = NULL;
    int derlen = i2d_PUBKEY(key, &der);

    p = der;
    if (derlen > 0)
        pub = d2i_PUBKEY_ex(NULL, &p, derlen, vlib, NULL);
    OPENSSL_free(der);
    return pub;
}

/* Signs once and verifies with an independent copy of the public key. */
static int check_signature(EVP_PKEY *key)
{
    EVP_PKEY_CTX *c = sign_ctx(key), *v = NULL;
    unsigned char sig[1024];
    size_t len = sizeof(sig);
    EVP_PKEY *pub = NULL;
    OSSL_PARAM prm[2];
    int ok = 0;

    prm[0] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                              "SHA256", 0);
    prm[1] = OSSL_PARAM_construct_end();
    if (c == NULL || EVP_PKEY_sign(c, sig, &len, digest, sizeof(digest)) <= 0)
        goto done;
    if ((pub = public_copy(key)) == NULL)
        goto done;
    v = EVP_PKEY_CTX_new_from_pkey(vlib, pub, NULL);
    ok = v != NULL && EVP_PKEY_verify_init(v) > 0
        && EVP_PKEY_CTX_set_params(v, prm) > 0
        && EVP_PKEY_verify(v, sig, len, digest, sizeof(digest)) == 1;
done:
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_CTX_free(v);
    EVP_PKEY_free(pub);
    return ok;
}

/* Encrypts the secret for t's key with its public half, default provider. */
static int make_ciphertext(TARGET *t)
{
    EVP_PKEY *pub = public_copy(t->key);
    EVP_PKEY_CTX *e = pub ? EVP_PKEY_CTX_new_from_pkey(vlib, pub, NULL) : NULL;
    int ok;

    t->ctlen = sizeof(t->ct);
    ok = e != NULL && EVP_PKEY_encrypt_init(e) > 0 && set_oaep(e)
        && EVP_PKEY_encrypt(e, t->ct, &t->ctlen, secret, sizeof(secret)) > 0;
    EVP_PKEY_CTX_free(e);
    EVP_PKEY_free(pub);
    return ok;
}

/* Decrypts the target's ciphertext once and compares with the secret. */
static int check_decrypt(const TARGET *t)
{
    EVP_PKEY_CTX *c = decrypt_ctx(t->key);
    unsigned char pt[512];
    size_t len = sizeof(pt);
    int ok;

    ok = c != NULL && EVP_PKEY_decrypt(c, pt, &len, t->ct, t->ctlen) > 0
        && len == sizeof(secret) && memcmp(pt, secret, len) == 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

typedef struct {
    double ops, p50, p99, bridge50, seg50[3];
    int ok, failed; /* failed: workers that stopped on an error */
    int no_plugin;  /* the host reported no plugin time: no bridge figure */
} RESULT;

static RESULT bench(const TARGET *t, int threads, double seconds, size_t ops)
{
    WORKER w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    RESULT r;
    uint64_t *all, *br, *seg[3], start, wall;
    size_t n = 0, nb = 0, np = 0, cap = 1000000 / (size_t)threads;
    int i, k;

    memset(&r, 0, sizeof(r));

    if (ops > 0 && ops < (size_t)threads)
        ops = (size_t)threads; /* every thread does at least one */
    if (ops > 0 && ops / (size_t)threads + 1 > cap)
        cap = ops / (size_t)threads + 1;
    r.ok = decrypt_mode ? check_decrypt(t) : check_signature(t->key);
    if (!r.ok) {
        r.failed = 1;
        return r;
    }
    memset(w, 0, sizeof(w));
    start = now_ns();
    for (i = 0; i < threads; i++) {
        w[i].t = t;
        w[i].hsm = strcmp(t->backend, "default-file") != 0;
        w[i].seconds = seconds;
        /* The fixed count shared out, the remainder to the first threads. */
        if (ops > 0)
            w[i].ops = ops / (size_t)threads + ((size_t)i < ops % (size_t)threads);
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
        if (w[i].failed) {
            r.ok = 0;
            r.failed++;
        }
        memcpy(all + n, w[i].lat, w[i].n * sizeof(uint64_t));
        n += w[i].n;
        memcpy(br + nb, w[i].bridge, w[i].nbridge * sizeof(uint64_t));
        for (k = 0; k < 3; k++) {
            memcpy(seg[k] + nb, w[i].seg[k], w[i].nbridge * sizeof(uint64_t));
            free(w[i].seg[k]);
        }
        nb += w[i].nbridge;
        np += w[i].nplugin;
        free(w[i].lat);
        free(w[i].bridge);
    }
    qsort(all, n, sizeof(uint64_t), cmp_u64);
    qsort(br, nb, sizeof(uint64_t), cmp_u64);
    r.ops = (double)n / ((double)wall / 1e9);
    r.p50 = pct(all, n, 0.50);
    r.p99 = pct(all, n, 0.99);
    r.no_plugin = nb > 0 && np == 0;
    r.bridge50 = nb && !r.no_plugin ? pct(br, nb, 0.50) : -1;
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
    const char *rows_path = NULL;
    char *tlist = strdup("1,4"), *tok, *save = NULL;
    double seconds = 2;
    size_t ops = 0;
    int threads[16], nthreads = 0, opt, i, j, failed = 0, alg_given = 0;
    TARGET targets[4];
    RESULT base[16][2];
    FILE *rows = NULL;
    int want[2] = { 1, 1 }; /* RSA-2048, P-256 */

    while ((opt = getopt(argc, argv, "m:p:r:e:s:n:t:a:l:o:R:h")) != -1) {
        switch (opt) {
        case 'm': module = optarg; break;
        case 'p': name = optarg; break;
        case 'r': rsa_ref = optarg; break;
        case 'e': ec_ref = optarg; break;
        case 's': seconds = atof(optarg); break;
        case 'n': ops = (size_t)strtoul(optarg, NULL, 10); break;
        case 'l': label = optarg; break;
        case 'R': rows_path = optarg; break;
        case 't': free(tlist); tlist = strdup(optarg); break;
        case 'a':
            alg_given = 1;
            want[0] = strstr(optarg, "RSA-2048") != NULL;
            want[1] = strstr(optarg, "P-256") != NULL;
            if (!want[0] && !want[1]) {
                fprintf(stderr, "signbench: -a takes RSA-2048 and/or P-256\n");
                return 2;
            }
            break;
        case 'o':
            if (strcmp(optarg, "decrypt") == 0) {
                decrypt_mode = 1;
            } else if (strcmp(optarg, "sign") != 0) {
                fprintf(stderr, "signbench: -o takes sign or decrypt\n");
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [-m module] [-p name] [-r rsa-ref] "
                    "[-e ec-ref] [-s seconds] [-n ops] [-t 1,4] "
                    "[-a RSA-2048,P-256] [-o sign|decrypt] [-l label] "
                    "[-R rows-file]\n",
                    argv[0]);
            return 2;
        }
    }
    if (decrypt_mode) {
        if (alg_given && want[1]) {
            fprintf(stderr, "signbench: -o decrypt is for RSA-2048 only\n");
            return 2;
        }
        want[0] = 1;
        want[1] = 0;
    }
    if (rows_path != NULL && (rows = fopen(rows_path, "a")) == NULL) {
        perror(rows_path);
        return 2;
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
    for (i = 0; i < (int)sizeof(secret); i++)
        secret[i] = (unsigned char)(i * 11 + 3);

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
    for (i = 0; i < 4; i++) {
        targets[i].backend = i % 2 == 0 ? "default-file" : label;
        targets[i].alg = i < 2 ? "RSA-2048" : "P-256";
        if (want[i / 2])
            targets[i].key = i % 2 == 0 ? file_key(targets[i].alg)
                                        : load_ref(i < 2 ? rsa_ref : ec_ref);
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
    for (i = 0; decrypt_mode && i < 2; i++)
        if (!make_ciphertext(&targets[i]))
            goto openssl_error;

    printf("%s, ", decrypt_mode
           ? "one-shot EVP_PKEY_decrypt of RSA-OAEP (SHA-256, MGF1 SHA-256)"
           : "one-shot EVP_PKEY_sign of a SHA-256 digest");
    if (ops > 0)
        printf("%zu operations per row\n\n", ops);
    else
        printf("%.1f s per row\n\n", seconds);
    printf("%-13s %-9s %7s %10s %10s %10s %11s %11s\n", "backend", "alg",
           "threads", "ops/s", "p50 us", "p99 us", "vs default", "bridge p50");
    RESULT split[4][8];
    int nsplit = 0, no_plugin = 0;

    for (i = 0; i < 4; i++) {
        int alg = i / 2;

        if (!want[alg])
            continue;
        for (j = 0; j < nthreads; j++) {
            RESULT r = bench(&targets[i], threads[j], seconds, ops);
            char ratio[32] = "1.00x", bridge[32] = "-";

            if (rows != NULL) {
                fprintf(rows, "%s\t%s\t%s\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%d\n",
                        decrypt_mode ? "decrypt" : "sign", targets[i].alg,
                        targets[i].backend, threads[j], r.ok ? r.ops : 0,
                        r.p50, r.p99, i % 2 == 1 && r.ok ? r.bridge50 : -1,
                        r.failed);
                fflush(rows);
            }
            if (!r.ok) {
                printf("%-13s %-9s %7d   FAILED (%d of %d threads: %s)\n",
                       targets[i].backend, targets[i].alg, threads[j],
                       r.failed, threads[j], decrypt_mode
                       ? "decryption failed or gave another plaintext"
                       : "signing failed or the signature did not verify");
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
                else if (r.no_plugin)
                    snprintf(bridge, sizeof(bridge), "n/a*");
                no_plugin |= r.no_plugin;
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
    if (no_plugin)
        printf("n/a*: the host reported no plugin time for these requests "
               "(plugin_ns 0), so the\nbackend's own work is not taken out; "
               "\"plugin RPC\" below is then the whole backend call.\n");
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
    if (rows != NULL)
        fclose(rows);
    return failed;

openssl_error:
    ERR_print_errors_fp(stderr);
    return 1;
}
