/*
 * Masked-key files, shared by the azihsm:// store (store_azihsm.c) and key
 * generation/import (keygen.c). A masked key is a blob only the backend
 * instance that made it can open (docs/MASKED_KEYS.md); the application
 * keeps it in a file, and the provider, not hsmhost, reads and writes that
 * file, so paths are relative to the application's working directory.
 */
#ifndef HSMBRIDGE_MASKED_H
#define HSMBRIDGE_MASKED_H

#include "provider.h"

/* Blobs are small; anything near a frame's size is not one. */
#define HB_MASKED_MAX_FILE (512u * 1024u)

/*
 * Reads a whole file. what names it in errors ("masked key file", "input
 * key file"): missing, unreadable, a directory, empty or larger than max
 * are each said so. Free with OPENSSL_clear_free(buf, *len).
 */
unsigned char *hb_read_file(HB_PROV_CTX *provctx, const char *path,
                            const char *what, size_t max, size_t *len);

/* Writes data to path with mode 0600, replacing it only once complete. */
int hb_write_private_file(HB_PROV_CTX *provctx, const char *path,
                          const char *what, const unsigned char *data,
                          size_t len);

/* "ec", "rsa" or "rsa-pss" for a type= value (any case); NULL otherwise. */
const char *hb_azihsm_type(const char *s, size_t len);

/* "azihsm://<path>;type=<type>"; free with free(). */
char *hb_azihsm_uri(const char *path, const char *type);

/*
 * Opens a blob (OpenMaskedRequest) and makes a key object for it; errors
 * name the file.
 */
HB_KEY *hb_masked_open(HB_PROV_CTX *provctx, const char *uri,
                       const char *type, const char *file,
                       const unsigned char *blob, size_t bloblen);

#endif
