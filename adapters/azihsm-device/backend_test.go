package azihsmdevice_test

// These tests drive the backend through the real cgo binding (package
// native) against the emulated device library, the same path the plugin
// takes on a machine with the device. Every result is checked with Go's own
// crypto, never with the backend.

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	azihsmdevice "github.com/hsmbridge/hsmbridge/adapters/azihsm-device"
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/native"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
)

const (
	testCredID  = "70fcf730b8764238b8358010ce8a3f76"
	testCredPIN = "db3dc77fc22e430080d41b31b6f04800"
)

func emulatorLib(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "build", "emulator", "libazihsm_api_native.so")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("emulated device library missing (%v): run make build", err)
		}
		t.Skipf("emulated device library missing (%v): run make build", err)
	}
	return p
}

// fixture is a backend on an emulated device with its own state directory.
type fixture struct {
	b     *azihsmdevice.Backend
	lib   devapi.Library
	state string
}

func newFixture(t *testing.T, state string) *fixture {
	t.Helper()
	libPath := emulatorLib(t)
	if state == "" {
		state = t.TempDir()
	}
	t.Setenv("AZIHSM_EMU_STATE_DIR", state)
	f := &fixture{state: state}
	f.b = azihsmdevice.New(func(path string) (devapi.Library, error) {
		lib, err := native.Open(path)
		if err != nil {
			return nil, err
		}
		f.lib = lib
		return lib, nil
	})
	err := f.b.Configure(context.Background(), map[string]string{
		azihsmdevice.SettingLibrary: libPath, azihsmdevice.SettingCredID: testCredID, azihsmdevice.SettingCredPIN: testCredPIN})
	if err != nil {
		t.Fatal(err)
	}
	if f.lib == nil {
		t.Fatal("Configure did not open the device")
	}
	t.Cleanup(func() { f.b.Close() })
	return f
}

var ctx = context.Background()

func signUse() []core.KeyUsage  { return []core.KeyUsage{core.UsageSign, core.UsageVerify} }
func agreeUse() []core.KeyUsage { return []core.KeyUsage{core.UsageDeriveKey} }

func (f *fixture) genEC(t *testing.T, c core.Curve, use []core.KeyUsage, session string) (core.MaskedKey, core.KeyInfo) {
	t.Helper()
	blob, info, err := f.b.GenerateMasked(ctx, core.KeySpec{Type: core.KeyTypeEC, Curve: c, Usages: use}, session)
	if err != nil {
		t.Fatalf("GenerateMasked %s: %v", c, err)
	}
	return blob, info
}

func (f *fixture) importRSA(t *testing.T, bits int, use []core.KeyUsage, session string) (*rsa.PrivateKey, core.KeyInfo) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	_, info, err := f.b.ImportMasked(ctx, f.wrap(t, priv), core.KeySpec{Type: core.KeyTypeRSA, Bits: bits, Usages: use}, session)
	if err != nil {
		t.Fatalf("ImportMasked RSA-%d: %v", bits, err)
	}
	return priv, info
}

func (f *fixture) wrap(t *testing.T, priv crypto.PrivateKey) []byte {
	t.Helper()
	spki, err := f.b.ImportWrappingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	w, err := aeskw.RSAAESWrap(spki, pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func ecdsaPub(t *testing.T, info core.KeyInfo) *ecdsa.PublicKey {
	t.Helper()
	p, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*ecdsa.PublicKey)
}

func ecdsaScheme(h core.Hash) core.SignatureScheme {
	return core.SignatureScheme{Padding: core.PaddingECDSA, Hash: h}
}

func (f *fixture) signVerifyEC(t *testing.T, info core.KeyInfo) {
	t.Helper()
	d := sha512.Sum384([]byte("data.bin"))
	sig, err := f.b.Sign(ctx, info.ID, d[:], ecdsaScheme(core.SHA384))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ecdsa.VerifyASN1(ecdsaPub(t, info), d[:], sig) {
		t.Fatal("the device's ECDSA signature does not verify with its public key")
	}
	d[0] ^= 1
	if ecdsa.VerifyASN1(ecdsaPub(t, info), d[:], sig) {
		t.Fatal("the signature verifies over another digest")
	}
}

func TestECKeysSignAndReloadAfterRestart(t *testing.T) {
	f := newFixture(t, "")
	for _, c := range []core.Curve{core.CurveP256, core.CurveP384, core.CurveP521} {
		blob, info := f.genEC(t, c, signUse(), "")
		if info.Curve != c || info.Type != core.KeyTypeEC || !info.Allows(core.UsageSign) {
			t.Fatalf("generated %+v", info)
		}
		f.signVerifyEC(t, info)
		// A persistent blob opens in a new backend process on the same device.
		g := newFixture(t, f.state)
		again, err := g.b.Unmask(ctx, blob)
		if err != nil {
			t.Fatalf("Unmask after a restart: %v", err)
		}
		if string(again.PublicKeyDER) != string(info.PublicKeyDER) {
			t.Fatal("the reloaded key has another public key")
		}
		g.signVerifyEC(t, again)
	}
}

// (A blob of another device is refused: e2e TestDeviceBlobFromAnotherDevice,
// which needs two processes since the emulation reads its state directory
// once per process.)
func TestDamagedBlobIsRefused(t *testing.T) {
	f := newFixture(t, "")
	blob, _ := f.genEC(t, core.CurveP256, signUse(), "")
	damaged := append([]byte(nil), blob...)
	damaged[len(damaged)/2] ^= 1
	if _, err := f.b.Unmask(ctx, damaged); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("a damaged blob: %v, want invalid_input", err)
	}
}

func TestRSAImportSignaturesAndDecryption(t *testing.T) {
	f := newFixture(t, "")
	priv, info := f.importRSA(t, 2048, signUse(), "")
	if info.Bits != 2048 || info.Type != core.KeyTypeRSA {
		t.Fatalf("imported %+v", info)
	}
	pub, _ := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if !priv.PublicKey.Equal(pub) {
		t.Fatal("the device's public key is not the imported one")
	}
	// PSS on a digest.
	d := sha256.Sum256([]byte("tbs"))
	pss := core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32}
	sig, err := f.b.Sign(ctx, info.ID, d[:], pss)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("PSS: %v", err)
	}
	// PKCS#1 v1.5: the device hashes the message itself; a bare digest is refused.
	pk := core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}
	if _, err := f.b.Sign(ctx, info.ID, d[:], pk); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("PKCS#1 v1.5 on a digest: %v, want unsupported", err)
	}
	sig, err = f.b.SignMessage(ctx, info.ID, []byte("tbs"), pk)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("PKCS#1 v1.5: %v", err)
	}
	// A signing key does not decrypt, by the device's rule.
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("secret"), nil)
	oaep := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}
	if _, err := f.b.Decrypt(ctx, info.ID, ct, oaep); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("decrypt with a digitalSignature key: %v, want operation_not_allowed", err)
	}
	// A keyEncipherment key decrypts and does not sign.
	encPriv, enc := f.importRSA(t, 3072, []core.KeyUsage{core.UsageEncrypt, core.UsageDecrypt}, "")
	ct, _ = rsa.EncryptOAEP(sha256.New(), rand.Reader, &encPriv.PublicKey, []byte("secret"), nil)
	plain, err := f.b.Decrypt(ctx, enc.ID, ct, oaep)
	if err != nil || string(plain) != "secret" {
		t.Fatalf("OAEP decrypt: %q, %v", plain, err)
	}
	ct, _ = rsa.EncryptPKCS1v15(rand.Reader, &encPriv.PublicKey, []byte("v1.5"))
	plain, err = f.b.Decrypt(ctx, enc.ID, ct, core.EncryptionScheme{Padding: core.EncryptionPKCS1v15})
	if err != nil || string(plain) != "v1.5" {
		t.Fatalf("PKCS#1 decrypt: %q, %v", plain, err)
	}
	if _, err := f.b.Sign(ctx, enc.ID, d[:], pss); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("sign with a keyEncipherment key: %v, want operation_not_allowed", err)
	}
	// An import that is not what the request says is refused by the device.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, _, err := f.b.ImportMasked(ctx, f.wrap(t, other), core.KeySpec{Type: core.KeyTypeRSA, Bits: 3072, Usages: signUse()}, ""); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("RSA-2048 imported as 3072 bits: %v, want invalid_input", err)
	}
}

// kbkdf is SP 800-108 counter mode with HMAC, as OpenSSL's KBKDF computes it.
func kbkdf(h func() hash.Hash, key, label, context []byte, n int) []byte {
	var out []byte
	L := make([]byte, 4)
	binary.BigEndian.PutUint32(L, uint32(n*8))
	for i := uint32(1); len(out) < n; i++ {
		m := hmac.New(h, key)
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], i)
		m.Write(c[:])
		m.Write(label)
		m.Write([]byte{0})
		m.Write(context)
		m.Write(L)
		out = m.Sum(out)
	}
	return out[:n]
}

func TestECDHThenKDFThenHMAC(t *testing.T) {
	f := newFixture(t, "")
	_, kx := f.genEC(t, core.CurveP384, agreeUse(), "")
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
	secret, err := f.b.Agree(ctx, kx.ID, peerDER)
	if err != nil {
		t.Fatalf("Agree: %v", err)
	}
	devPub, _ := ecdsaPub(t, kx).ECDH()
	z, _ := peer.ECDH(devPub) // the same secret, from the peer's side
	salt, info := []byte{0, 1, 2, 3}, []byte{0xf0, 0xf1}
	data := []byte("message to MAC")
	for _, c := range []struct {
		kdf  string
		want []byte
	}{
		{"hkdf", must(hkdf.Key(sha512.New384, z, salt, string(info), 48))},
		{"kbkdf", kbkdf(sha512.New384, z, salt, info, 48)},
	} {
		blob, err := f.b.Derive(ctx, core.DeriveParams{Input: secret, KDF: c.kdf, Hash: core.SHA384, Salt: salt, Info: info, OutputType: "hmac", OutputBits: 384})
		if err != nil {
			t.Fatalf("Derive %s: %v", c.kdf, err)
		}
		key, err := f.b.Unmask(ctx, blob)
		if err != nil {
			t.Fatal(err)
		}
		mac, err := f.b.MAC(ctx, key.ID, core.SHA384, data)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha512.New384, c.want)
		m.Write(data)
		if !hmac.Equal(mac, m.Sum(nil)) {
			t.Fatalf("%s: the device's HMAC differs from the one computed from the peer's side", c.kdf)
		}
		if _, err := f.b.MAC(ctx, key.ID, core.SHA256, data); err == nil {
			t.Fatalf("%s: an HMAC-SHA384 key MACed with SHA256", c.kdf)
		}
	}
	// HMAC key size must match its hash; the device says so.
	if _, err := f.b.Derive(ctx, core.DeriveParams{Input: secret, KDF: "hkdf", Hash: core.SHA384, OutputType: "hmac", OutputBits: 256}); err == nil {
		t.Fatal("an HMAC-SHA384 key of 256 bits was derived")
	}
	aes, err := f.b.Derive(ctx, core.DeriveParams{Input: secret, KDF: "hkdf", Hash: core.SHA256, OutputType: "aes", OutputBits: 256})
	if err != nil || len(aes) == 0 {
		t.Fatalf("AES derive: %v", err)
	}
	// A signing key cannot agree.
	_, sk := f.genEC(t, core.CurveP384, signUse(), "")
	if _, err := f.b.Agree(ctx, sk.ID, peerDER); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("ECDH with a digitalSignature key: %v, want operation_not_allowed", err)
	}
	if _, err := f.b.Sign(ctx, kx.ID, make([]byte, 48), ecdsaScheme(core.SHA384)); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("sign with a keyAgreement key: %v, want operation_not_allowed", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestSessionKeysEndWithTheirSession(t *testing.T) {
	f := newFixture(t, "")
	blob, info := f.genEC(t, core.CurveP256, signUse(), "app-1")
	f.signVerifyEC(t, info)
	if _, err := f.b.Unmask(ctx, blob); err != nil {
		t.Fatalf("a session key does not open in its own session: %v", err)
	}
	if err := f.b.EndSession(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Sign(ctx, info.ID, make([]byte, 32), ecdsaScheme(core.SHA256)); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("a session key signed after its session ended: %v", err)
	}
	if _, err := f.b.Unmask(ctx, blob); err == nil {
		t.Fatal("a session key's blob opened after its session ended")
	}
	// A session import too.
	_, rinfo := f.importRSA(t, 2048, signUse(), "app-2")
	if _, err := f.b.Sign(ctx, rinfo.ID, make([]byte, 32), core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32}); err != nil {
		t.Fatal(err)
	}
	f.b.EndSession(ctx, "app-2")
	if _, err := f.b.Sign(ctx, rinfo.ID, make([]byte, 32), core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32}); err == nil {
		t.Fatal("an imported session key signed after its session ended")
	}
}

func injector(t *testing.T, f *fixture) devapi.FaultInjector {
	fi, ok := devapi.FaultInjectorOf(f.lib)
	if !ok {
		t.Fatal("the emulated device has no fault injection")
	}
	return fi
}

func TestFaultsAreSurvivedOnceAndReportedWhenTheyPersist(t *testing.T) {
	for _, fault := range []string{"io_aborted", "device_not_ready", "session_needs_renegotiation", "live_migration"} {
		t.Run(fault, func(t *testing.T) {
			f := newFixture(t, "")
			_, ec := f.genEC(t, core.CurveP256, signUse(), "")
			_, kx := f.genEC(t, core.CurveP256, agreeUse(), "")
			fi := injector(t, f)
			if err := fi.InjectFault(fault, 1); err != nil {
				t.Fatal(err)
			}
			f.signVerifyEC(t, ec) // recovers: new session, keys reloaded, retried
			f.signVerifyEC(t, ec)
			peer, _ := ecdh.P256().GenerateKey(rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
			if _, err := f.b.Agree(ctx, kx.ID, der); err != nil {
				t.Fatalf("the other key of the session after recovery: %v", err)
			}
			if err := fi.InjectFault(fault, -1); err != nil {
				t.Fatal(err)
			}
			_, err := f.b.Sign(ctx, ec.ID, make([]byte, 32), ecdsaScheme(core.SHA256))
			if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "persist") {
				t.Fatalf("with the fault persisting: %v; want unavailable, saying it persisted", err)
			}
			fi.InjectFault(fault, 0)
			f.signVerifyEC(t, ec) // healed
		})
	}
}

func TestNoHandleLeftBehind(t *testing.T) {
	f := newFixture(t, "")
	// A second load of the library keeps it loaded after the backend's
	// Close, so its handles can be counted then.
	own, err := native.Open(emulatorLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	counter, ok := devapi.CounterOf(own)
	if !ok {
		t.Fatal("the emulated device cannot count handles")
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
	for i := 0; i < 20; i++ {
		app := "app"
		blob, ec := f.genEC(t, core.CurveP256, signUse(), "")
		f.b.Unmask(ctx, blob)
		f.signVerifyEC(t, ec)
		_, kx := f.genEC(t, core.CurveP256, agreeUse(), app)
		s, err := f.b.Agree(ctx, kx.ID, der)
		if err != nil {
			t.Fatal(err)
		}
		h, err := f.b.Derive(ctx, core.DeriveParams{Input: s, KDF: "hkdf", Hash: core.SHA256, OutputType: "hmac", OutputBits: 256})
		if err != nil {
			t.Fatal(err)
		}
		hk, err := f.b.Unmask(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.b.MAC(ctx, hk.ID, core.SHA256, []byte("x")); err != nil {
			t.Fatal(err)
		}
		_, r := f.importRSA(t, 2048, signUse(), "")
		if _, err := f.b.SignMessage(ctx, r.ID, []byte("m"), core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}); err != nil {
			t.Fatal(err)
		}
		f.b.EndSession(ctx, app)
	}
	checks, err := f.b.Diagnose(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range checks {
		if c.Name == "device handles" {
			found = true
			if !c.OK {
				t.Fatalf("handles left behind: %s", c.Detail)
			}
			t.Log(c.Detail)
		}
	}
	if !found {
		t.Fatal("doctor did not count the device's handles")
	}
	f.b.Close()
	n, err := counter.OpenHandles()
	if err != nil {
		t.Fatal(err)
	}
	if n.Keys != 0 || n.Sessions != 0 || n.Contexts != 0 || n.Partitions != 0 {
		t.Fatalf("after Close the device still has %+v open", n)
	}
}

func TestMissingLibraryIsReportedWithWhereItLooked(t *testing.T) {
	b := azihsmdevice.New(func(path string) (devapi.Library, error) {
		lib, err := native.Open(path)
		if err != nil {
			return nil, err
		}
		return lib, nil
	})
	if err := b.Configure(ctx, map[string]string{azihsmdevice.SettingCredID: testCredID, azihsmdevice.SettingCredPIN: testCredPIN,
		azihsmdevice.SettingLibrary: "/nonexistent/libazihsm_api_native.so"}); err != nil {
		t.Fatalf("Configure must not fail for a missing library (the plugin starts and says so): %v", err)
	}
	_, _, err := b.GenerateMasked(ctx, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: signUse()}, "")
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent/libazihsm_api_native.so") {
		t.Fatalf("missing library: %v", err)
	}
	checks, _ := b.Diagnose(ctx, "")
	if len(checks) == 0 || checks[0].OK || !strings.Contains(checks[0].Detail, "/nonexistent") {
		t.Fatalf("doctor: %+v", checks)
	}
}

func TestLeastRecentlyUsedKeysAreClosedPastTheLimit(t *testing.T) {
	libPath := emulatorLib(t)
	t.Setenv("AZIHSM_EMU_STATE_DIR", t.TempDir())
	b := azihsmdevice.New(func(path string) (devapi.Library, error) {
		lib, err := native.Open(path)
		if err != nil {
			return nil, err
		}
		return lib, nil
	})
	if err := b.Configure(ctx, map[string]string{azihsmdevice.SettingLibrary: libPath, azihsmdevice.SettingCredID: testCredID,
		azihsmdevice.SettingCredPIN: testCredPIN, azihsmdevice.SettingMaxOpenKeys: "8"}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f := &fixture{b: b}
	blob0, first := f.genEC(t, core.CurveP256, signUse(), "")
	_, kept := f.genEC(t, core.CurveP256, signUse(), "")
	for i := 0; i < 8; i++ {
		f.genEC(t, core.CurveP256, signUse(), "")
		f.signVerifyEC(t, kept) // used: stays open
	}
	if _, err := b.Sign(ctx, first.ID, make([]byte, 32), ecdsaScheme(core.SHA256)); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the least recently used key is still open past the limit: %v", err)
	}
	f.signVerifyEC(t, kept)
	again, err := b.Unmask(ctx, blob0) // reopened from its blob, as the provider does on not_found
	if err != nil {
		t.Fatal(err)
	}
	f.signVerifyEC(t, again)
	checks, _ := b.Diagnose(ctx, "")
	for _, c := range checks {
		if c.Name == "device handles" && !c.OK {
			t.Fatalf("eviction left handles open: %s", c.Detail)
		}
	}
}
