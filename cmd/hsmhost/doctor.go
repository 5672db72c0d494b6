package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// doctorCommand runs `hsmhost doctor [NAMESPACE ...]`: it checks each
// namespace (an HSM, e.g. managedhsm:MyHSM) from the running host's point of
// view. First the backend's own checks (credential, token, reachability),
// then every key in it: readable, and usable for each operation it allows
// (a test signature verified here, a decryption of a local encryption, a
// wrap and unwrap). Without arguments it checks the namespaces the config's
// routes name. It prints a fix for every failure and fails if any did.
func doctorCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", stderr, "hsmhost doctor [NAMESPACE ...] [--socket PATH]")
	socket := fs.String("socket", "", "hsmhost socket (default $HSMBRIDGE_SOCKET or the per-user default)")
	namespaces, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(namespaces) == 0 {
		namespaces = configuredNamespaces()
	}
	if len(namespaces) == 0 {
		return usagef("doctor: name the namespaces to check (e.g. managedhsm:MyHSM); the config routes none by name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	e := &keyEnv{stdout: stdout, stderr: stderr, socket: socket}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	failed := 0
	for _, ns := range namespaces {
		failed += doctorNamespace(ctx, c, strings.TrimSuffix(ns, ":"), stdout)
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}

// configuredNamespaces lists the "scheme:namespace" prefixes of the
// config's routes.
func configuredNamespaces() []string {
	p, err := config.Locate("")
	if err != nil || p == "" {
		return nil
	}
	cfg, err := config.Load(p)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range cfg.Routes {
		if parts := strings.Split(r.Prefix, ":"); len(parts) >= 2 && parts[1] != "" {
			out = append(out, parts[0]+":"+parts[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type report struct {
	w      io.Writer
	failed int
}

func (r *report) check(name string, err error, detail, fix string) {
	if err == nil {
		fmt.Fprintf(r.w, "  ok    %s: %s\n", name, detail)
		return
	}
	r.failed++
	fmt.Fprintf(r.w, "  FAIL  %s: %v\n", name, err)
	if fix != "" {
		fmt.Fprintf(r.w, "        fix: %s\n", fix)
	}
}

func doctorNamespace(ctx context.Context, c *hostclient.Client, ns string, w io.Writer) int {
	r := &report{w: w}
	fmt.Fprintf(w, "%s\n", ns)
	d, err := c.Diagnose(ctx, ns)
	if err != nil {
		r.check("route", err, "", "add a route for "+ns+": to the config and reload hsmhost (kill -HUP)")
		return r.failed
	}
	fmt.Fprintf(w, "  backend %q\n", d.GetBackend())
	if !d.GetSupported() {
		fmt.Fprintf(w, "  (the backend has no checks of its own)\n")
	}
	for _, ch := range d.GetChecks() {
		var err error
		if !ch.GetOk() {
			err = errors.New(ch.GetDetail())
		}
		r.check(ch.GetName(), err, ch.GetDetail(), ch.GetFix())
	}
	if strings.HasPrefix(ns, string(core.SchemeAzIHSM)) {
		fmt.Fprintf(w, "  masked keys are the applications' files: check one with openssl storeutl -provider azihsm_provider \"azihsm://<file>;type=ec\"\n")
		return r.failed
	}
	keys, err := c.ListKeys(ctx, ns+":")
	if err != nil {
		r.check("key listing", err, "", "")
		return r.failed
	}
	if len(keys) == 0 {
		fmt.Fprintf(w, "  no keys (create one with: hsmhost key create %s:<name> --kty EC --curve P-256 --ops sign)\n", ns)
	}
	for _, k := range keys {
		doctorKey(ctx, c, k, r)
	}
	return r.failed
}

// doctorKey exercises each operation the key allows, checking every result
// with Go's standard crypto rather than trusting the backend.
func doctorKey(ctx context.Context, c *hostclient.Client, k hostclient.Key, r *report) {
	name := k.Reference
	info, err := c.GetKey(ctx, k.Reference)
	r.check(name, err, fmt.Sprintf("readable, %s, allows %s", describeType(info.KeyInfo), joinUsages(info.Usages)), "")
	if err != nil {
		return
	}
	if !info.Enabled {
		r.check(name, errors.New("the key is disabled"), "", "enable it in the HSM")
		return
	}
	if info.Allows(core.UsageSign) {
		r.check(name+" sign", doctorSign(ctx, c, info), "a test signature verifies with the public key", "")
	}
	if info.Allows(core.UsageDecrypt) && info.Type == core.KeyTypeRSA {
		r.check(name+" decrypt", doctorDecrypt(ctx, c, info), "decrypts what its public key encrypted", "")
	}
	if info.Allows(core.UsageWrapKey) && info.Allows(core.UsageUnwrapKey) {
		r.check(name+" wrap", doctorWrap(ctx, c, info), "unwraps what it wrapped", "")
	}
}

func doctorSign(ctx context.Context, c *hostclient.Client, k hostclient.Key) error {
	digest := sha256.Sum256([]byte("hsmbridge doctor"))
	scheme := core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}
	if k.Type == core.KeyTypeEC {
		scheme.Padding = core.PaddingECDSA
	}
	sig, _, err := c.Sign(ctx, k.Reference, k.ID.Version, digest[:], scheme)
	if err != nil {
		return err
	}
	if k.Curve == core.CurveP256K { // Go's crypto has no secp256k1
		p, err := secp256k1.ParsePKIXPublicKey(k.PublicKeyDER)
		if err != nil {
			return fmt.Errorf("the key's public key: %v", err)
		}
		if !secp256k1.VerifyASN1(p, digest[:], sig) {
			return errors.New("the signature does not verify with the key's public key")
		}
		return nil
	}
	pub, err := k.PublicKey()
	if err != nil {
		return err
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest[:], sig) {
			return errors.New("the signature does not verify with the key's public key")
		}
	}
	return nil
}

func doctorDecrypt(ctx context.Context, c *hostclient.Client, k hostclient.Key) error {
	pub, err := k.PublicKey()
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), secret, nil)
	if err != nil {
		return err
	}
	pt, err := c.Decrypt(ctx, k.Reference, k.ID.Version, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if err != nil {
		return err
	}
	if string(pt) != string(secret) {
		return errors.New("decryption returned other bytes than were encrypted")
	}
	return nil
}

func doctorWrap(ctx context.Context, c *hostclient.Client, k hostclient.Key) error {
	alg := core.WrapRSAOAEP256
	if k.Type == core.KeyTypeOct {
		alg = core.WrapAESKeyWrap
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	wrapped, err := c.WrapKey(ctx, k.Reference, k.ID.Version, secret, alg)
	if err != nil {
		return err
	}
	back, err := c.UnwrapKey(ctx, k.Reference, k.ID.Version, wrapped, alg)
	if err != nil {
		return err
	}
	if string(back) != string(secret) {
		return errors.New("unwrapping returned other bytes than were wrapped")
	}
	return nil
}

func describeType(k core.KeyInfo) string {
	if k.Type == core.KeyTypeEC {
		return "EC " + string(k.Curve)
	}
	return fmt.Sprintf("%s %d", k.Type, k.Bits)
}

func joinUsages(us []core.KeyUsage) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = string(u)
	}
	return strings.Join(s, ",")
}
