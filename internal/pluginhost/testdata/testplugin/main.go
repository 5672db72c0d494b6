// A deliberately small backend for pluginhost's tests: one EC key named
// "k", and key names that make the plugin misbehave on Sign ("crash" exits
// the process mid-request).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

type backend struct{ key *ecdsa.PrivateKey }

func (b *backend) GetKey(_ context.Context, id core.KeyID) (core.KeyInfo, error) {
	if id.Name != "k" && id.Name != "crash" {
		return core.KeyInfo{}, core.Errorf(core.KindNotFound, "key %q not found", id.Name)
	}
	der, _ := x509.MarshalPKIXPublicKey(&b.key.PublicKey)
	id.Version = "1"
	return core.KeyInfo{ID: id, Type: core.KeyTypeEC, Curve: core.CurveP256, Bits: 256,
		Usages: []core.KeyUsage{core.UsageSign}, PublicKeyDER: der, Enabled: true}, nil
}

func (b *backend) Sign(_ context.Context, id core.KeyID, digest []byte, _ core.SignatureScheme) ([]byte, error) {
	if id.Name == "crash" {
		os.Exit(3)
	}
	return ecdsa.SignASN1(rand.Reader, b.key, digest)
}

func (b *backend) SignatureSchemes() []string  { return []string{"ecdsa-sha256"} }
func (b *backend) EncryptionSchemes() []string { return nil }

func main() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sdk.Serve(&backend{key: key}, sdk.WithName("testplugin"))
}
