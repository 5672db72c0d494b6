/*
 * What the C fuzz harnesses share (see README.md here): the provider, linked
 * into the harness from its object files and registered as a built-in
 * provider, loaded once per process in a library context of its own.
 */
#ifndef HSMBRIDGE_HBFUZZ_H
#define HSMBRIDGE_HBFUZZ_H

#include <openssl/types.h>

#include "provider.h"

/*
 * Loads "default" and "hsmbridge" into a new library context. hsmbridge is
 * configured so that no request ever reaches a host: its socket is a path
 * that does not exist and autostart is off, so a decoded reference fails
 * at once with "no host" instead of starting hsmhost or waiting. Exits the
 * process if anything fails: a harness that cannot set up must not run.
 */
void hbfuzz_init(OSSL_LIB_CTX **libctx, HB_PROV_CTX **provctx);

/* Reports a broken property and aborts, so libFuzzer keeps the input. */
#define HBFUZZ_CHECK(cond, ...)                                           \
    do {                                                                  \
        if (!(cond))                                                      \
            hbfuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);          \
    } while (0)

void hbfuzz_fail(const char *file, int line, const char *cond,
                 const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#endif
