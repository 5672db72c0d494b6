package mhsm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

// BenchmarkSignP256 signs through the backend against the stand-in with
// injected latency, at 1, 16 and 64 concurrent signers:
//
//	go test ./adapters/mhsm -run - -bench SignP256
func BenchmarkSignP256(b *testing.B) {
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		for _, conc := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("latency=%s/signers=%d", lat, conc), func(b *testing.B) {
				srv, err := mhsmstandin.New(mhsmstandin.Options{ValidTokens: []string{testToken}, Inject: mhsmstandin.Inject{Latency: lat}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := srv.Start("127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				ca := filepath.Join(b.TempDir(), "ca.pem")
				if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
					b.Fatal(err)
				}
				be := New(WithCredential(&staticCred{token: testToken}, "bench"))
				if err := be.Configure(context.Background(), map[string]string{SettingConnectTo: srv.Addr(), SettingCAFile: ca}); err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				info, err := be.CreateKey(ctx, core.KeyID{Namespace: "bench", Name: "p256"},
					core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
				if err != nil {
					b.Fatal(err)
				}
				d := sha256.Sum256([]byte("bench"))
				scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
				if _, err := be.Sign(ctx, info.ID, d[:], scheme); err != nil { // warm: token, connection
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < conc; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := be.Sign(ctx, info.ID, d[:], scheme); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signs/s")
			})
		}
	}
}
