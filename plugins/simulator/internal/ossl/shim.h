//go:build cgo

/*
 * The C half of package ossl: load an RSA or EC private key into an
 * EVP_PKEY, sign a digest, decrypt a ciphertext. Each call makes and frees its own
 * EVP_PKEY_CTX, so one EVP_PKEY serves any number of threads at once (a
 * key is only read after it is loaded). Every call leaves the calling
 * thread's OpenSSL error queue empty: cgo runs calls on whichever thread,
 * and a stale entry would end up in another call's message.
 *
 * Buffers are the caller's (Go memory for the duration of the call); no
 * pointer is kept after a call returns.
 */
#ifndef HSMBRIDGE_SIM_OSSL_SHIM_H
#define HSMBRIDGE_SIM_OSSL_SHIM_H

#include <stddef.h>

#include <openssl/evp.h>

/* hb_key_load decodes a DER private key: an RSAPrivateKey (PKCS#1) or a
 * PKCS#8 PrivateKeyInfo. NULL on failure, with OpenSSL's reason in err
 * (NUL-terminated, at most errlen bytes). */
EVP_PKEY *hb_key_load(const unsigned char *der, size_t derlen, char *err, size_t errlen);

/* hb_ec_sign signs a digest with an EC key: an ASN.1 DER ECDSA signature.
 * *siglen is the size of sig on entry and the signature's on return. 1 on
 * success; 0 with err set. */
int hb_ec_sign(EVP_PKEY *pkey, const unsigned char *digest, size_t digestlen,
               unsigned char *sig, size_t *siglen, char *err, size_t errlen);

/* hb_rsa_sign signs a digest made with md (an OpenSSL digest name): PKCS#1
 * v1.5 (OpenSSL builds the DigestInfo) when pss is 0, else PSS with the
 * MGF1 digest mgf1 and a salt of saltlen bytes. *siglen is the size of sig
 * on entry and the signature's on return. 1 on success; 0 with err set. */
int hb_rsa_sign(EVP_PKEY *pkey, const char *md, int pss, const char *mgf1, int saltlen,
                const unsigned char *digest, size_t digestlen,
                unsigned char *sig, size_t *siglen, char *err, size_t errlen);

/* hb_rsa_decrypt decrypts: PKCS#1 v1.5 when oaep is 0 (implicit rejection
 * off: bad padding is an error, not a random plaintext), else OAEP with
 * the digest md, the MGF1 digest mgf1 and the label (may be NULL when
 * labellen is 0). out must hold the key's size in bytes; *outlen is that
 * size on entry and the plaintext's on return.
 *
 * 1: decrypted. 0: the ciphertext does not decrypt under these parameters
 * (nothing more is said: which check failed is an oracle). -1: the
 * operation could not be set up, whatever the ciphertext (err says why). */
int hb_rsa_decrypt(EVP_PKEY *pkey, int oaep, const char *md, const char *mgf1,
                   const unsigned char *label, size_t labellen,
                   const unsigned char *in, size_t inlen,
                   unsigned char *out, size_t *outlen, char *err, size_t errlen);

#endif
