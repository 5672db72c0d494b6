package ossl

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // crypto.Hash.New for PSS and OAEP
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// The crypto/rsa path: the only one without cgo, and what a Key falls back
// to after Close. It is the simulator's code from before this package.

func goSign(k *rsa.PrivateKey, digest []byte, h crypto.Hash, pss *PSSOptions) ([]byte, error) {
	if pss == nil {
		return rsa.SignPKCS1v15(nil, k, h, digest)
	}
	if pss.MGF1Hash != h || pss.SaltLength == 0 {
		// Beyond what rsa.SignPSS expresses (it reads salt 0 as "longest").
		return signPSS(k, digest, h, pss.MGF1Hash, pss.SaltLength)
	}
	return rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: pss.SaltLength, Hash: h})
}

func goDecrypt(k *rsa.PrivateKey, ciphertext []byte, oaep *rsa.OAEPOptions) ([]byte, error) {
	var pt []byte
	var err error
	if oaep == nil {
		pt, err = rsa.DecryptPKCS1v15(nil, k, ciphertext)
	} else {
		pt, err = k.Decrypt(nil, ciphertext, oaep)
	}
	if err != nil {
		return nil, rsa.ErrDecryption
	}
	return pt, nil
}
