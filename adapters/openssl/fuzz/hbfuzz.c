/* Set-up shared by the C fuzz harnesses: see hbfuzz.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "hbfuzz.h"

OSSL_provider_init_fn OSSL_provider_init; /* provider.c */

/*
 * The configuration is given as text, not as a file: OSSL_PROVIDER_load
 * cannot pass parameters in OpenSSL 3.0, and a provider section names a
 * built-in provider (OSSL_PROVIDER_add_builtin) as well as a module.
 */
static const char conf[] =
    "openssl_conf = openssl_init\n"
    "[openssl_init]\n"
    "providers = provider_sect\n"
    "[provider_sect]\n"
    "default = default_sect\n"
    "hsmbridge = hsmbridge_sect\n"
    "[default_sect]\n"
    "activate = 1\n"
    "[hsmbridge_sect]\n"
    "activate = 1\n"
    "hsmbridge_socket = /nonexistent/hsmbridge-fuzz/hsmhost.sock\n"
    "hsmbridge_autostart = no\n"
    "hsmbridge_timeout_ms = 1000\n";

static void die(const char *what)
{
    fprintf(stderr, "hbfuzz: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

void hbfuzz_init(OSSL_LIB_CTX **libctx, HB_PROV_CTX **provctx)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *prov;
    CONF *cnf;
    BIO *bio;
    long eline = 0;

    if (ctx == NULL
        || !OSSL_PROVIDER_add_builtin(ctx, HB_PROV_NAME, OSSL_provider_init))
        die("cannot register the provider");
    OPENSSL_load_builtin_modules(); /* the "providers" section's module */
    cnf = NCONF_new_ex(ctx, NULL);
    bio = BIO_new_mem_buf(conf, (int)sizeof(conf) - 1);
    if (cnf == NULL || bio == NULL || NCONF_load_bio(cnf, bio, &eline) <= 0
        || CONF_modules_load(cnf, NULL, 0) <= 0)
        die("cannot load the configuration");
    BIO_free(bio);
    NCONF_free(cnf);
    /* Activated by the configuration: this only takes a reference. */
    prov = OSSL_PROVIDER_load(ctx, HB_PROV_NAME);
    if (prov == NULL || !OSSL_PROVIDER_available(ctx, "default"))
        die("the providers are not available");
    *libctx = ctx;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
    if (*provctx == NULL || (*provctx)->autostart)
        die("the provider is not configured as expected");
    ERR_clear_error();
}

void hbfuzz_fail(const char *file, int line, const char *cond,
                 const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: property broken: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_print_errors_fp(stderr);
    abort();
}
