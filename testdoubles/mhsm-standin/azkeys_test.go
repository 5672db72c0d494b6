package mhsmstandin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// staticCred is an azcore.TokenCredential handing out one fixed token, as
// AZURE_CLI_ACCESS_TOKEN does in the backend. It records what azkeys'
// challenge policy asked for.
type staticCred struct {
	token  string
	calls  atomic.Int32
	mu     sync.Mutex
	scopes []string
	tenant string
}

func (c *staticCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	c.mu.Lock()
	c.scopes, c.tenant = o.Scopes, o.TenantID
	c.mu.Unlock()
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

const testToken = "test-token-1"
const testTenant = "11111111-2222-3333-4444-555555555555"

func startServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Tenant == "" {
		opts.Tenant = testTenant
	}
	if opts.ValidTokens == nil {
		opts.ValidTokens = []string{testToken}
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, url
}

func newClient(t testing.TB, srv *Server, url string, cred azcore.TokenCredential, mod func(*azkeys.ClientOptions)) *azkeys.Client {
	t.Helper()
	o := &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: srv.Client(),
			Retry:     policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
		},
		DisableChallengeResourceVerification: true,
	}
	if mod != nil {
		mod(o)
	}
	c, err := azkeys.NewClient(url, cred, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func setup(t *testing.T, opts Options) (*Server, *azkeys.Client, *staticCred) {
	srv, url := startServer(t, opts)
	cred := &staticCred{token: testToken}
	return srv, newClient(t, srv, url, cred, nil), cred
}

// respErr unpacks an azcore.ResponseError and its JSON error body.
func respErr(t *testing.T, err error) (status int, code, msg string, hdr http.Header) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %T %v", err, err)
	}
	body, _ := io.ReadAll(re.RawResponse.Body)
	var e wireError
	_ = json.Unmarshal(body, &e)
	return re.StatusCode, e.Error.Code, e.Error.Message, re.RawResponse.Header
}

var versionRx = regexp.MustCompile(`^[0-9a-f]{32}$`)

func rsaPub(t *testing.T, k *azkeys.JSONWebKey) *rsa.PublicKey {
	t.Helper()
	if k == nil || len(k.N) == 0 || len(k.E) == 0 {
		t.Fatal("RSA JWK without n/e")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
}

func ecPub(t *testing.T, k *azkeys.JSONWebKey) *ecdsa.PublicKey {
	t.Helper()
	var c elliptic.Curve
	switch *k.Crv {
	case azkeys.CurveNameP256:
		c = elliptic.P256()
	case azkeys.CurveNameP384:
		c = elliptic.P384()
	case azkeys.CurveNameP521:
		c = elliptic.P521()
	default:
		t.Fatalf("curve %s", *k.Crv)
	}
	size := (c.Params().BitSize + 7) / 8
	if len(k.X) != size || len(k.Y) != size {
		t.Fatalf("EC coordinates are %d/%d bytes, want %d", len(k.X), len(k.Y), size)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, k.X...), k.Y...))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func opsOf(k *azkeys.JSONWebKey) []string {
	var out []string
	for _, o := range k.KeyOps {
		out = append(out, string(*o))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestChallengeFlowAndTokenRequest(t *testing.T) {
	srv, client, cred := setup(t, Options{})
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "k1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
		t.Fatal(err)
	}
	cred.mu.Lock()
	scopes, tenant := cred.scopes, cred.tenant
	cred.mu.Unlock()
	if len(scopes) != 1 || scopes[0] != "https://managedhsm.azure.net/.default" || tenant != testTenant {
		t.Fatalf("challenge led to scopes %v tenant %q", scopes, tenant)
	}
	for i := 0; i < 5; i++ {
		if _, err := client.GetKey(ctx, "k1", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	st := srv.Stats()
	if st.Challenges != 1 {
		t.Fatalf("want exactly one 401 challenge, got %d (%v)", st.Challenges, st.ByStatus)
	}
	if st.Connections != 1 {
		t.Errorf("client used %d connections, want 1 (keep-alive)", st.Connections)
	}

	// The raw challenge: 401, empty body, the Key Vault header.
	resp, err := srv.Client().Post(srv.URL()+"/keys/k1/sign?api-version=7.5", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `Bearer authorization="https://login.microsoftonline.com/` + testTenant + `", resource="https://managedhsm.azure.net"`
	if resp.StatusCode != 401 || len(body) != 0 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("challenge: %d %q %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
}

// With the resource check left on, azkeys needs a *.managedhsm.azure.net
// URL without a port; srv.Client() dials such names to the stand-in.
func TestHostCheckWithManagedHSMName(t *testing.T) {
	srv, url := startServer(t, Options{})
	cred := &staticCred{token: testToken}
	strict := newClient(t, srv, "https://myhsm.managedhsm.azure.net", cred, func(o *azkeys.ClientOptions) { o.DisableChallengeResourceVerification = false })
	resp, err := strict.CreateKey(context.Background(), "named", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct), KeySize: to.Ptr[int32](128)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(*resp.Key.KID); !strings.HasPrefix(got, "https://myhsm.managedhsm.azure.net/keys/named/") {
		t.Fatalf("kid %s not built from the request host", got)
	}
	// The loopback URL fails the check unless it is disabled.
	loose := newClient(t, srv, url, cred, func(o *azkeys.ClientOptions) { o.DisableChallengeResourceVerification = false })
	if _, err := loose.GetKey(context.Background(), "named", "", nil); err == nil || !strings.Contains(err.Error(), "doesn't match the requested domain") {
		t.Fatalf("loopback URL with the check on: %v", err)
	}
}

func TestBadTokenAndExpiry(t *testing.T) {
	srv, url := startServer(t, Options{})
	ctx := context.Background()
	bad := &staticCred{token: "not-a-valid-token"}
	_, err := newClient(t, srv, url, bad, nil).GetKey(ctx, "x", "", nil)
	status, code, _, hdr := respErr(t, err)
	if status != 401 || code != "Unauthorized" || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("bad token: %d %s %v", status, code, hdr)
	}

	// An expired token (injected once) is answered with a new challenge;
	// azkeys asks the credential again and retries.
	good := &staticCred{token: testToken}
	client := newClient(t, srv, url, good, nil)
	if _, err := client.CreateKey(ctx, "e", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil); err != nil {
		t.Fatal(err)
	}
	before := good.calls.Load()
	srv.SetInject(Inject{ExpireToken: Fault{Count: 1}})
	if _, err := client.GetKey(ctx, "e", "", nil); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}
	if good.calls.Load() == before {
		t.Fatal("the credential was not asked for a new token after the expiry challenge")
	}
	// A revoked token stays refused.
	srv.RevokeToken(testToken)
	_, err = client.GetKey(ctx, "e", "", nil)
	if status, _, _, _ := respErr(t, err); status != 401 {
		t.Fatalf("revoked token: %d", status)
	}
}

func TestRSA(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "rsa1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048), Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := cr.Key
	if *k.Kty != azkeys.KeyTypeRSAHSM || !versionRx.MatchString(k.KID.Version()) || k.KID.Name() != "rsa1" {
		t.Fatalf("create answer: kty %s kid %s", *k.Kty, *k.KID)
	}
	if !sameSet(opsOf(k), []string{"wrapKey", "decrypt", "encrypt", "unwrapKey", "sign", "verify"}) {
		t.Fatalf("default RSA key_ops %v", opsOf(k))
	}
	a := cr.Attributes
	if !*a.Enabled || *a.Exportable || *a.RecoverableDays != 7 || *a.RecoveryLevel != "CustomizedRecoverable+Purgeable" || a.Created == nil || a.Updated == nil || *cr.Tags["a"] != "b" {
		t.Fatalf("attributes %+v", a)
	}
	pub := rsaPub(t, k)
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("modulus %d bits, e %d", pub.N.BitLen(), pub.E)
	}
	version := k.KID.Version()
	g, err := client.GetKey(ctx, "rsa1", version, nil)
	if err != nil || string(*g.Key.KID) != string(*k.KID) {
		t.Fatalf("get by version: %v", err)
	}

	msg := []byte("hello managed hsm")
	for _, tc := range []struct {
		alg azkeys.SignatureAlgorithm
		h   crypto.Hash
		pss bool
	}{
		{azkeys.SignatureAlgorithmRS256, crypto.SHA256, false}, {azkeys.SignatureAlgorithmRS384, crypto.SHA384, false}, {azkeys.SignatureAlgorithmRS512, crypto.SHA512, false},
		{azkeys.SignatureAlgorithmPS256, crypto.SHA256, true}, {azkeys.SignatureAlgorithmPS384, crypto.SHA384, true}, {azkeys.SignatureAlgorithmPS512, crypto.SHA512, true},
	} {
		h := tc.h.New()
		h.Write(msg)
		digest := h.Sum(nil)
		sr, err := client.Sign(ctx, "rsa1", "", azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: digest}, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.alg, err)
		}
		if sr.KID.Version() != version {
			t.Errorf("sign without version answered kid %s", *sr.KID)
		}
		if tc.pss {
			// The service uses salt length = hash length: verify with exactly that.
			err = rsa.VerifyPSS(pub, tc.h, digest, sr.Result, &rsa.PSSOptions{SaltLength: tc.h.Size()})
		} else {
			err = rsa.VerifyPKCS1v15(pub, tc.h, digest, sr.Result)
		}
		if err != nil {
			t.Fatalf("%s signature does not verify with crypto/rsa: %v", tc.alg, err)
		}
		vr, err := client.Verify(ctx, "rsa1", version, azkeys.VerifyParameters{Algorithm: to.Ptr(tc.alg), Digest: digest, Signature: sr.Result}, nil)
		if err != nil || !*vr.Value {
			t.Fatalf("%s remote verify: %v", tc.alg, err)
		}
		sr.Result[0] ^= 1
		vr, err = client.Verify(ctx, "rsa1", version, azkeys.VerifyParameters{Algorithm: to.Ptr(tc.alg), Digest: digest, Signature: sr.Result}, nil)
		if err != nil || *vr.Value {
			t.Fatalf("%s remote verify of a bad signature: %v %v", tc.alg, err, vr.Value)
		}
	}
	// Wrong digest length.
	_, err = client.Sign(ctx, "rsa1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: make([]byte, 20)}, nil)
	if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
		t.Fatalf("short digest: %d %s", status, code)
	}

	// Decrypt what Go's crypto/rsa encrypted; encrypt remotely and decrypt remotely.
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSA15, azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSAOAEP256} {
		var ct []byte
		switch alg {
		case azkeys.EncryptionAlgorithmRSA15:
			ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
		case azkeys.EncryptionAlgorithmRSAOAEP:
			ct, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil)
		default:
			ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		dr, err := client.Decrypt(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: ct}, nil)
		if err != nil || !bytes.Equal(dr.Result, secret) {
			t.Fatalf("%s decrypt of a crypto/rsa ciphertext: %v %x", alg, err, dr.Result)
		}
		er, err := client.Encrypt(ctx, "rsa1", version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: secret}, nil)
		if err != nil || len(er.Result) != 256 {
			t.Fatalf("%s encrypt: %v", alg, err)
		}
		dr, err = client.Decrypt(ctx, "rsa1", version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: er.Result}, nil)
		if err != nil || !bytes.Equal(dr.Result, secret) {
			t.Fatalf("%s round trip: %v", alg, err)
		}
		// wrapkey/unwrapkey with the RSA algorithms.
		ur, err := client.UnwrapKey(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: ct}, nil)
		if err != nil || !bytes.Equal(ur.Result, secret) {
			t.Fatalf("%s unwrap: %v", alg, err)
		}
		wr, err := client.WrapKey(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: secret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ur, err = client.UnwrapKey(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: wr.Result}, nil); err != nil || !bytes.Equal(ur.Result, secret) {
			t.Fatalf("%s wrap round trip: %v", alg, err)
		}
	}
}

func TestImportRSAKeySignsWithThatKey(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &azkeys.JSONWebKey{
		Kty: to.Ptr(azkeys.KeyTypeRSA), N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(), D: priv.D.Bytes(),
		P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes(), DP: priv.Precomputed.Dp.Bytes(), DQ: priv.Precomputed.Dq.Bytes(), QI: priv.Precomputed.Qinv.Bytes(),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign)},
	}
	ir, err := client.ImportKey(ctx, "imp", azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *ir.Key.Kty != azkeys.KeyTypeRSAHSM || ir.Key.D != nil || !sameSet(opsOf(ir.Key), []string{"sign"}) || rsaPub(t, ir.Key).N.Cmp(priv.N) != 0 {
		t.Fatalf("import answer %+v", ir.Key)
	}
	digest := sha256.Sum256([]byte("x"))
	sr, err := client.Sign(ctx, "imp", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest[:], sr.Result); err != nil {
		t.Fatal(err)
	}
	// key_ops are enforced: this key may only sign.
	_, err = client.Decrypt(ctx, "imp", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 256)}, nil)
	if status, code, msg, _ := respErr(t, err); status != 403 || code != "Forbidden" || !strings.Contains(msg, "decrypt") {
		t.Fatalf("decrypt with key_ops [sign]: %d %s %s", status, code, msg)
	}
}

func TestEC(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		crv azkeys.CurveName
		alg azkeys.SignatureAlgorithm
		h   func([]byte) []byte
	}{
		{azkeys.CurveNameP256, azkeys.SignatureAlgorithmES256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{azkeys.CurveNameP384, azkeys.SignatureAlgorithmES384, func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }},
		{azkeys.CurveNameP521, azkeys.SignatureAlgorithmES512, func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
	} {
		name := "ec-" + strings.ToLower(strings.ReplaceAll(string(tc.crv), "-", ""))
		cr, err := client.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(tc.crv)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *cr.Key.Kty != azkeys.KeyTypeECHSM || *cr.Key.Crv != tc.crv || !sameSet(opsOf(cr.Key), []string{"sign", "verify", "deriveKey"}) {
			t.Fatalf("%s: %s %v", tc.crv, *cr.Key.Kty, opsOf(cr.Key))
		}
		pub := ecPub(t, cr.Key)
		digest := tc.h([]byte("message for " + name))
		sr, err := client.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: digest}, nil)
		if err != nil {
			t.Fatal(err)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sr.Result) != 2*size {
			t.Fatalf("%s signature is %d bytes, want raw r||s of %d", tc.alg, len(sr.Result), 2*size)
		}
		r, s := new(big.Int).SetBytes(sr.Result[:size]), new(big.Int).SetBytes(sr.Result[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			t.Fatalf("%s signature does not verify with crypto/ecdsa", tc.alg)
		}
		// Algorithm/curve mismatch and digest length are checked.
		_, err = client.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: digest[1:]}, nil)
		if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
			t.Fatalf("short digest: %d %s", status, code)
		}
		_, err = client.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: make([]byte, 32)}, nil)
		if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
			t.Fatalf("RS256 on EC: %d %s", status, code)
		}
	}
	// EC keys refuse wrapKey in key_ops (400 BadParameter, Key Vault's text).
	_, err := client.CreateKey(ctx, "ec-bad", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey)}}, nil)
	if status, code, msg, _ := respErr(t, err); status != 400 || code != "BadParameter" || !strings.HasPrefix(msg, `Unsupported key operation(s): "wrapKey".`) {
		t.Fatalf("EC with wrapKey: %d %s %s", status, code, msg)
	}
}

// AES key wrap through azkeys, checked against the RFC test vectors.
func TestOctKeyWrapVectors(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	hx := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, tc := range []struct {
		alg            azkeys.EncryptionAlgorithm
		kek, key, want string
	}{
		// RFC 3394 §4.1: 128-bit data with a 128-bit KEK.
		{azkeys.EncryptionAlgorithmA128KW, "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{azkeys.EncryptionAlgorithmCKMAESKEYWRAP, "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		// RFC 3394 §4.6: 256-bit data with a 256-bit KEK.
		{azkeys.EncryptionAlgorithmA256KW, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
		// RFC 5649 §6: 20 and 7 octets with a 192-bit KEK.
		{azkeys.EncryptionAlgorithmCKMAESKEYWRAPPAD, "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{azkeys.EncryptionAlgorithmCKMAESKEYWRAPPAD, "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	} {
		name := fmt.Sprintf("kek%d", i)
		ir, err := client.ImportKey(ctx, name, azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeOct), K: hx(tc.kek)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ir.Key.K != nil || *ir.Key.Kty != azkeys.KeyTypeOctHSM {
			t.Fatal("oct key material was returned")
		}
		wr, err := client.WrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(tc.alg), Value: hx(tc.key)}, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.alg, err)
		}
		if !bytes.Equal(wr.Result, hx(tc.want)) {
			t.Fatalf("%s vector %d: got %X want %s", tc.alg, i, wr.Result, tc.want)
		}
		ur, err := client.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(tc.alg), Value: wr.Result}, nil)
		if err != nil || !bytes.Equal(ur.Result, hx(tc.key)) {
			t.Fatalf("%s unwrap: %v", tc.alg, err)
		}
		bad := append([]byte(nil), wr.Result...)
		bad[len(bad)-1] ^= 1
		_, err = client.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(tc.alg), Value: bad}, nil)
		if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
			t.Fatalf("tampered unwrap: %d %s", status, code)
		}
	}
	// A created AES-256 key: no material, the seven default key_ops, A128KW refused.
	cr, err := client.CreateKey(ctx, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Key.K != nil || len(cr.Key.KeyOps) != 7 {
		t.Fatalf("created oct key: %+v", cr.Key)
	}
	_, err = client.WrapKey(ctx, "aes", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA128KW), Value: make([]byte, 32)}, nil)
	if status, _, _, _ := respErr(t, err); status != 400 {
		t.Fatalf("A128KW with a 256-bit key: %d", status)
	}
	// Independent check of a created key: unwrap of data wrapped locally is
	// impossible without the key, so check the AES-KW structure instead:
	// unwrap(wrap(x)) == x and a different key's unwrap fails.
	wr, err := client.WrapKey(ctx, "aes", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: bytes.Repeat([]byte{7}, 32)}, nil)
	if err != nil || len(wr.Result) != 40 {
		t.Fatalf("A256KW wrap: %v", err)
	}
	_, err = client.UnwrapKey(ctx, "kek2", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: wr.Result}, nil)
	if err == nil {
		t.Fatal("another key unwrapped the data")
	}
}

func TestListPagingAndVersions(t *testing.T) {
	_, client, _ := setup(t, Options{PageSize: 2})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := client.CreateKey(ctx, fmt.Sprintf("list%d", i), azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct), KeySize: to.Ptr[int32](128)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var versions []string
	for i := 0; i < 3; i++ {
		cr, err := client.CreateKey(ctx, "multi", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, cr.Key.KID.Version())
	}
	pages, names := 0, map[string]bool{}
	pager := client.NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if pager.More() && !strings.HasPrefix(*page.NextLink, "https://127.0.0.1:") {
			t.Fatalf("nextLink %q not built from the server's base URL", *page.NextLink)
		}
		for _, it := range page.Value {
			if it.KID.Version() != "" {
				t.Errorf("list item kid %s carries a version", *it.KID)
			}
			names[it.KID.Name()] = true
		}
	}
	if pages != 3 || len(names) != 6 {
		t.Fatalf("listed %d names in %d pages, want 6 in 3", len(names), pages)
	}
	var got []string
	vp := client.NewListKeyPropertiesVersionsPager("multi", nil)
	for vp.More() {
		page, err := vp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			got = append(got, it.KID.Version())
		}
	}
	if strings.Join(got, ",") != strings.Join(versions, ",") {
		t.Fatalf("versions %v, want %v", got, versions)
	}
	// The latest is the last created; an older version stays usable.
	g, err := client.GetKey(ctx, "multi", "", nil)
	if err != nil || g.Key.KID.Version() != versions[2] {
		t.Fatalf("latest: %v", err)
	}
	d := sha256.Sum256([]byte("v0"))
	sr, err := client.Sign(ctx, "multi", versions[0], azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}, nil)
	if err != nil || sr.KID.Version() != versions[0] {
		t.Fatalf("sign with an old version: %v", err)
	}
	g0, _ := client.GetKey(ctx, "multi", versions[0], nil)
	pub := ecPub(t, g0.Key)
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sr.Result[:32]), new(big.Int).SetBytes(sr.Result[32:])) {
		t.Fatal("old-version signature does not verify against the old version's key")
	}
}

func TestRandomBytes(t *testing.T) {
	_, client, _ := setup(t, Options{})
	r, err := client.GetRandomBytes(context.Background(), azkeys.GetRandomBytesParameters{Count: to.Ptr[int32](100)}, nil)
	if err != nil || len(r.Value) != 100 || bytes.Equal(r.Value, make([]byte, 100)) {
		t.Fatalf("rng: %v %d", err, len(r.Value))
	}
	_, err = client.GetRandomBytes(context.Background(), azkeys.GetRandomBytesParameters{Count: to.Ptr[int32](129)}, nil)
	if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
		t.Fatalf("count 129: %d %s", status, code)
	}
}

func TestDeleteAndNotFound(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "gone", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatal(err)
	}
	dr, err := client.DeleteKey(ctx, "gone", nil)
	if err != nil || dr.DeletedDate == nil || dr.ScheduledPurgeDate == nil || dr.RecoveryID == nil {
		t.Fatalf("delete: %v %+v", err, dr)
	}
	if got := dr.ScheduledPurgeDate.Sub(*dr.DeletedDate); got != 7*24*time.Hour {
		t.Fatalf("scheduledPurgeDate - deletedDate = %v", got)
	}
	_, err = client.GetKey(ctx, "gone", "", nil)
	status, code, msg, _ := respErr(t, err)
	if status != 404 || code != "KeyNotFound" || !regexp.MustCompile(`^Key not found: https://127\.0\.0\.1:\d+/keys/gone \(Activity ID: [0-9a-f-]{36}\)$`).MatchString(msg) {
		t.Fatalf("get deleted key: %d %s %q", status, code, msg)
	}
	// The name is reserved until purged.
	_, err = client.CreateKey(ctx, "gone", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if status, code, _, _ := respErr(t, err); status != 409 || code != "Conflict" {
		t.Fatalf("re-create a deleted name: %d %s", status, code)
	}
	if _, err := client.GetDeletedKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PurgeDeletedKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetDeletedKey(ctx, "gone", nil)
	if status, _, msg, _ := respErr(t, err); status != 404 || !strings.Contains(msg, "/deletedkeys/gone ") {
		t.Fatalf("get purged key: %d %q", status, msg)
	}
	_, err = client.DeleteKey(ctx, "never", nil)
	if status, code, _, _ := respErr(t, err); status != 404 || code != "KeyNotFound" {
		t.Fatalf("delete unknown: %d %s", status, code)
	}
	_, err = client.GetKey(ctx, "never", "0123456789abcdef0123456789abcdef", nil)
	if status, code, _, _ := respErr(t, err); status != 404 || code != "KeyNotFound" {
		t.Fatalf("get unknown version: %d %s", status, code)
	}
}

func TestAPIVersionChecked(t *testing.T) {
	srv, url := startServer(t, Options{})
	cred := &staticCred{token: testToken}
	old := newClient(t, srv, url, cred, func(o *azkeys.ClientOptions) { o.APIVersion = "7.3" })
	_, err := old.GetKey(context.Background(), "x", "", nil)
	if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
		t.Fatalf("api-version 7.3: %d %s", status, code)
	}
	for _, v := range SupportedAPIVersions {
		c := newClient(t, srv, url, cred, func(o *azkeys.ClientOptions) { o.APIVersion = v })
		_, err := c.GetKey(context.Background(), "x", "", nil)
		if status, code, _, _ := respErr(t, err); status != 404 || code != "KeyNotFound" {
			t.Fatalf("api-version %s: %d %s", v, status, code)
		}
	}
	req, _ := http.NewRequest("GET", url+"/keys/x", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("missing api-version: %d", resp.StatusCode)
	}
}

func TestThrottlingAndServerErrorsAreRetried(t *testing.T) {
	srv, url := startServer(t, Options{})
	// azcore gives up at once when Retry-After exceeds MaxRetryDelay.
	client := newClient(t, srv, url, &staticCred{token: testToken}, func(o *azkeys.ClientOptions) { o.Retry.MaxRetryDelay = 2 * time.Second })
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "t", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil); err != nil {
		t.Fatal(err)
	}
	srv.SetInject(Inject{Throttle: Fault{Count: 1}, RetryAfter: time.Second})
	start := time.Now()
	if _, err := client.GetKey(ctx, "t", "", nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("azcore retried after %v, before Retry-After: 1", el)
	}
	if n := srv.Stats().ByStatus[429]; n != 1 {
		t.Fatalf("%d throttled answers", n)
	}
	srv.SetInject(Inject{Throttle: Fault{Count: 1}, ServerError: Fault{Count: 2}, ServerErrorStatus: 500})
	if _, err := client.GetKey(ctx, "t", "", nil); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	if st.ByStatus[429] != 2 || st.ByStatus[500] != 2 {
		t.Fatalf("statuses %v", st.ByStatus)
	}
	// More failures than retries reach the caller with the service's code.
	srv.SetInject(Inject{Throttle: Fault{Rate: 1}})
	_, err := client.GetKey(ctx, "t", "", nil)
	if status, code, _, hdr := respErr(t, err); status != 429 || code != "Throttled" || hdr.Get("Retry-After") != "" {
		t.Fatalf("persistent throttling: %d %s %v", status, code, hdr)
	}
	srv.SetInject(Inject{Deny: Fault{Count: 1}})
	_, err = client.GetKey(ctx, "t", "", nil)
	if status, code, msg, _ := respErr(t, err); status != 403 || code != "Forbidden" || !strings.Contains(msg, "Managed HSM Crypto User") {
		t.Fatalf("deny: %d %s %s", status, code, msg)
	}
	srv.SetInject(Inject{Latency: 30 * time.Millisecond})
	start = time.Now()
	if _, err := client.GetKey(ctx, "t", "", nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("latency not injected: %v", el)
	}
}

func TestAttributesEnforced(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "att", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("a"))
	sign := func() error {
		_, err := client.Sign(ctx, "att", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}, nil)
		return err
	}
	update := func(a azkeys.KeyAttributes) {
		if _, err := client.UpdateKey(ctx, "att", "", azkeys.UpdateKeyParameters{KeyAttributes: &a}, nil); err != nil {
			t.Fatal(err)
		}
	}
	update(azkeys.KeyAttributes{Enabled: to.Ptr(false)})
	if status, code, msg, _ := respErr(t, sign()); status != 403 || code != "Forbidden" || msg != "Operation sign is not allowed on a disabled key." {
		t.Fatalf("disabled: %d %s %q", status, code, msg)
	}
	// GET still works on a disabled key.
	if g, err := client.GetKey(ctx, "att", cr.Key.KID.Version(), nil); err != nil || *g.Attributes.Enabled {
		t.Fatalf("get disabled: %v", err)
	}
	update(azkeys.KeyAttributes{Enabled: to.Ptr(true), NotBefore: to.Ptr(time.Now().Add(time.Hour))})
	if status, _, _, _ := respErr(t, sign()); status != 403 {
		t.Fatalf("nbf in the future: %d", status)
	}
	update(azkeys.KeyAttributes{NotBefore: to.Ptr(time.Now().Add(-time.Hour)), Expires: to.Ptr(time.Now().Add(-time.Minute))})
	if status, _, _, _ := respErr(t, sign()); status != 403 {
		t.Fatalf("expired: %d", status)
	}
	update(azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(time.Hour))})
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateKey(ctx, "att", "", azkeys.UpdateKeyParameters{KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationVerify)}}, nil); err != nil {
		t.Fatal(err)
	}
	if status, code, msg, _ := respErr(t, sign()); status != 403 || code != "Forbidden" || msg != "Operation sign is not permitted on this key." {
		t.Fatalf("key_ops: %d %s %q", status, code, msg)
	}
}

// Many concurrent P-256 signers, each signature checked with crypto/ecdsa.
func TestConcurrentSigning(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "p256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := ecPub(t, cr.Key)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				d := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", g, i)))
				sr, err := client.Sign(ctx, "p256", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}, nil)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sr.Result[:32]), new(big.Int).SetBytes(sr.Result[32:])) {
					errs <- errors.New("bad signature")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestStateFile(t *testing.T) {
	path := t.TempDir() + "/state.json"
	srv, client, _ := setup(t, Options{StateFile: path})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "persist", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateKey(ctx, "k1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}, nil); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, client2, _ := setup(t, Options{StateFile: path})
	d := sha512.Sum384([]byte("after restart"))
	sr, err := client2.Sign(ctx, "persist", cr.Key.KID.Version(), azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: d[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := ecPub(t, cr.Key)
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sr.Result[:48]), new(big.Int).SetBytes(sr.Result[48:])) {
		t.Fatal("restarted stand-in signs with another key")
	}
	if _, err := client2.GetKey(ctx, "k1", "", nil); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverAndListDeleted(t *testing.T) {
	var paths []string
	var mu sync.Mutex
	_, client, _ := setup(t, Options{Logf: func(f string, a ...any) {
		mu.Lock()
		paths = append(paths, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "Rec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("r"))
	if _, err := client.Sign(ctx, "rec", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}, nil); err != nil {
		t.Fatalf("names are case-insensitive: %v", err)
	}
	if _, err := client.DeleteKey(ctx, "rec", nil); err != nil {
		t.Fatal(err)
	}
	pager := client.NewListDeletedKeyPropertiesPager(nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			n++
			if it.KID.Name() != "Rec" || it.RecoveryID == nil || it.DeletedDate == nil {
				t.Fatalf("deleted item %+v", it)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d deleted keys listed", n)
	}
	rr, err := client.RecoverDeletedKey(ctx, "rec", nil)
	if err != nil || string(*rr.Key.KID) != string(*cr.Key.KID) {
		t.Fatalf("recover: %v", err)
	}
	if _, err := client.GetKey(ctx, "Rec", "", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, p := range paths {
		found = found || strings.HasPrefix(p, "POST /keys/rec/sign?")
	}
	if !found {
		t.Fatalf("azkeys did not send /keys/{name}/sign for the current version: %v", paths)
	}
}
