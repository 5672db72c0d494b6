package mhsmstandin

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// BenchmarkSignP256 measures azkeys P-256 signing against the stand-in with
// no injected latency: the ceiling the stand-in puts on the bridge's bench.
// Run with -cpu 1,16,64 for that many concurrent signers.
func BenchmarkSignP256(b *testing.B) {
	srv, err := New(Options{ValidTokens: []string{testToken}})
	if err != nil {
		b.Fatal(err)
	}
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client := newClient(b, srv, url, &staticCred{token: testToken}, nil)
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "bench", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("bench"))
	p := azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Sign(ctx, "bench", "", p, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
