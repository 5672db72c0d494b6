package mhsmstandin

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"strings"

	"github.com/hsmbridge/hsmbridge/internal/aeskw"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// apiError is an answer the service gives as {"error":{...}}.
type apiError struct {
	status           int
	code, msg, inner string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badParam(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", msg: fmt.Sprintf(format, args...)}
}

// material is a key version's parsed secret, shared by all copies of the
// version: the point of caching is that a sign costs one ecdsa.Sign and
// nothing else.
type material struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	k1  *secp256k1.PrivateKey // crv P-256K
	oct []byte
}

const (
	ktyRSA = "RSA-HSM"
	ktyEC  = "EC-HSM"
	ktyOct = "oct-HSM"
)

// normKty maps the kty spellings clients send to the HSM form the service
// answers with ("" if unknown).
func normKty(kty string) string {
	switch strings.ToUpper(kty) {
	case "RSA", "RSA-HSM":
		return ktyRSA
	case "EC", "EC-HSM":
		return ktyEC
	case "OCT", "OCT-HSM":
		return ktyOct
	}
	return ""
}

func curveByName(crv string) (elliptic.Curve, bool) {
	switch crv {
	case "P-256":
		return elliptic.P256(), true
	case "P-384":
		return elliptic.P384(), true
	case "P-521":
		return elliptic.P521(), true
	}
	return nil, false
}

// generate makes new key material for a create request.
func generate(req *createRequest) (*material, string, string, error) {
	kty := normKty(req.Kty)
	switch kty {
	case ktyRSA:
		bits := 2048
		if req.KeySize != nil {
			bits = *req.KeySize
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, "", "", badParam("The key size %d is not supported for key type RSA-HSM. Supported sizes are 2048, 3072 and 4096.", bits)
		}
		if req.PublicExponent != nil && *req.PublicExponent != 65537 {
			// Go generates only e = 65537; the real HSM also accepts 3.
			return nil, "", "", badParam("The public exponent %d is not supported (only 65537).", *req.PublicExponent)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, "", "", err
		}
		k.Precompute()
		return &material{rsa: k}, kty, "", nil
	case ktyEC:
		crv := req.Crv
		if crv == "" {
			crv = "P-256"
		}
		if crv == "P-256K" { // the JWK name; the service knows no other (SECP256K1 was api 2016-10-01's)
			k, err := secp256k1.GenerateKey(rand.Reader)
			return &material{k1: k}, kty, crv, err
		}
		c, ok := curveByName(crv)
		if !ok {
			return nil, "", "", badParam("The curve name '%s' is not supported. Supported values are P-256, P-256K, P-384 and P-521.", crv)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		return &material{ec: k}, kty, crv, err
	case ktyOct:
		bits := 256
		if req.KeySize != nil {
			bits = *req.KeySize
		}
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, "", "", badParam("The key size %d is not supported for key type oct-HSM. Supported sizes are 128, 192 and 256.", bits)
		}
		k := make([]byte, bits/8)
		_, err := rand.Read(k)
		return &material{oct: k}, kty, "", err
	}
	if req.Kty == "" {
		return nil, "", "", badParam("The key type (kty) is required.")
	}
	return nil, "", "", badParam("The key type '%s' is not supported. Supported values are EC, EC-HSM, RSA, RSA-HSM, oct and oct-HSM.", req.Kty)
}

// materialFromJWK parses an imported (private) JSON Web Key.
func materialFromJWK(j *reqJWK) (*material, string, error) {
	if len(j.KeyHSM) > 0 {
		return nil, "", badParam("Bring-your-own-key transfer blobs (key_hsm) are not supported by this stand-in.")
	}
	kty := normKty(j.Kty)
	switch kty {
	case ktyRSA:
		if len(j.N) == 0 || len(j.E) == 0 {
			return nil, "", badParam("The RSA key is missing its modulus (n) or public exponent (e).")
		}
		if len(j.D) == 0 || len(j.P) == 0 || len(j.Q) == 0 {
			return nil, "", badParam("A private key (d, p, q) is required to import an RSA key.")
		}
		e := new(big.Int).SetBytes(j.E)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, "", badParam("The RSA public exponent is too large.")
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())},
			D:         new(big.Int).SetBytes(j.D),
			Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
		}
		if bits := k.N.BitLen(); bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, "", badParam("The key size %d is not supported for key type RSA-HSM. Supported sizes are 2048, 3072 and 4096.", bits)
		}
		if err := k.Validate(); err != nil {
			return nil, "", badParam("The RSA key is not valid: %v.", err)
		}
		k.Precompute()
		return &material{rsa: k}, kty, nil
	case ktyEC:
		if len(j.D) == 0 {
			return nil, "", badParam("A private key (d) is required to import an EC key.")
		}
		if j.Crv == "P-256K" {
			if len(j.D) > secp256k1.Size {
				return nil, "", badParam("The EC private key (d) is too long for %s.", j.Crv)
			}
			k, err := secp256k1.NewPrivateKey(j.D)
			if err != nil {
				return nil, "", badParam("The EC key is not valid: %v.", err)
			}
			if len(j.X) > 0 {
				x, y := (&material{k1: k}).ecPoint()
				if !equalPadded(x, j.X) || !equalPadded(y, j.Y) {
					return nil, "", badParam("The EC key is not valid: x and y do not match d.")
				}
			}
			return &material{k1: k}, kty, nil
		}
		c, ok := curveByName(j.Crv)
		if !ok {
			return nil, "", badParam("The curve name '%s' is not supported. Supported values are P-256, P-256K, P-384 and P-521.", j.Crv)
		}
		size := (c.Params().BitSize + 7) / 8
		if len(j.D) > size {
			return nil, "", badParam("The EC private key (d) is too long for %s.", j.Crv)
		}
		d := make([]byte, size)
		copy(d[size-len(j.D):], j.D)
		k, err := ecdsa.ParseRawPrivateKey(c, d)
		if err != nil {
			return nil, "", badParam("The EC key is not valid: %v.", err)
		}
		if len(j.X) > 0 {
			pub, _ := k.PublicKey.Bytes()
			if !equalPadded(pub[1:1+size], j.X) || !equalPadded(pub[1+size:], j.Y) {
				return nil, "", badParam("The EC key is not valid: x and y do not match d.")
			}
		}
		return &material{ec: k}, kty, nil
	case ktyOct:
		if n := len(j.K); n != 16 && n != 24 && n != 32 {
			return nil, "", badParam("The key size %d is not supported for key type oct-HSM. Supported sizes are 128, 192 and 256.", n*8)
		}
		return &material{oct: append([]byte(nil), j.K...)}, kty, nil
	}
	return nil, "", badParam("The key type '%s' is not supported. Supported values are EC, EC-HSM, RSA, RSA-HSM, oct and oct-HSM.", j.Kty)
}

func equalPadded(fixed, v []byte) bool {
	if len(v) > len(fixed) {
		return false
	}
	pad := make([]byte, len(fixed)-len(v))
	return subtle.ConstantTimeCompare(fixed, append(pad, v...)) == 1
}

// curve returns the JWK crv of an EC key.
func (m *material) curve() string {
	switch {
	case m.k1 != nil:
		return "P-256K"
	case m.ec != nil:
		return m.ec.Curve.Params().Name
	}
	return ""
}

// ecPoint returns the fixed-length affine coordinates of an EC key.
func (m *material) ecPoint() (x, y []byte) {
	if m.k1 != nil {
		pub := m.k1.PublicKey.Bytes()
		return pub[1 : 1+secp256k1.Size], pub[1+secp256k1.Size:]
	}
	pub, _ := m.ec.PublicKey.Bytes()
	size := (len(pub) - 1) / 2
	return pub[1 : 1+size], pub[1+size:]
}

// publicJWK fills the key fields of the answer; oct keys show none.
func (m *material) publicJWK(j *wireJWK) {
	switch {
	case m.rsa != nil:
		j.N = b64(m.rsa.N.Bytes())
		j.E = b64(big.NewInt(int64(m.rsa.E)).Bytes())
	case m.ec != nil || m.k1 != nil:
		x, y := m.ecPoint()
		j.Crv, j.X, j.Y = m.curve(), b64(x), b64(y)
	}
}

// privateJWK is the material as a private JWK, for the state file only.
func (m *material) privateJWK() json.RawMessage {
	f := map[string]string{}
	switch {
	case m.rsa != nil:
		f["kty"], f["n"], f["e"], f["d"] = "RSA", b64(m.rsa.N.Bytes()), b64(big.NewInt(int64(m.rsa.E)).Bytes()), b64(m.rsa.D.Bytes())
		f["p"], f["q"] = b64(m.rsa.Primes[0].Bytes()), b64(m.rsa.Primes[1].Bytes())
	case m.k1 != nil:
		x, y := m.ecPoint()
		f["kty"], f["crv"], f["x"], f["y"], f["d"] = "EC", "P-256K", b64(x), b64(y), b64(m.k1.Bytes())
	case m.ec != nil:
		x, y := m.ecPoint()
		d, _ := m.ec.Bytes()
		f["kty"], f["crv"], f["x"], f["y"], f["d"] = "EC", m.curve(), b64(x), b64(y), b64(d)
	default:
		f["kty"], f["k"] = "oct", b64(m.oct)
	}
	b, _ := json.Marshal(f)
	return b
}

// ---- signatures ----

type sigAlg struct {
	hash crypto.Hash
	pss  bool   // RSA: PSS (salt = hash length) rather than PKCS#1 v1.5
	crv  string // EC: the curve the algorithm requires ("" = RSA)
}

var sigAlgs = map[string]sigAlg{
	"RS256":  {hash: crypto.SHA256},
	"RS384":  {hash: crypto.SHA384},
	"RS512":  {hash: crypto.SHA512},
	"PS256":  {hash: crypto.SHA256, pss: true},
	"PS384":  {hash: crypto.SHA384, pss: true},
	"PS512":  {hash: crypto.SHA512, pss: true},
	"ES256":  {hash: crypto.SHA256, crv: "P-256"},
	"ES384":  {hash: crypto.SHA384, crv: "P-384"},
	"ES512":  {hash: crypto.SHA512, crv: "P-521"},
	"ES256K": {hash: crypto.SHA256, crv: "P-256K"},
}

// checkSig validates alg against the key and the digest length.
func (m *material) checkSig(alg string, digest []byte) (sigAlg, error) {
	a, ok := sigAlgs[alg]
	if !ok {
		if strings.HasPrefix(alg, "HS") {
			return a, badParam("The algorithm '%s' is not supported by this stand-in.", alg)
		}
		return a, badParam("The algorithm '%s' is not a valid signature algorithm.", alg)
	}
	switch {
	case a.crv == "" && m.rsa == nil, a.crv != "" && a.crv != m.curve():
		return a, badParam("The algorithm '%s' is not supported for this key (%s).", alg, m.describe())
	}
	if len(digest) != a.hash.Size() {
		return a, badParam("Invalid digest length for algorithm '%s': expected %d bytes, got %d.", alg, a.hash.Size(), len(digest))
	}
	return a, nil
}

func (m *material) describe() string {
	switch {
	case m.rsa != nil:
		return fmt.Sprintf("RSA-HSM %d", m.rsa.N.BitLen())
	case m.ec != nil || m.k1 != nil:
		return "EC-HSM " + m.curve()
	}
	return fmt.Sprintf("oct-HSM %d", len(m.oct)*8)
}

func (m *material) sign(alg string, digest []byte) ([]byte, error) {
	a, err := m.checkSig(alg, digest)
	if err != nil {
		return nil, err
	}
	switch {
	case m.rsa != nil && a.pss:
		return rsa.SignPSS(rand.Reader, m.rsa, a.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case m.rsa != nil:
		return rsa.SignPKCS1v15(nil, m.rsa, a.hash, digest)
	case m.k1 != nil:
		return m.k1.SignRaw(rand.Reader, digest)
	}
	r, s, err := ecdsa.Sign(rand.Reader, m.ec, digest)
	if err != nil {
		return nil, err
	}
	size := (m.ec.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

func (m *material) verify(alg string, digest, sig []byte) (bool, error) {
	a, err := m.checkSig(alg, digest)
	if err != nil {
		return false, err
	}
	switch {
	case m.rsa != nil && a.pss:
		return rsa.VerifyPSS(&m.rsa.PublicKey, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
	case m.rsa != nil:
		return rsa.VerifyPKCS1v15(&m.rsa.PublicKey, a.hash, digest, sig) == nil, nil
	case m.k1 != nil:
		return secp256k1.VerifyRaw(&m.k1.PublicKey, digest, sig), nil
	}
	size := (m.ec.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false, nil
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(&m.ec.PublicKey, digest, r, s), nil
}

// ---- encryption and key wrapping ----

func oaepHash(alg string) (hash.Hash, bool) {
	switch alg {
	case "RSA-OAEP":
		return sha1.New(), true
	case "RSA-OAEP-256":
		return sha256.New(), true
	}
	return nil, false
}

func (m *material) rsaEncrypt(alg string, pt []byte) ([]byte, error) {
	if m.rsa == nil {
		return nil, badParam("The algorithm '%s' is not supported for this key (%s).", alg, m.describe())
	}
	var (
		out []byte
		err error
	)
	if h, ok := oaepHash(alg); ok {
		out, err = rsa.EncryptOAEP(h, rand.Reader, &m.rsa.PublicKey, pt, nil)
	} else {
		out, err = rsa.EncryptPKCS1v15(rand.Reader, &m.rsa.PublicKey, pt)
	}
	if err != nil {
		return nil, badParam("The plaintext is too long for algorithm '%s' with this key.", alg)
	}
	return out, nil
}

func (m *material) rsaDecrypt(alg string, ct []byte) ([]byte, error) {
	if m.rsa == nil {
		return nil, badParam("The algorithm '%s' is not supported for this key (%s).", alg, m.describe())
	}
	var (
		out []byte
		err error
	)
	if h, ok := oaepHash(alg); ok {
		out, err = rsa.DecryptOAEP(h, nil, m.rsa, ct, nil)
	} else {
		out, err = rsa.DecryptPKCS1v15(nil, m.rsa, ct)
	}
	if err != nil {
		return nil, badParam("Decryption failed: the ciphertext is not valid for algorithm '%s' with this key.", alg)
	}
	return out, nil
}

func isRSAEnc(alg string) bool { return alg == "RSA1_5" || alg == "RSA-OAEP" || alg == "RSA-OAEP-256" }

func (m *material) encrypt(alg string, pt []byte) ([]byte, error) {
	if isRSAEnc(alg) {
		return m.rsaEncrypt(alg, pt)
	}
	return nil, badParam("The algorithm '%s' is not supported for encrypt by this stand-in.", alg)
}

func (m *material) decrypt(alg string, ct []byte) ([]byte, error) {
	if isRSAEnc(alg) {
		return m.rsaDecrypt(alg, ct)
	}
	return nil, badParam("The algorithm '%s' is not supported for decrypt by this stand-in.", alg)
}

// aesKWKey checks an AES key-wrap algorithm against an oct key.
func (m *material) aesKWKey(alg string) ([]byte, bool, error) {
	want := map[string]int{"A128KW": 16, "A192KW": 24, "A256KW": 32, "CKM_AES_KEY_WRAP": 0, "CKM_AES_KEY_WRAP_PAD": 0}
	n, ok := want[alg]
	if !ok {
		return nil, false, badParam("The algorithm '%s' is not supported for key wrapping by this stand-in.", alg)
	}
	if m.oct == nil || (n != 0 && len(m.oct) != n) {
		return nil, false, badParam("The algorithm '%s' is not supported for this key (%s).", alg, m.describe())
	}
	return m.oct, alg == "CKM_AES_KEY_WRAP_PAD", nil
}

func (m *material) wrap(alg string, key []byte) ([]byte, error) {
	if isRSAEnc(alg) {
		return m.rsaEncrypt(alg, key)
	}
	kek, pad, err := m.aesKWKey(alg)
	if err != nil {
		return nil, err
	}
	var out []byte
	if pad {
		out, err = aeskw.WrapPad(kek, key)
	} else {
		out, err = aeskw.Wrap(kek, key)
	}
	switch {
	case err == nil:
		return out, nil
	case pad:
		return nil, badParam("The key to wrap must not be empty.")
	}
	return nil, badParam("The key to wrap must be a multiple of 8 bytes and at least 16 bytes long for AES key wrap; got %d bytes.", len(key))
}

var errUnwrap = badParam("Unwrap failed: the wrapped key does not pass the AES key wrap integrity check.")

func (m *material) unwrap(alg string, wrapped []byte) ([]byte, error) {
	if isRSAEnc(alg) {
		return m.rsaDecrypt(alg, wrapped)
	}
	kek, pad, err := m.aesKWKey(alg)
	if err != nil {
		return nil, err
	}
	var out []byte
	if pad {
		out, err = aeskw.UnwrapPad(kek, wrapped)
	} else {
		out, err = aeskw.Unwrap(kek, wrapped)
	}
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, aeskw.ErrIntegrity):
		return nil, errUnwrap
	case pad:
		return nil, badParam("The wrapped key must be a multiple of 8 bytes and at least 16 bytes long for AES key wrap with padding; got %d bytes.", len(wrapped))
	}
	return nil, badParam("The wrapped key must be a multiple of 8 bytes and at least 24 bytes long for AES key wrap; got %d bytes.", len(wrapped))
}
