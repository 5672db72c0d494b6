package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

const cliTimeout = 2 * time.Minute

type keyEnv struct {
	stdout, stderr io.Writer
	socket         *string
}

// client connects to the running host. The socket is --socket, else
// $HSMBRIDGE_SOCKET, else the configuration's, else the default.
func (e *keyEnv) client(ctx context.Context) (*hostclient.Client, error) {
	var cfg *config.Config
	if *e.socket == "" {
		if p, err := config.Locate(""); err == nil && p != "" {
			cfg, _ = config.Load(p) // a broken file is serve's to report
		}
	}
	c, err := hostclient.Dial(config.SocketPath(*e.socket, cfg))
	if err != nil {
		return nil, err
	}
	if _, err := c.Hello(ctx, "hsmhost-cli/"+hostVersion()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func keyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("key needs a subcommand: create, import, list, show, pubkey, delete or ref")
	}
	sub, args := args[0], args[1:]
	e := &keyEnv{stdout: stdout, stderr: stderr}
	fs := newFlagSet("key "+sub, stderr, "hsmhost key "+sub+" ...")
	e.socket = fs.String("socket", "", "hsmhost socket (default $HSMBRIDGE_SOCKET or the per-user default)")
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()

	switch sub {
	case "create":
		kty := fs.String("kty", "EC", "key type: RSA, EC or oct (RSA-HSM, EC-HSM, oct-HSM accepted)")
		size := fs.Int("size", 0, "RSA: 2048, 3072 or 4096 (default 2048); oct: 128, 192 or 256 (default 256)")
		curve := fs.String("curve", "", "EC curve: P-256, P-256K, P-384 or P-521, in any case, or OpenSSL's name (secp256k1, prime256v1, ...) (default P-256)")
		ops := fs.String("ops", "", "allowed operations, comma-separated (default: none sent, the backend gives what Managed HSM gives: RSA sign, verify, encrypt, decrypt, wrapKey, unwrapKey; EC sign, verify, deriveKey; oct all seven)")
		ref, err := oneRef(fs, args, "create")
		if err != nil {
			return err
		}
		spec, err := createSpec(*kty, *size, *curve, *ops)
		if err != nil {
			return err
		}
		c, err := e.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		k, err := c.CreateKey(ctx, ref, spec)
		if err != nil {
			return err
		}
		printKey(stdout, k)
		return nil

	case "import":
		in := fs.String("in", "", "private key file: PEM or DER, PKCS#8, PKCS#1 or SEC 1 (required)")
		ops := fs.String("ops", "", "allowed operations, comma-separated (default: all that suit the key type)")
		ref, err := oneRef(fs, args, "import")
		if err != nil {
			return err
		}
		if *in == "" {
			return usagef("key import needs --in KEYFILE")
		}
		data, err := os.ReadFile(*in)
		if err != nil {
			return err
		}
		pkcs8, typ, err := loadPrivateKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *in, err)
		}
		usages, err := parseOps(*ops, typ)
		if err != nil {
			return err
		}
		c, err := e.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		k, err := c.ImportKey(ctx, ref, pkcs8, usages)
		if err != nil {
			return err
		}
		printKey(stdout, k)
		return nil

	case "list":
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) > 1 {
			return usagef("key list takes at most one PREFIX")
		}
		prefix := ""
		if len(pos) == 1 {
			prefix = pos[0]
		}
		c, err := e.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		keys, err := c.ListKeys(ctx, prefix)
		if err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", k.Reference, shape(k.KeyInfo), opsText(k.Usages), k.Backend)
		}
		return nil

	case "show", "pubkey", "delete":
		ref, err := oneRef(fs, args, sub)
		if err != nil {
			return err
		}
		c, err := e.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if sub == "delete" {
			n, err := c.DeleteKey(ctx, ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted %s (%d version(s))\n", canonical(ref), n)
			return nil
		}
		k, err := c.GetKey(ctx, ref)
		if err != nil {
			return err
		}
		if sub == "show" {
			printKey(stdout, k)
			return nil
		}
		if len(k.PublicKeyDER) == 0 {
			return core.Errorf(core.KindUnsupported, "%s: a %s key has no public key", k.Reference, k.Type)
		}
		return pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: k.PublicKeyDER})

	case "ref":
		offline := fs.Bool("offline", false, "only check the reference's syntax; do not ask hsmhost whether the key exists")
		out := fs.String("out", "", "write the reference file here instead of stdout")
		pkcs8 := fs.Bool("pkcs8", refPKCS8Default, "write the PKCS#8 form (a \"PRIVATE KEY\" block of hsmbridge's key-reference algorithm "+core.RefPKCS8OID+"), which programs that pick PEM blocks by label (Apache, Postfix) take; --pkcs8=false writes the \"HSMBRIDGE KEY REFERENCE\" block. Both hold the reference only")
		ref, err := oneRef(fs, args, "ref")
		if err != nil {
			return err
		}
		parsed, err := core.ParseKeyRef(ref)
		if err != nil {
			return err
		}
		if !*offline {
			c, err := e.client(ctx)
			if err != nil {
				return fmt.Errorf("%w (use --offline to skip the check)", err)
			}
			defer c.Close()
			if _, err := c.GetKey(ctx, ref); err != nil {
				return err
			}
		}
		encode := core.EncodeRefPEM
		if *pkcs8 {
			encode = core.EncodeRefPKCS8PEM
		}
		p, err := encode(parsed)
		if err != nil {
			return err
		}
		if *out != "" {
			return os.WriteFile(*out, p, 0o644) // a reference is not secret
		}
		_, err = stdout.Write(p)
		return err
	}
	return usagef("unknown key subcommand %q", sub)
}

// refPKCS8Default is the form `key ref` writes without --pkcs8: the PKCS#8
// form, which every program that loads the label form also loads (the e2e
// servers run with both) and which Apache's proxy certificates and
// Postfix's chain files take besides. The provider writes the same form for
// `openssl pkey -out` (encoder.c, HB_REF_FORM_PKCS8).
const refPKCS8Default = true

func oneRef(fs *flag.FlagSet, args []string, sub string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("key %s needs exactly one key reference, got %d argument(s)", sub, len(pos))
	}
	return pos[0], nil
}

func canonical(ref string) string {
	if r, err := core.ParseKeyRef(ref); err == nil {
		return r.String()
	}
	return ref
}

// createSpec turns az-style options into a KeySpec.
func createSpec(kty string, size int, curve, ops string) (core.KeySpec, error) {
	var spec core.KeySpec
	switch strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(kty, "-HSM"), "-hsm")) {
	case "RSA":
		spec.Type, spec.Bits = core.KeyTypeRSA, 2048
		if size != 0 {
			spec.Bits = size
		}
		if curve != "" {
			return spec, usagef("--curve is for EC keys")
		}
	case "EC":
		spec.Type, spec.Curve = core.KeyTypeEC, core.CurveP256
		if size != 0 {
			return spec, usagef("EC keys take --curve, not --size")
		}
		if curve != "" {
			c, err := core.ParseCurve(curve)
			if err != nil {
				return spec, usagef("--curve: %s", err)
			}
			spec.Curve = c
		}
	case "OCT":
		spec.Type, spec.Bits = core.KeyTypeOct, 256
		if size != 0 {
			spec.Bits = size
		}
		if curve != "" {
			return spec, usagef("--curve is for EC keys")
		}
	default:
		return spec, usagef("--kty %q is not RSA, EC or oct", kty)
	}
	// Without --ops nothing is sent and the backend gives the key what the
	// service gives it (core.DefaultUsages), as az does.
	if strings.TrimSpace(ops) != "" {
		usages, err := parseOps(ops, spec.Type)
		if err != nil {
			return spec, err
		}
		spec.Usages = usages
	}
	if err := spec.Validate(); err != nil {
		return spec, usagef("%s", err)
	}
	return spec, nil
}

// defaultOps follows Key Vault: every operation that suits the key type.
var defaultOps = map[core.KeyType][]core.KeyUsage{
	core.KeyTypeRSA: {core.UsageSign, core.UsageVerify, core.UsageEncrypt, core.UsageDecrypt, core.UsageWrapKey, core.UsageUnwrapKey},
	core.KeyTypeEC:  {core.UsageSign, core.UsageVerify},
	core.KeyTypeOct: {core.UsageEncrypt, core.UsageDecrypt, core.UsageWrapKey, core.UsageUnwrapKey},
}

func parseOps(ops string, typ core.KeyType) ([]core.KeyUsage, error) {
	if strings.TrimSpace(ops) == "" {
		return defaultOps[typ], nil
	}
	var out []core.KeyUsage
	for _, w := range strings.FieldsFunc(ops, func(r rune) bool { return r == ',' || r == ' ' }) {
		u, err := core.ParseKeyUsage(w)
		if err != nil {
			return nil, usagef("--ops: %s", err)
		}
		out = append(out, u)
	}
	return out, nil
}

// loadPrivateKey reads a PEM or DER private key and returns it as PKCS#8.
func loadPrivateKey(data []byte) ([]byte, core.KeyType, error) {
	// Either form; the PKCS#8 one would otherwise read "unknown algorithm".
	if r, err := core.DecodeRefPEM(data); err == nil {
		return nil, "", fmt.Errorf("this is a key-reference file naming %s, not a private key: that key is in a backend already", r)
	}
	if der, ok := loadSecp256k1(data); ok {
		return der, core.KeyTypeEC, nil
	}
	var key any
	var err error
	sawPEM := false
	for rest := data; key == nil; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, "", fmt.Errorf("the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)")
		}
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // EC PARAMETERS, certificates, ...
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s block: %w", block.Type, err)
		}
	}
	if key == nil && sawPEM {
		return nil, "", fmt.Errorf("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block")
	}
	if key == nil {
		if key, err = x509.ParsePKCS8PrivateKey(data); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(data); err != nil {
				if key, err = x509.ParseECPrivateKey(data); err != nil {
					return nil, "", fmt.Errorf("not a PEM or DER private key (PKCS#8, PKCS#1 or SEC 1)")
				}
			}
		}
	}
	var typ core.KeyType
	switch key.(type) {
	case *rsa.PrivateKey:
		typ = core.KeyTypeRSA
	case *ecdsa.PrivateKey:
		typ = core.KeyTypeEC
	default:
		return nil, "", fmt.Errorf("%T keys are not supported (RSA or EC)", key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	return der, typ, err
}

// loadSecp256k1 reads a secp256k1 key (PKCS#8 or SEC 1, PEM or DER), which
// crypto/x509 does not know, and returns it as PKCS#8.
func loadSecp256k1(data []byte) ([]byte, bool) {
	parse := func(der []byte) *secp256k1.PrivateKey {
		if k, err := secp256k1.ParsePKCS8PrivateKey(der); err == nil {
			return k
		}
		if k, err := secp256k1.ParseECPrivateKey(der); err == nil {
			return k
		}
		return nil
	}
	var k *secp256k1.PrivateKey
	sawPEM := false
	for rest := data; k == nil; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		sawPEM = true
		if block.Type == "PRIVATE KEY" || block.Type == "EC PRIVATE KEY" {
			k = parse(block.Bytes)
		}
	}
	if k == nil && !sawPEM {
		k = parse(data)
	}
	if k == nil {
		return nil, false
	}
	der, err := secp256k1.MarshalPKCS8PrivateKey(k)
	return der, err == nil
}

func shape(k core.KeyInfo) string {
	switch k.Type {
	case core.KeyTypeEC:
		return "EC " + string(k.Curve)
	case "":
		return "?"
	}
	return fmt.Sprintf("%s %d", k.Type, k.Bits)
}

func opsText(us []core.KeyUsage) string {
	var s []string
	for _, u := range us {
		s = append(s, string(u))
	}
	return strings.Join(s, ",")
}

// printKey prints the pinned reference alone on the first line (for
// scripts), then the details.
func printKey(w io.Writer, k hostclient.Key) {
	fmt.Fprintln(w, k.Reference)
	fmt.Fprintf(w, "  type:     %s\n", shape(k.KeyInfo))
	fmt.Fprintf(w, "  version:  %s\n", k.ID.Version)
	fmt.Fprintf(w, "  ops:      %s\n", opsText(k.Usages))
	fmt.Fprintf(w, "  enabled:  %t\n", k.Enabled)
	fmt.Fprintf(w, "  backend:  %s\n", k.Backend)
	if !k.Created.IsZero() {
		fmt.Fprintf(w, "  created:  %s\n", k.Created.UTC().Format(time.RFC3339))
	}
}
