package ossl

// Every result is checked with Go's crypto alone: signatures with
// rsa.VerifyPKCS1v15, rsa.VerifyPSS and, where rsa.VerifyPSS cannot say
// what was asked (an empty salt, another MGF1 digest), rsatest.VerifyPSS;
// ciphertexts are made by rsa.EncryptPKCS1v15 and rsa.EncryptOAEPWithOptions.
// The same tests run with and without cgo (CGO_ENABLED=0 go test).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/hsmbridge/hsmbridge/plugins/simulator/internal/rsatest"
)

var hashes = []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

var (
	keysOnce sync.Once
	keys     map[int]*rsa.PrivateKey
)

// testKey is a key of the given size, generated once per test binary.
func testKey(t testing.TB, bits int) (*rsa.PrivateKey, *Key) {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[int]*rsa.PrivateKey{}
		for _, b := range []int{2048, 3072} {
			k, err := rsa.GenerateKey(rand.Reader, b)
			if err != nil {
				panic(err)
			}
			keys[b] = k
		}
	})
	priv := keys[bits]
	k, err := New(priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	if k.Native() != cgoBuild {
		t.Fatalf("Native() = %v in a build with cgo %v", k.Native(), cgoBuild)
	}
	return priv, k
}

func digestOf(h crypto.Hash, msg string) []byte {
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

func maxSalt(pub *rsa.PublicKey, h crypto.Hash) int {
	return (pub.N.BitLen()-1+7)/8 - h.Size() - 2
}

func TestSignPKCS1v15(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		priv, k := testKey(t, bits)
		for _, h := range hashes {
			d := digestOf(h, "pkcs1")
			sig, err := k.Sign(nil, d, h)
			if err != nil {
				t.Fatalf("%d %v: %v", bits, h, err)
			}
			if err := rsa.VerifyPKCS1v15(&priv.PublicKey, h, d, sig); err != nil {
				t.Errorf("%d %v: signature does not verify: %v", bits, h, err)
			}
			if rsa.VerifyPKCS1v15(&priv.PublicKey, h, digestOf(h, "other"), sig) == nil {
				t.Errorf("%d %v: signature verifies over another digest", bits, h)
			}
			// PKCS#1 v1.5 is deterministic: crypto/rsa makes the same bytes.
			want, _ := rsa.SignPKCS1v15(nil, priv, h, d)
			if !bytes.Equal(sig, want) {
				t.Errorf("%d %v: signature differs from crypto/rsa's", bits, h)
			}
		}
	}
}

func TestSignPSS(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		priv, k := testKey(t, bits)
		pub := &priv.PublicKey
		for _, h := range hashes {
			d := digestOf(h, "pss")
			for _, mgf := range []crypto.Hash{0, h, crypto.SHA1, crypto.SHA512} {
				for _, salt := range []int{0, 1, 20, h.Size(), maxSalt(pub, h)} {
					o := &PSSOptions{Hash: h, SaltLength: salt, MGF1Hash: mgf}
					name := fmt.Sprintf("%d %v MGF1 %v salt %d", bits, h, mgf, salt)
					sig, err := k.Sign(rand.Reader, d, o)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if o.MGF1Hash != mgf {
						t.Fatalf("%s: Sign changed the caller's options", name)
					}
					m := mgf
					if m == 0 {
						m = h
					}
					if err := rsatest.VerifyPSS(pub, h, m, salt, d, sig); err != nil {
						t.Errorf("%s: %v", name, err)
					}
					if rsatest.VerifyPSS(pub, h, m, salt, digestOf(h, "other"), sig) == nil {
						t.Errorf("%s: verifies over another digest", name)
					}
					if m == h && salt > 0 {
						if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: salt}); err != nil {
							t.Errorf("%s: rsa.VerifyPSS: %v", name, err)
						}
					}
					if salt >= 16 {
						again, _ := k.Sign(nil, d, o)
						if bytes.Equal(sig, again) {
							t.Errorf("%s: two signatures with a random salt are equal", name)
						}
					}
				}
			}
		}
	}
}

// TestVerifyPSSAgreesWithGo keeps rsatest.VerifyPSS honest: it
// accepts what crypto/rsa signs and refuses what crypto/rsa refuses.
func TestVerifyPSSAgreesWithGo(t *testing.T) {
	priv, _ := testKey(t, 2048)
	for _, h := range hashes {
		d := digestOf(h, "go")
		sig, err := rsa.SignPSS(rand.Reader, priv, h, d, &rsa.PSSOptions{SaltLength: 20})
		if err != nil {
			t.Fatal(err)
		}
		if err := rsatest.VerifyPSS(&priv.PublicKey, h, h, 20, d, sig); err != nil {
			t.Errorf("%v: crypto/rsa's signature: %v", h, err)
		}
		other := crypto.SHA224
		if h == other {
			other = crypto.SHA256
		}
		if rsatest.VerifyPSS(&priv.PublicKey, h, h, 21, d, sig) == nil || rsatest.VerifyPSS(&priv.PublicKey, h, other, 20, d, sig) == nil {
			t.Errorf("%v: verifyPSS accepts a wrong salt length or MGF1 digest", h)
		}
		sig[10] ^= 1
		if rsatest.VerifyPSS(&priv.PublicKey, h, h, 20, d, sig) == nil {
			t.Errorf("%v: verifyPSS accepts a corrupted signature", h)
		}
	}
}

func TestSignRefusals(t *testing.T) {
	priv, k := testKey(t, 2048)
	d := digestOf(crypto.SHA256, "x")
	cases := map[string]struct {
		d    []byte
		opts crypto.SignerOpts
	}{
		"short digest":     {d[:31], crypto.SHA256},
		"long digest":      {append(d, 0), crypto.SHA256},
		"no hash":          {d, crypto.Hash(0)},
		"MD5":              {d[:16], crypto.MD5},
		"SHA3":             {d, crypto.SHA3_256},
		"negative salt":    {d, &PSSOptions{Hash: crypto.SHA256, SaltLength: -1}},
		"salt too long":    {d, &PSSOptions{Hash: crypto.SHA256, SaltLength: maxSalt(&priv.PublicKey, crypto.SHA256) + 1}},
		"MGF1 MD5":         {d, &PSSOptions{Hash: crypto.SHA256, SaltLength: 32, MGF1Hash: crypto.MD5}},
		"rsa.PSSOptions":   {d, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 32}},
		"nil *PSSOptions":  {d, (*PSSOptions)(nil)},
		"PSS short digest": {d[:20], &PSSOptions{Hash: crypto.SHA256, SaltLength: 32}},
	}
	for name, c := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			if sig, err := k.Sign(nil, c.d, c.opts); err == nil {
				t.Errorf("%s: signed (%x)", name, sig[:8])
			}
		}()
	}
}

func TestDecrypt(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		priv, k := testKey(t, bits)
		pub := &priv.PublicKey
		for _, n := range []int{0, 1, 32, pub.Size() - 11} {
			msg := make([]byte, n)
			rand.Read(msg)
			ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}} {
				pt, err := k.Decrypt(nil, ct, opts)
				if err != nil || !bytes.Equal(pt, msg) {
					t.Errorf("%d PKCS#1 v1.5, %d bytes, opts %T: %x, %v", bits, n, opts, pt, err)
				}
			}
		}
		for _, h := range hashes {
			for _, mgf := range []crypto.Hash{0, h, crypto.SHA1, crypto.SHA384} {
				for _, label := range [][]byte{nil, []byte("a label"), make([]byte, 300)} {
					for _, n := range []int{0, 32, pub.Size() - 2*h.Size() - 2} {
						name := fmt.Sprintf("%d OAEP %v MGF1 %v label %d bytes, %d bytes", bits, h, mgf, len(label), n)
						msg := make([]byte, n)
						rand.Read(msg)
						ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: h, MGFHash: mgf, Label: label})
						if err != nil {
							t.Fatalf("%s: encrypting: %v", name, err)
						}
						pt, err := k.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: h, MGFHash: mgf, Label: label})
						if err != nil || !bytes.Equal(pt, msg) {
							t.Errorf("%s: %x, %v", name, pt, err)
						}
						if len(pt) != cap(pt) {
							t.Errorf("%s: the plaintext's slice reaches past it", name)
						}
					}
				}
			}
		}
	}
}

// rawEncrypt is the RSA public operation on a block of our choosing.
func rawEncrypt(pub *rsa.PublicKey, em []byte) []byte {
	c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}

// pkcs1Block is 00 || typ || PS (psLen bytes of 0xff, or random nonzero
// bytes for type 02) || sep || data.
func pkcs1Block(size int, typ byte, psLen int, sep byte, data []byte) []byte {
	em := []byte{0, typ}
	for i := 0; i < psLen; i++ {
		b := byte(0xff)
		if typ == 2 {
			b = byte(i%254 + 1)
		}
		em = append(em, b)
	}
	em = append(em, sep)
	em = append(em, data...)
	if len(em) != size {
		panic(fmt.Sprintf("block of %d bytes for a %d-byte key", len(em), size))
	}
	return em
}

func TestDecryptRefusals(t *testing.T) {
	priv, k := testKey(t, 2048)
	pub := &priv.PublicKey
	size := pub.Size()
	msg := []byte("sixteen bytes!!!")
	oaep := &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}
	oaepCT, _ := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, oaep)
	pkcs1CT, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	flipped := bytes.Clone(oaepCT)
	flipped[size/2] ^= 1
	allFF := bytes.Repeat([]byte{0xff}, size) // >= N

	// A well-formed type-02 block decrypts: the refusals below are the
	// padding's, not the helpers'.
	good := pkcs1Block(size, 2, size-3-len(msg), 0, msg)
	if pt, err := k.Decrypt(nil, rawEncrypt(pub, good), nil); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("hand-made PKCS#1 v1.5 block: %q %v", pt, err)
	}
	cases := map[string]struct {
		ct   []byte
		opts crypto.DecrypterOpts
	}{
		"OAEP, flipped bit":            {flipped, oaep},
		"OAEP, wrong label":            {oaepCT, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("lab3l")}},
		"OAEP, no label":               {oaepCT, &rsa.OAEPOptions{Hash: crypto.SHA256}},
		"OAEP, wrong digest":           {oaepCT, &rsa.OAEPOptions{Hash: crypto.SHA1, Label: []byte("label")}},
		"OAEP, wrong MGF1 digest":      {oaepCT, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1, Label: []byte("label")}},
		"OAEP, a PKCS#1 ciphertext":    {pkcs1CT, oaep},
		"OAEP, ciphertext >= N":        {allFF, oaep},
		"OAEP, zero":                   {make([]byte, size), oaep},
		"OAEP, short":                  {oaepCT[1:], oaep},
		"OAEP, long":                   {append(bytes.Clone(oaepCT), 0), oaep},
		"PKCS#1, an OAEP ciphertext":   {oaepCT, nil},
		"PKCS#1, block type 01":        {rawEncrypt(pub, pkcs1Block(size, 1, size-3-len(msg), 0, msg)), nil},
		"PKCS#1, no zero separator":    {rawEncrypt(pub, pkcs1Block(size, 2, size-2-1, 0x11, nil)), nil},
		"PKCS#1, 7 bytes of padding":   {rawEncrypt(pub, pkcs1Block(size, 2, 7, 0, make([]byte, size-3-7))), nil},
		"PKCS#1, leading byte nonzero": {rawEncrypt(pub, append([]byte{1}, good[1:]...)), nil},
		"PKCS#1, ciphertext >= N":      {allFF, nil},
		"PKCS#1, zero":                 {make([]byte, size), nil},
		"PKCS#1, short":                {pkcs1CT[1:], nil},
		"PKCS#1, empty":                {nil, nil},
	}
	for name, c := range cases {
		pt, err := k.Decrypt(nil, c.ct, c.opts)
		if err == nil {
			t.Errorf("%s: decrypted to %x", name, pt)
			continue
		}
		// One error for every failure: which check failed is an oracle.
		if err != rsa.ErrDecryption {
			t.Errorf("%s: %v, want rsa.ErrDecryption itself", name, err)
		}
	}

	optCases := map[string]crypto.DecrypterOpts{
		"session key length": &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16},
		"OAEP MD5":           &rsa.OAEPOptions{Hash: crypto.MD5},
		"OAEP no digest":     &rsa.OAEPOptions{},
		"OAEP MGF1 MD5":      &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.MD5},
		"nil *OAEPOptions":   (*rsa.OAEPOptions)(nil),
		"a crypto.Hash":      crypto.SHA256,
	}
	for name, opts := range optCases {
		if _, err := k.Decrypt(nil, oaepCT, opts); err == nil || errors.Is(err, rsa.ErrDecryption) {
			t.Errorf("%s: %v, want an error about the options", name, err)
		}
	}
}

// TestConcurrentUse runs signatures and decryptions on one Key from many
// goroutines, and closes it halfway: every operation, before and after,
// gives a correct result (run it with -race).
func TestConcurrentUse(t *testing.T) {
	priv, k := testKey(t, 2048)
	pub := &priv.PublicKey
	msg := []byte("concurrent")
	ct, _ := rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, pub, msg, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	const goroutines, rounds = 16, 12
	var started sync.WaitGroup
	started.Add(goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if i == 1 {
					started.Done()
				}
				d := digestOf(crypto.SHA256, fmt.Sprint(g, i))
				var err error
				switch (g + i) % 3 {
				case 0:
					var sig []byte
					if sig, err = k.Sign(nil, d, crypto.SHA256); err == nil {
						err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d, sig)
					}
				case 1:
					var sig []byte
					if sig, err = k.Sign(nil, d, &PSSOptions{Hash: crypto.SHA256, SaltLength: 0, MGF1Hash: crypto.SHA1}); err == nil {
						err = rsatest.VerifyPSS(pub, crypto.SHA256, crypto.SHA1, 0, d, sig)
					}
				case 2:
					var pt []byte
					if pt, err = k.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err == nil && !bytes.Equal(pt, msg) {
						err = fmt.Errorf("decrypted %q", pt)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d round %d: %w", g, i, err)
					return
				}
			}
		}(g)
	}
	started.Wait()
	k.Close()
	if k.Native() {
		t.Error("Native after Close")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSignPKCS1v15(b *testing.B) {
	_, k := testKey(b, 2048)
	d := digestOf(crypto.SHA256, "bench")
	for b.Loop() {
		if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCryptoRSASignPKCS1v15 is crypto/rsa on the same key: what the
// simulator paid before this package.
func BenchmarkCryptoRSASignPKCS1v15(b *testing.B) {
	priv, _ := testKey(b, 2048)
	d := digestOf(crypto.SHA256, "bench")
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptOAEP(b *testing.B) {
	priv, k := testKey(b, 2048)
	ct, _ := rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, &priv.PublicKey, make([]byte, 32), nil)
	opts := &rsa.OAEPOptions{Hash: crypto.SHA256}
	for b.Loop() {
		if _, err := k.Decrypt(nil, ct, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCryptoRSADecryptOAEP(b *testing.B) {
	priv, _ := testKey(b, 2048)
	ct, _ := rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, &priv.PublicKey, make([]byte, 32), nil)
	opts := &rsa.OAEPOptions{Hash: crypto.SHA256}
	for b.Loop() {
		if _, err := priv.Decrypt(nil, ct, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignParallel signs from four goroutines per GOMAXPROCS. Under
// -cpu 1 (hsmhost runs its plugins with GOMAXPROCS=1) libcrypto still signs
// on every core, since a goroutine in a cgo call gives up its P, where
// crypto/rsa (BenchmarkCryptoRSASignParallel) has one core.
func BenchmarkSignParallel(b *testing.B) {
	_, k := testKey(b, 2048)
	d := digestOf(crypto.SHA256, "bench")
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCryptoRSASignParallel(b *testing.B) {
	priv, _ := testKey(b, 2048)
	d := digestOf(crypto.SHA256, "bench")
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
