// A deliberately small backend for pluginhost's tests: one EC key named
// "k", and key names that make the plugin misbehave on Sign ("crash" exits
// the process mid-request, "busy" answers unavailable as a backend whose
// service said 503 does).
//
// Two variables make it misbehave from outside: with TESTPLUGIN_LAUNCH_LOG
// it appends the time of every start to that file (one line of Unix
// nanoseconds), and while the file named by TESTPLUGIN_CRASH_MARKER exists
// it exits at start, before the handshake, the way a broken plugin crash
// loops. Diagnose reports the parent-death signal the plugin runs with.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

type backend struct{ key *ecdsa.PrivateKey }

func (b *backend) GetKey(_ context.Context, id core.KeyID) (core.KeyInfo, error) {
	if id.Name != "k" && id.Name != "crash" && id.Name != "busy" {
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
	if id.Name == "busy" {
		return nil, core.Errorf(core.KindUnavailable, "the service is busy (503)")
	}
	return ecdsa.SignASN1(rand.Reader, b.key, digest)
}

func (b *backend) SignatureSchemes() []string  { return []string{"ecdsa-sha256"} }
func (b *backend) EncryptionSchemes() []string { return nil }

// The parent-death signal is kept per thread, and the kernel checks every
// thread's when the parent dies; exec sets it on the main thread, which
// init runs on.
var pdeathsig, pdeathsigErr = 0, error(nil)

func init() { pdeathsig, pdeathsigErr = parentDeathSignal() }

func (b *backend) Diagnose(context.Context, string) ([]core.Check, error) {
	if pdeathsigErr != nil {
		return nil, pdeathsigErr
	}
	return []core.Check{{Name: "pdeathsig", OK: true, Detail: strconv.Itoa(pdeathsig)}}, nil
}

func main() {
	if path := os.Getenv("TESTPLUGIN_LAUNCH_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, time.Now().UnixNano())
			f.Close()
		}
	}
	if path := os.Getenv("TESTPLUGIN_CRASH_MARKER"); path != "" {
		if _, err := os.Stat(path); err == nil {
			os.Exit(4)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sdk.Serve(&backend{key: key}, sdk.WithName("testplugin"))
}
