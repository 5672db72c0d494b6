//go:build cgo

package native_test

// These tests drive the binding against the emulated device
// (testdoubles/azihsm-emulator, built by `make emulator` into
// build/emulator/libazihsm_api_native.so) and check every signature with
// Go's crypto, so neither the binding nor the emulator vouches for itself.
// Without the library they skip, unless HSMBRIDGE_REQUIRE_E2E=1.
//
// The emulator reads AZIHSM_EMU_STATE_DIR once, when a process first
// touches its state, so TestMain points it at one fresh directory for the
// whole run; every test uses the same credentials, as the first
// azihsm_part_init on a directory records them.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/native"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
)

var emulatorPath, _ = filepath.Abs("../../../build/emulator/libazihsm_api_native.so")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azihsm-native-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("AZIHSM_EMU_STATE_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var testCreds = devapi.Credentials{
	ID:  [16]byte{'h', 's', 'm', 'b', 'r', 'i', 'd', 'g', 'e', '-', 'n', 'a', 't', 'i', 'v', 'e'},
	PIN: [16]byte{'c', 'o', 'r', 'r', 'e', 'c', 't', ' ', 'h', 'o', 'r', 's', 'e', '!', '!', '!'},
}

// openEmulator loads the emulated device library, or skips.
func openEmulator(t *testing.T) *native.Library {
	t.Helper()
	if _, err := os.Stat(emulatorPath); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") == "1" {
			t.Fatalf("the emulated device library is required (HSMBRIDGE_REQUIRE_E2E=1): %v", err)
		}
		t.Skipf("the emulated device library %s is absent (make emulator builds it)", emulatorPath)
	}
	lib, err := native.Open(emulatorPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	return lib
}

// device is an opened, initialised partition with one session.
type device struct {
	t    *testing.T
	lib  *native.Library
	part devapi.Handle
	sess devapi.Handle
}

func openDevice(t *testing.T) *device {
	t.Helper()
	lib := openEmulator(t)
	parts, err := lib.Partitions()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) == 0 {
		t.Fatal("the emulator lists no partition")
	}
	part, err := lib.OpenPartition(parts[0].Path, parts[0].MaxRev)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, lib: lib, part: part}
	// Registered first, so it runs last: every handle must be gone.
	t.Cleanup(func() { d.expectNoHandles() })
	t.Cleanup(func() {
		if err := lib.ClosePartition(part); err != nil {
			t.Error(err)
		}
	})
	if err := lib.InitPartition(part, testCreds, devapi.PartitionInit{
		OBKSource:  devapi.SourceTPM,
		POTASource: devapi.EndorseTPM,
	}); err != nil {
		t.Fatal(err)
	}
	d.sess = d.openSession()
	return d
}

func (d *device) openSession() devapi.Handle {
	d.t.Helper()
	s, err := d.lib.OpenSession(d.part, testCreds, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		// Already closed by the test is fine; anything else is not.
		if err := d.lib.CloseSession(s); err != nil && !errors.Is(err, &devapi.StatusError{Status: devapi.StatusInvalidHandle}) {
			d.t.Error(err)
		}
	})
	return s
}

func (d *device) expectNoHandles() {
	d.t.Helper()
	hc, ok := devapi.CounterOf(d.lib)
	if !ok {
		d.t.Error("the emulator library has no azihsm_emu_open_handles")
		return
	}
	n, err := hc.OpenHandles()
	if err != nil {
		d.t.Error(err)
		return
	}
	if n != (devapi.HandleCounts{}) {
		d.t.Errorf("handles still open at the end: %+v", n)
	}
}

func ecProps(curve devapi.Curve, sign bool) (priv, pub []devapi.KeyProp) {
	priv = []devapi.KeyProp{
		devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate)),
		devapi.U32(devapi.PropKind, uint32(devapi.KindECC)),
		devapi.U32(devapi.PropECCurve, uint32(curve)),
		devapi.Bool(devapi.PropSign, sign),
	}
	pub = []devapi.KeyProp{
		devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic)),
		devapi.U32(devapi.PropKind, uint32(devapi.KindECC)),
		devapi.U32(devapi.PropECCurve, uint32(curve)),
		devapi.Bool(devapi.PropVerify, true),
	}
	return priv, pub
}

func (d *device) genEC(curve devapi.Curve, sign bool) (priv, pub devapi.Handle) {
	d.t.Helper()
	pp, pu := ecProps(curve, sign)
	priv, pub, err := d.lib.GenerateKeyPair(d.sess, devapi.Algo{ID: devapi.AlgoECKeyPairGen}, pp, pu)
	if err != nil {
		d.t.Fatal(err)
	}
	return priv, pub
}

func (d *device) publicKey(h devapi.Handle) any {
	d.t.Helper()
	der, err := d.lib.KeyProperty(h, devapi.PropPubKeyInfo)
	if err != nil {
		d.t.Fatal(err)
	}
	pk, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		d.t.Fatalf("PropPubKeyInfo is not a SubjectPublicKeyInfo: %v", err)
	}
	return pk
}

func verifyECDSA(t *testing.T, pub *ecdsa.PublicKey, digest, sig []byte) {
	t.Helper()
	n := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*n {
		t.Fatalf("ECDSA signature is %d bytes, want raw r‖s of %d", len(sig), 2*n)
	}
	r := new(big.Int).SetBytes(sig[:n])
	s := new(big.Int).SetBytes(sig[n:])
	if !ecdsa.Verify(pub, digest, r, s) {
		t.Fatal("ECDSA signature does not verify")
	}
}

func TestOpenReportsThePath(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "no-such-libazihsm.so")
	_, err := native.Open(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "No such file") {
		t.Fatalf("Open(%q) = %v, want an error naming the path and dlerror's reason", bad, err)
	}
	if !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("kind = %s", core.KindOf(err))
	}
	// A real library that is not the device's: the first symbol is missing.
	_, err = native.Open("libc.so.6")
	if err == nil || !strings.Contains(err.Error(), "azihsm_part_get_list") {
		t.Fatalf("Open(libc) = %v, want an error naming the missing symbol", err)
	}
}

func TestPartitionsAndSession(t *testing.T) {
	d := openDevice(t)
	parts, err := d.lib.Partitions()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Path == "" || strings.ContainsRune(p.Path, 0) || p.MaxRev.Major == 0 && p.MaxRev.Minor == 0 {
			t.Errorf("partition %+v", p)
		}
	}
	rev, err := d.lib.SessionAPIRev(d.sess)
	if err != nil {
		t.Fatal(err)
	}
	if rev != parts[0].MaxRev {
		t.Errorf("session revision %s, partition opened at %s", rev, parts[0].MaxRev)
	}
	if typ, err := d.lib.PartitionProperty(d.part, devapi.PartPropType); err != nil {
		t.Error(err)
	} else if v, ok := devapi.AsU32(typ); !ok || v == 0 {
		t.Errorf("partition type %x", typ)
	}
	if _, err := d.lib.OpenSession(d.part, devapi.Credentials{ID: testCreds.ID}, nil); !errors.Is(err, core.ErrUnauthenticated) {
		t.Errorf("session with a wrong PIN: %v, want unauthenticated", err)
	}
}

func TestECDSASign(t *testing.T) {
	d := openDevice(t)
	for _, curve := range []devapi.Curve{devapi.CurveP256, devapi.CurveP384} {
		priv, pub := d.genEC(curve, true)
		pk, ok := d.publicKey(pub).(*ecdsa.PublicKey)
		if !ok {
			t.Fatalf("curve %d: the public key is not ECDSA", curve)
		}
		digest := sha256.Sum256([]byte(fmt.Sprintf("message for curve %d", curve)))
		sig, err := d.lib.Sign(devapi.Algo{ID: devapi.AlgoECDSA}, priv, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		verifyECDSA(t, pk, digest[:], sig)
		if err := d.lib.Verify(devapi.Algo{ID: devapi.AlgoECDSA}, pub, digest[:], sig); err != nil {
			t.Errorf("the device does not verify its own signature: %v", err)
		}
		if err := d.lib.DeleteKey(priv); err != nil {
			t.Error(err)
		}
		if err := d.lib.DeleteKey(pub); err != nil {
			t.Error(err)
		}
	}
}

func TestKeyProperty(t *testing.T) {
	d := openDevice(t)
	priv, _ := d.genEC(devapi.CurveP384, true)
	for id, want := range map[devapi.KeyPropID]uint32{
		devapi.PropKind:    uint32(devapi.KindECC),
		devapi.PropClass:   uint32(devapi.ClassPrivate),
		devapi.PropECCurve: uint32(devapi.CurveP384),
	} {
		v, err := d.lib.KeyProperty(priv, id)
		if err != nil {
			t.Fatalf("property %d: %v", id, err)
		}
		if got, ok := devapi.AsU32(v); !ok || got != want {
			t.Errorf("property %d = %x, want %d", id, v, want)
		}
	}
	if v, err := d.lib.KeyProperty(priv, devapi.PropSign); err != nil || !bytes.Equal(v, []byte{1}) {
		t.Errorf("sign usage = %x, %v", v, err)
	}
}

func TestUsageRefused(t *testing.T) {
	d := openDevice(t)
	priv, _ := d.genEC(devapi.CurveP256, false)
	digest := sha256.Sum256([]byte("not allowed"))
	_, err := d.lib.Sign(devapi.Algo{ID: devapi.AlgoECDSA}, priv, digest[:])
	if !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("sign with a key without sign usage: %v, want operation_not_allowed", err)
	}
	if s, _ := devapi.StatusOf(err); s != devapi.StatusUnsupportedKeyOperation {
		t.Errorf("status %s", s)
	}
	if !strings.HasPrefix(err.Error(), "azihsm_crypt_sign: AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION (-45)") {
		t.Errorf("message %q", err)
	}
}

func TestMaskedKeyRoundTrip(t *testing.T) {
	d := openDevice(t)
	priv, pub := d.genEC(devapi.CurveP256, true)
	pk := d.publicKey(pub).(*ecdsa.PublicKey)
	blob, err := d.lib.KeyProperty(priv, devapi.PropMaskedKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) == 0 {
		t.Fatal("empty masked key")
	}
	if err := d.lib.CloseSession(d.sess); err != nil {
		t.Fatal(err)
	}
	s2 := d.openSession()
	priv2, pub2, err := d.lib.UnmaskPair(s2, devapi.KindECC, blob)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("after unmasking"))
	sig, err := d.lib.Sign(devapi.Algo{ID: devapi.AlgoECDSA}, priv2, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	verifyECDSA(t, pk, digest[:], sig)
	if !d.publicKey(pub2).(*ecdsa.PublicKey).Equal(pk) {
		t.Error("the unmasked public key differs")
	}
	blob[len(blob)/2] ^= 1
	if _, _, err := d.lib.UnmaskPair(s2, devapi.KindECC, blob); !errors.Is(err, core.ErrInvalidInput) {
		t.Errorf("unmasking a damaged blob: %v, want invalid_input", err)
	}
}

// importRSA imports key through a fresh unwrapping key, with the wrapped
// blob built here: RSA-OAEP-SHA256 of a random AES-256 key under the
// unwrapping key's public key, then RFC 5649 of the PKCS#8.
func (d *device) importRSA(key *rsa.PrivateKey, usage ...devapi.KeyPropID) (priv, pub devapi.Handle) {
	t := d.t
	t.Helper()
	bits := uint32(key.N.BitLen())
	uPriv, uPub, err := d.lib.GenerateKeyPair(d.sess, devapi.Algo{ID: devapi.AlgoRSAUnwrappingKeyPairGen},
		[]devapi.KeyProp{
			devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate)),
			devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
			devapi.U32(devapi.PropBitLen, 2048),
			devapi.Bool(devapi.PropUnwrap, true),
		},
		[]devapi.KeyProp{
			devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic)),
			devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
			devapi.U32(devapi.PropBitLen, 2048),
			devapi.Bool(devapi.PropWrap, true),
		})
	if err != nil {
		t.Fatal(err)
	}
	wrapPub, ok := d.publicKey(uPub).(*rsa.PublicKey)
	if !ok {
		t.Fatal("the unwrapping key's public key is not RSA")
	}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	encKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, wrapPub, aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	wrappedKey, err := aeskw.WrapPad(aesKey, pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	privProps := []devapi.KeyProp{
		devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate)),
		devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
		devapi.U32(devapi.PropBitLen, bits),
	}
	for _, u := range usage {
		privProps = append(privProps, devapi.Bool(u, true))
	}
	pubProps := []devapi.KeyProp{
		devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic)),
		devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
		devapi.U32(devapi.PropBitLen, bits),
	}
	priv, pub, err = d.lib.UnwrapKeyPair(devapi.Algo{ID: devapi.AlgoRSAAESKeyWrap, Params: &devapi.RSAAESKeyWrapParams{
		AESKeyBits: 256,
		OAEP:       devapi.OAEPParams{Hash: devapi.AlgoSHA256, MGF1: devapi.MGF1SHA256},
	}}, uPriv, append(encKey, wrappedKey...), privProps, pubProps)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.publicKey(pub).(*rsa.PublicKey); !got.Equal(&key.PublicKey) {
		t.Fatal("the imported key's public key differs from the key imported")
	}
	return priv, pub
}

func TestRSAImportPSSAndStreamingPKCS1(t *testing.T) {
	d := openDevice(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := d.importRSA(key, devapi.PropSign)

	digest := sha256.Sum256([]byte("PSS on a digest"))
	sig, err := d.lib.Sign(devapi.Algo{ID: devapi.AlgoRSAPSS, Params: &devapi.PSSParams{
		Hash: devapi.AlgoSHA256, MGF1: devapi.MGF1SHA256, SaltLen: 32,
	}}, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Errorf("PSS signature: %v", err)
	}

	msg := bytes.Repeat([]byte("streamed in chunks; "), 500)
	sig, err = d.lib.SignStream(devapi.Algo{ID: devapi.AlgoRSAPKCS1SHA256}, priv, msg[:7], nil, msg[7:4000], msg[4000:])
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, h[:], sig); err != nil {
		t.Errorf("PKCS#1 v1.5 signature: %v", err)
	}
	// The context is gone, and the counter counts (two pairs are open).
	hc, _ := devapi.CounterOf(d.lib)
	n, err := hc.OpenHandles()
	if err != nil {
		t.Fatal(err)
	}
	if n != (devapi.HandleCounts{Partitions: 1, Sessions: 1, Keys: 4}) {
		t.Errorf("open handles after SignStream: %+v", n)
	}
	if _, err := d.lib.SignStream(devapi.Algo{ID: devapi.AlgoRSAPKCS1SHA256}, priv+1000, msg); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("SignStream on a bad handle: %v", err)
	}
}

func TestRSAOAEPDecrypt(t *testing.T) {
	d := openDevice(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := d.importRSA(key, devapi.PropDecrypt)
	secret := []byte("a premaster secret, say")
	label := []byte("label")
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, secret, label)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := d.lib.Decrypt(devapi.Algo{ID: devapi.AlgoRSAOAEP, Params: &devapi.OAEPParams{
		Hash: devapi.AlgoSHA256, MGF1: devapi.MGF1SHA256, Label: label,
	}}, priv, ct)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt, secret) {
		t.Errorf("decrypted %q", pt)
	}
}

func TestInjectedFaultIsTransient(t *testing.T) {
	d := openDevice(t)
	priv, _ := d.genEC(devapi.CurveP256, true)
	fi, ok := devapi.FaultInjectorOf(d.lib)
	if !ok {
		t.Fatal("the emulator library has no azihsm_emu_inject_fault")
	}
	if err := fi.InjectFault("no_such_fault", 1); !errors.Is(err, core.ErrInvalidInput) {
		t.Errorf("unknown fault: %v", err)
	}
	digest := sha256.Sum256([]byte("faulty"))
	// The last one leaves the session stale; the cleanup still closes it.
	for _, f := range []struct {
		name string
		want devapi.Status
	}{
		{"io_aborted", devapi.StatusIOAborted},
		{"device_not_ready", devapi.StatusDeviceNotReady},
		{"session_needs_renegotiation", devapi.StatusSessionNeedsRenegotiation},
	} {
		if err := fi.InjectFault(f.name, 1); err != nil {
			t.Fatal(err)
		}
		_, err := d.lib.Sign(devapi.Algo{ID: devapi.AlgoECDSA}, priv, digest[:])
		var se *devapi.StatusError
		if !errors.As(err, &se) || !se.Status.Transient() || !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("sign under an injected %s: %v, want a transient StatusError", f.name, err)
		}
		if se.Status != f.want {
			t.Errorf("%s: status %s, want %s", f.name, se.Status, f.want)
		}
	}
}

func TestEmulatorControlsAndClose(t *testing.T) {
	lib := openEmulator(t)
	if _, ok := lib.Counter(); !ok {
		t.Error("no handle counter in the emulator library")
	}
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Partitions(); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
	if err := lib.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Many goroutines sign at once through a second Library on the same
// (reference-counted) library, which is closed under them: every call
// either signs correctly or fails as unavailable, and nothing crashes.
func TestConcurrentSignAndClose(t *testing.T) {
	d := openDevice(t)
	priv, pub := d.genEC(devapi.CurveP256, true)
	pk := d.publicKey(pub).(*ecdsa.PublicKey)
	second, err := native.Open(emulatorPath)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		signed atomic.Int64
		errs   = make(chan error, 16)
	)
	for i := range 16 {
		wg.Go(func() {
			digest := sha256.Sum256([]byte{byte(i)})
			for {
				sig, err := second.Sign(devapi.Algo{ID: devapi.AlgoECDSA}, priv, digest[:])
				if err != nil {
					if !errors.Is(err, core.ErrUnavailable) {
						errs <- err
					}
					return
				}
				n := len(sig) / 2
				if !ecdsa.Verify(pk, digest[:], new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
					errs <- errors.New("a concurrent signature does not verify")
					return
				}
				signed.Add(1)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); signed.Load() < 500 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := second.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if signed.Load() < 500 {
		t.Errorf("only %d signatures before Close", signed.Load())
	}
}
