package simulator

// RSA private-key operations through libcrypto (internal/ossl): the
// results are checked with Go's crypto alone, failures must read the same
// whatever went wrong, and a key version that leaves the cache gives its
// libcrypto key back while the operations holding it still finish.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/simulator/internal/ossl"
)

// nativeBuild says whether this build does RSA in libcrypto (cgo).
func nativeBuild(t testing.TB) bool {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := ossl.New(k)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	return probe.Native()
}

// loadedVersion is the cached version behind id, with its key parsed and
// loaded (as the first operation leaves it).
func loadedVersion(t *testing.T, b *Backend, id core.KeyID) *keyVersion {
	t.Helper()
	v, err := b.resolve(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.rsaKey(); err != nil {
		t.Fatal(err)
	}
	if v.rsa.Native() != nativeBuild(t) {
		t.Fatalf("key %s: Native() = %v in a build where libcrypto is %v", id, v.rsa.Native(), nativeBuild(t))
	}
	return v
}

// wrongTypeBlock is a PKCS#1 v1.5 block of the signature type (00 01 FF…FF
// 00 data) under the raw public operation: it never passes the decryption
// padding check (see e2e's wrongTypePKCS1Block).
func wrongTypeBlock(p *rsa.PublicKey) []byte {
	em := make([]byte, p.Size())
	em[1] = 0x01
	for i := 2; i < len(em)-17; i++ {
		em[i] = 0xff
	}
	copy(em[len(em)-16:], "sixteen bytes!!!")
	c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(p.E)), p.N)
	return c.FillBytes(make([]byte, p.Size()))
}

func TestDecryptEveryScheme(t *testing.T) {
	b, _ := newBackend(t)
	k := create(t, b, "ns", "dec", rsaSpec(3072, core.UsageDecrypt))
	p := pub(t, k).(*rsa.PublicKey)
	msg := []byte("a 32-byte session key, or so...!")
	for _, name := range b.EncryptionSchemes() {
		s, err := core.ParseEncryptionSchemeName(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, mgf := range []core.Hash{core.HashUnspecified, core.SHA1, core.SHA512} {
			for _, label := range [][]byte{nil, []byte("hsmbridge")} {
				if s.Padding == core.EncryptionPKCS1v15 && (mgf != core.HashUnspecified || label != nil) {
					continue
				}
				s.MGF1Hash, s.Label = mgf, label
				var ct []byte
				if s.Padding == core.EncryptionPKCS1v15 {
					ct, err = rsa.EncryptPKCS1v15(rand.Reader, p, msg)
				} else {
					ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, p, msg, &rsa.OAEPOptions{Hash: s.OAEPHash.Crypto(), MGFHash: mgf.Crypto(), Label: label})
				}
				if err != nil {
					t.Fatal(err)
				}
				pt, err := b.Decrypt(ctx, k.ID, ct, s)
				if err != nil || !bytes.Equal(pt, msg) {
					t.Errorf("%s MGF1 %s label %q: %q %v", name, mgf, label, pt, err)
				}
			}
		}
	}
}

// TestDecryptFailuresReadTheSame: bad padding under PKCS#1 v1.5 is an error
// (never OpenSSL 3.2's implicit-rejection plaintext), and every failure
// that depends on the ciphertext gets one and the same message.
func TestDecryptFailuresReadTheSame(t *testing.T) {
	b, _ := newBackend(t)
	k := create(t, b, "ns", "dec", rsaSpec(2048, core.UsageDecrypt))
	p := pub(t, k).(*rsa.PublicKey)
	msg := []byte("sixteen bytes!!!")
	oaep := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256, Label: []byte{1, 2}}
	pkcs1 := core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}
	oaepCT, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, p, msg, []byte{1, 2})
	pkcs1CT, _ := rsa.EncryptPKCS1v15(rand.Reader, p, msg)
	tampered := bytes.Clone(oaepCT)
	tampered[len(tampered)/2] ^= 1
	wrongLabel, wrongMGF, wrongHash := oaep, oaep, oaep
	wrongLabel.Label = []byte{1, 3}
	wrongMGF.MGF1Hash = core.SHA1
	wrongHash.OAEPHash = core.SHA384
	cases := map[string]struct {
		ct []byte
		s  core.EncryptionScheme
	}{
		"tampered OAEP":                {tampered, oaep},
		"wrong OAEP label":             {oaepCT, wrongLabel},
		"wrong MGF1 digest":            {oaepCT, wrongMGF},
		"wrong OAEP digest":            {oaepCT, wrongHash},
		"PKCS#1 ciphertext as OAEP":    {pkcs1CT, oaep},
		"PKCS#1 block of type 01":      {wrongTypeBlock(p), pkcs1},
		"OAEP ciphertext as PKCS#1":    {oaepCT, pkcs1},
		"ciphertext >= N, PKCS#1":      {bytes.Repeat([]byte{0xff}, 256), pkcs1},
		"ciphertext >= N, OAEP":        {bytes.Repeat([]byte{0xff}, 256), oaep},
		"zero ciphertext under PKCS#1": {make([]byte, 256), pkcs1},
	}
	want := fmt.Sprintf("decryption with key %s failed", k.ID)
	for what, c := range cases {
		pt, err := b.Decrypt(ctx, k.ID, c.ct, c.s)
		if err == nil {
			t.Errorf("%s: decrypted to %x", what, pt)
			continue
		}
		if !errors.Is(err, core.ErrInvalidInput) || err.Error() != want {
			t.Errorf("%s: %v, want invalid input %q", what, err, want)
		}
	}
	// The length is public, and said.
	if _, err := b.Decrypt(ctx, k.ID, pkcs1CT[1:], pkcs1); !errors.Is(err, core.ErrInvalidInput) || err.Error() == want {
		t.Errorf("short ciphertext: %v", err)
	}
}

func TestRSAUnwrap(t *testing.T) {
	b, _ := newBackend(t)
	k := create(t, b, "ns", "kek", rsaSpec(2048, core.UsageWrapKey, core.UsageUnwrapKey))
	p := pub(t, k).(*rsa.PublicKey)
	secret := []byte("0123456789abcdef0123456789abcdef")
	encrypt := map[core.WrapAlgorithm]func() ([]byte, error){
		core.WrapRSA1_5:     func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, p, secret) },
		core.WrapRSAOAEP:    func() ([]byte, error) { return rsa.EncryptOAEP(sha1.New(), rand.Reader, p, secret, nil) },
		core.WrapRSAOAEP256: func() ([]byte, error) { return rsa.EncryptOAEP(sha256.New(), rand.Reader, p, secret, nil) },
	}
	for alg, enc := range encrypt {
		wrapped, err := enc()
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.UnwrapKey(ctx, k.ID, wrapped, alg)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: %q %v", alg, got, err)
		}
		// And the simulator's own wrapping comes back too.
		wrapped, err = b.WrapKey(ctx, k.ID, secret, alg)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := b.UnwrapKey(ctx, k.ID, wrapped, alg); err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s round trip: %q %v", alg, got, err)
		}
		bad := wrongTypeBlock(p)
		if alg != core.WrapRSA1_5 {
			bad = bytes.Clone(wrapped)
			bad[7] ^= 0x80
		}
		if _, err := b.UnwrapKey(ctx, k.ID, bad, alg); !errors.Is(err, core.ErrInvalidInput) {
			t.Errorf("%s, bad padding: %v", alg, err)
		}
	}
}

// TestLeavingTheCacheReleasesTheLibcryptoKey covers every way a version
// leaves the cache: deleted here, deleted by another process, the state
// directory moved, a session ended. A holder of the old version still
// signs, on crypto/rsa.
func TestLeavingTheCacheReleasesTheLibcryptoKey(t *testing.T) {
	pkcs1 := core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}
	d := digest(crypto.SHA256, "released")
	stillSigns := func(t *testing.T, v *keyVersion, info core.KeyInfo) {
		t.Helper()
		if v.rsa.Native() {
			t.Fatal("the libcrypto key was not released")
		}
		sig, err := v.rsa.Sign(nil, d, crypto.SHA256)
		if err != nil || verify(t, info, pkcs1, d, sig) != nil {
			t.Fatalf("a released version does not sign: %v", err)
		}
	}

	t.Run("deleted", func(t *testing.T) {
		b, _ := newBackend(t)
		info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign))
		v := loadedVersion(t, b, info.ID)
		if _, err := b.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil {
			t.Fatal(err)
		}
		stillSigns(t, v, info)
	})
	t.Run("deleted by another process", func(t *testing.T) {
		b, dir := newBackend(t)
		info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign))
		v := loadedVersion(t, b, core.KeyID{Namespace: "ns", Name: "k"})
		other, _ := New(dir)
		if _, err := other.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sign(ctx, core.KeyID{Namespace: "ns", Name: "k"}, d, pkcs1); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("deleted elsewhere, still signs: %v", err)
		}
		stillSigns(t, v, info)
	})
	t.Run("deleted and made again by another process", func(t *testing.T) {
		b, dir := newBackend(t)
		info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign))
		v := loadedVersion(t, b, core.KeyID{Namespace: "ns", Name: "k"})
		other, _ := New(dir)
		other.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "k"})
		again := create(t, other, "ns", "k", rsaSpec(2048, core.UsageSign))
		b.mu.Lock()
		b.keys[keyName{"ns", "k"}].stale = true // as a later directory mtime would
		b.mu.Unlock()
		if got, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil || got.ID != again.ID {
			t.Fatalf("latest %v %v, want %v", got.ID, err, again.ID)
		}
		stillSigns(t, v, info)
	})
	t.Run("state directory moved", func(t *testing.T) {
		b, _ := newBackend(t)
		info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign))
		v := loadedVersion(t, b, info.ID)
		if err := b.Configure(ctx, map[string]string{SettingStateDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		stillSigns(t, v, info)
	})
	t.Run("session ended", func(t *testing.T) {
		b, _ := newBackend(t)
		_, info, err := b.GenerateMasked(ctx, rsaSpec(2048, core.UsageSign), "s1")
		if err != nil {
			t.Fatal(err)
		}
		v := loadedVersion(t, b, info.ID)
		if err := b.EndSession(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		stillSigns(t, v, info)
	})
	t.Run("kept while current", func(t *testing.T) {
		b, dir := newBackend(t)
		info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign))
		v := loadedVersion(t, b, info.ID)
		create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign)) // another version, here
		other, _ := New(dir)
		create(t, other, "ns", "k", rsaSpec(2048, core.UsageSign)) // and from elsewhere
		b.mu.Lock()
		b.keys[keyName{"ns", "k"}].stale = true
		b.mu.Unlock()
		if _, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil {
			t.Fatal(err)
		}
		if v.rsa.Native() != nativeBuild(t) {
			t.Fatal("a version still on disk lost its libcrypto key")
		}
		if got, _ := b.resolve(info.ID); got != v {
			t.Fatal("the reload parsed a cached version again")
		}
	})
}

// TestConcurrentRSAOnOneKey: many goroutines sign (PKCS#1 v1.5, PSS with
// and without salt, another MGF1 digest) and decrypt with one key while
// the key is deleted under them; every answer is a correct result or "not
// found", never anything else (run it with -race).
func TestConcurrentRSAOnOneKey(t *testing.T) {
	b, _ := newBackend(t)
	info := create(t, b, "ns", "k", rsaSpec(2048, core.UsageSign, core.UsageDecrypt))
	p := pub(t, info).(*rsa.PublicKey)
	msg := []byte("concurrent")
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, p, msg, nil)
	schemes := []core.SignatureScheme{
		{Padding: core.PaddingPKCS1v15, Hash: core.SHA256},
		{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32},
		{Padding: core.PaddingPSS, Hash: core.SHA384, SaltLength: 0, MGF1Hash: core.SHA1},
	}
	const goroutines, rounds = 16, 10
	var wg, halfway sync.WaitGroup
	halfway.Add(goroutines)
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if i == rounds/2 {
					halfway.Done()
				}
				var err error
				if op := (g + i) % (len(schemes) + 1); op < len(schemes) {
					s := schemes[op]
					d := digest(s.Hash.Crypto(), fmt.Sprint(g, i))
					var sig []byte
					if sig, err = b.Sign(ctx, info.ID, d, s); err == nil {
						err = verify(t, info, s, d, sig)
					}
				} else {
					var pt []byte
					s := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}
					if pt, err = b.Decrypt(ctx, info.ID, ct, s); err == nil && !bytes.Equal(pt, msg) {
						err = fmt.Errorf("decrypted %q", pt)
					}
				}
				if err != nil && !errors.Is(err, core.ErrNotFound) {
					errs <- fmt.Errorf("goroutine %d round %d: %w", g, i, err)
					return
				}
			}
		}(g)
	}
	halfway.Wait()
	if _, err := b.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil {
		t.Error(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkDecryptRSA2048(b *testing.B) {
	be, _ := newBackend(b)
	info := create(b, be, "bench", "k", rsaSpec(2048, core.UsageDecrypt))
	id := core.KeyID{Namespace: "bench", Name: "k"}
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub(b, info).(*rsa.PublicKey), make([]byte, 32), nil)
	s := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}
	time.Sleep(racyWindow) // let the cache settle as it does in a long-running host
	if _, err := be.Decrypt(ctx, id, ct, s); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.Decrypt(ctx, id, ct, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignRSA2048PSS(b *testing.B) {
	benchSign(b, rsaSpec(2048, core.UsageSign), core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32})
}
