//go:build cgo

#include "shim.h"

#include <stdio.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

/* OpenSSL 3.2's OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, spelt out: the
 * 3.0 headers do not define it, and 3.0 ignores a parameter it does not
 * know, so passing it always keeps bad padding an error on 3.2 and later
 * too (where implicit rejection is on by default). */
#define HB_IMPLICIT_REJECTION "implicit-rejection"

/* take_error moves the thread's last OpenSSL error into err (or what, when
 * the queue is empty) and empties the queue. */
static void take_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (errlen > 0) {
        if (e != 0)
            ERR_error_string_n(e, err, errlen);
        else
            snprintf(err, errlen, "%s", what);
    }
    ERR_clear_error();
}

EVP_PKEY *hb_key_load(const unsigned char *der, size_t derlen, char *err, size_t errlen)
{
    ERR_clear_error();
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, (long)derlen);
    if (pkey == NULL) {
        take_error(err, errlen, "d2i_AutoPrivateKey failed");
        return NULL;
    }
    if (p != der + derlen) {
        EVP_PKEY_free(pkey);
        take_error(err, errlen, "trailing data after the private key");
        return NULL;
    }
    /* The decoders OpenSSL tried before the one that worked leave entries. */
    ERR_clear_error();
    return pkey;
}

int hb_rsa_sign(EVP_PKEY *pkey, const char *md, int pss, const char *mgf1, int saltlen,
                const unsigned char *digest, size_t digestlen,
                unsigned char *sig, size_t *siglen, char *err, size_t errlen)
{
    ERR_clear_error();
    OSSL_PARAM params[5], *p = params;
    /* The pad mode first: the salt length and MGF1 digest are PSS's. */
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE,
                                            pss ? OSSL_PKEY_RSA_PAD_MODE_PSS : OSSL_PKEY_RSA_PAD_MODE_PKCSV15, 0);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, (char *)md, 0);
    if (pss) {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, (char *)mgf1, 0);
        *p++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &saltlen);
    }
    *p = OSSL_PARAM_construct_end();

    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL
        && EVP_PKEY_sign_init_ex(ctx, params) > 0
        && EVP_PKEY_sign(ctx, sig, siglen, digest, digestlen) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        take_error(err, errlen, "EVP_PKEY_sign failed");
        return 0;
    }
    ERR_clear_error();
    return 1;
}

int hb_rsa_decrypt(EVP_PKEY *pkey, int oaep, const char *md, const char *mgf1,
                   const unsigned char *label, size_t labellen,
                   const unsigned char *in, size_t inlen,
                   unsigned char *out, size_t *outlen, char *err, size_t errlen)
{
    ERR_clear_error();
    unsigned int implicit = 0;
    OSSL_PARAM params[5], *p = params;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE,
                                            oaep ? OSSL_PKEY_RSA_PAD_MODE_OAEP : OSSL_PKEY_RSA_PAD_MODE_PKCSV15, 0);
    if (oaep) {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, (char *)md, 0);
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, (char *)mgf1, 0);
        /* OpenSSL copies the label. */
        if (labellen > 0)
            *p++ = OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, (void *)label, labellen);
    } else {
        *p++ = OSSL_PARAM_construct_uint(HB_IMPLICIT_REJECTION, &implicit);
    }
    *p = OSSL_PARAM_construct_end();

    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || EVP_PKEY_decrypt_init_ex(ctx, params) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        take_error(err, errlen, "EVP_PKEY_decrypt_init_ex failed");
        return -1;
    }
    int ok = EVP_PKEY_decrypt(ctx, out, outlen, in, inlen) > 0;
    EVP_PKEY_CTX_free(ctx);
    /* Not a word about why: the queue is emptied, not read. */
    ERR_clear_error();
    return ok ? 1 : 0;
}

int hb_ec_sign(EVP_PKEY *pkey, const unsigned char *digest, size_t digestlen,
               unsigned char *sig, size_t *siglen, char *err, size_t errlen)
{
    ERR_clear_error();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1
             && EVP_PKEY_sign(ctx, sig, siglen, digest, digestlen) == 1;
    if (!ok)
        take_error(err, errlen, "ECDSA signing failed");
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
