package mhsm

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/hsmbridge/hsmbridge/core"
)

func TestSettings(t *testing.T) {
	ctx := context.Background()
	b := New()
	err := b.Configure(ctx, map[string]string{"endpont": "https://x", SettingHSMs: "a"})
	if !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), "endpont") {
		t.Fatalf("a misspelt setting: %v", err)
	}
	for k, v := range map[string]string{
		SettingEndpoint:   "http://{hsm}.example",
		SettingMaxRetries: "many",
		SettingRetryDelay: "soon",
		SettingConnectTo:  "nohostport",
		SettingCAFile:     "/nonexistent/ca.pem",
		SettingHSMs:       "bad_name",
		SettingDisableChallengeResourceVerification: "perhaps",
	} {
		err := b.Configure(ctx, map[string]string{k: v})
		if !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), k) {
			t.Errorf("setting %s = %q: %v, want invalid_input naming the setting", k, v, err)
		}
	}
	cfg, err := parseSettings(map[string]string{
		SettingEndpoint: "https://{hsm}.managedhsm.usgovcloudapi.net/", SettingMaxRetries: "0",
		SettingRetryDelay: "50ms", SettingMaxRetryDelay: "2s", SettingTryTimeout: "5s", SettingHSMs: "a, b",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.endpoint != "https://{hsm}.managedhsm.usgovcloudapi.net" || cfg.retry.MaxRetries != -1 ||
		cfg.retry.RetryDelay != 50*time.Millisecond || cfg.retry.MaxRetryDelay != 2*time.Second ||
		cfg.retry.TryTimeout != 5*time.Second || len(cfg.hsms) != 2 || cfg.hsms[1] != "b" {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestEndpointPerHSM(t *testing.T) {
	b := New(WithCredential(&staticCred{token: "x"}, "test"))
	c1, err := b.client("HSM-One")
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := b.client("HSM-One")
	c3, _ := b.client("other")
	if c1 != c2 || c1 == c3 {
		t.Error("one client per HSM, reused")
	}
	if c1.endpoint != "https://hsm-one.managedhsm.azure.net" || c3.endpoint != "https://other.managedhsm.azure.net" {
		t.Errorf("endpoints %s %s", c1.endpoint, c3.endpoint)
	}
	// A fixed endpoint serves every name with one client.
	if err := b.Configure(context.Background(), map[string]string{SettingEndpoint: "https://127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	a, _ := b.client("a")
	z, _ := b.client("z")
	if a != z || a.endpoint != "https://127.0.0.1:8443" {
		t.Errorf("fixed endpoint: %s %s", a.endpoint, z.endpoint)
	}
}

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + ".sig"
}

func TestStaticToken(t *testing.T) {
	ctx := context.Background()
	exp := time.Now().Add(30 * time.Minute).Unix()
	s := newStaticToken(jwt(`{"exp":` + itoa(exp) + `,"upn":"ops@example.com","oid":"1234"}`))
	tk, err := s.GetToken(ctx, policy.TokenRequestOptions{})
	if err != nil || tk.ExpiresOn.Unix() != exp {
		t.Fatalf("token expiring at %d: %+v %v", exp, tk.ExpiresOn, err)
	}
	expired := newStaticToken(jwt(`{"exp":` + itoa(time.Now().Add(-time.Minute).Unix()) + `}`))
	if _, err := expired.GetToken(ctx, policy.TokenRequestOptions{}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	opaque := newStaticToken("not-a-jwt")
	if tk, err := opaque.GetToken(ctx, policy.TokenRequestOptions{}); err != nil || tk.Token != "not-a-jwt" || time.Until(tk.ExpiresOn) < 50*time.Minute {
		t.Errorf("opaque token: %+v %v", tk, err)
	}
	n := &namedCredential{cred: s, name: staticName}
	if _, err := n.GetToken(ctx, policy.TokenRequestOptions{}); err != nil {
		t.Fatal(err)
	}
	if id := n.Identity(); !strings.Contains(id, "upn=ops@example.com") || !strings.Contains(id, "oid=1234") {
		t.Errorf("identity %q", id)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSchemes(t *testing.T) {
	for _, c := range []struct {
		s    core.SignatureScheme
		want string
	}{
		{core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA384}, "RS384"},
		{core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA512, SaltLength: 64}, "PS512"},
		{core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}, "ES256"},
		{core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 20}, ""},
		{core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32, MGF1Hash: core.SHA1}, ""},
		{core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA1}, ""},
	} {
		alg, err := signAlgorithm(c.s)
		if c.want == "" {
			if !errors.Is(err, core.ErrUnsupported) {
				t.Errorf("%+v: %v %v, want unsupported", c.s, alg, err)
			}
		} else if string(alg) != c.want || err != nil {
			t.Errorf("%+v: %v %v, want %s", c.s, alg, err, c.want)
		}
	}
	for _, c := range []struct {
		s    core.EncryptionScheme
		want string
	}{
		{core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}, "RSA1_5"},
		{core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA1}, "RSA-OAEP"},
		{core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}, "RSA-OAEP-256"},
		{core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA384}, ""},
		{core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256, MGF1Hash: core.SHA1}, ""},
		{core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256, Label: []byte("l")}, ""},
	} {
		alg, err := encryptionAlgorithm(c.s)
		if c.want == "" {
			if !errors.Is(err, core.ErrUnsupported) {
				t.Errorf("%+v: %v %v, want unsupported", c.s, alg, err)
			}
		} else if string(alg) != c.want || err != nil {
			t.Errorf("%+v: %v %v, want %s", c.s, alg, err, c.want)
		}
	}
}
