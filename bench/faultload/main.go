// Command faultload is the faults row of `make bench-mhsm`
// (scripts/bench-mhsm.sh): P-256 signatures through hsmhost's socket from N
// goroutines while the Managed HSM stand-in injects faults, going on after
// every failure. Every signature is verified with the key's public key
// (crypto/ecdsa); every failure is sorted by the cause its message names,
// and counted as unclear when it does not name the key, the HSM and a cause.
//
//	faultload -socket /run/hsmhost.sock -ref managedhsm:MyHSM:bench-p256 -t 64 -s 3
//
// After -s seconds no call starts; the calls in flight are waited for (each
// is bounded by the backend's tries and try_timeout). It prints a header and
// one row:
//
//	backend alg threads calls/s ok% failed wrong unclear p50_ms p99_ms causes
//
// and exits 1 if a result was wrong or a failure unclear.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
)

// causes are what the Managed HSM backend's messages say went wrong.
var causes = []string{"throttling", "answered 500", "answered 503", "cut off", "broke before it answered", "no answer"}

func main() {
	socket := flag.String("socket", os.Getenv("HSMBRIDGE_SOCKET"), "hsmhost's socket (default $HSMBRIDGE_SOCKET)")
	ref := flag.String("ref", "managedhsm:MyHSM:bench-p256", "P-256 key reference")
	threads := flag.Int("t", 64, "concurrent signers")
	conns := flag.Int("conns", 8, "host connections the signers share")
	seconds := flag.Float64("s", 3, "seconds during which calls start")
	flag.Parse()
	kr, err := core.ParseKeyRef(*ref)
	if err != nil {
		fail(err)
	}
	clients := make([]*hostclient.Client, max(*conns, 1))
	ctx := context.Background()
	for i := range clients {
		if clients[i], err = hostclient.Dial(*socket); err != nil {
			fail(err)
		}
		if _, err := clients[i].Hello(ctx, "faultload"); err != nil {
			fail(err)
		}
	}
	// The key is read under the faults too: a few tries may be needed.
	var key hostclient.Key
	for try := 0; ; try++ {
		if key, err = clients[0].GetKey(ctx, *ref); err == nil || try == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		fail(err)
	}
	pub, err := x509.ParsePKIXPublicKey(key.PublicKeyDER)
	ecPub, ok := pub.(*ecdsa.PublicKey)
	if err != nil || !ok {
		fail(fmt.Errorf("%s is not an EC key", *ref))
	}
	scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}

	var (
		mu       sync.Mutex
		lat      []time.Duration
		failed   int
		wrong    int
		unclear  []string
		byCause  = map[string]int{}
		wg       sync.WaitGroup
		start    = time.Now()
		stopAt   = start.Add(time.Duration(*seconds * float64(time.Second)))
		keyWords = []string{`key "` + kr.Name + `"`, `Managed HSM "` + kr.Namespace + `"`}
	)
	for i := range *threads {
		c := clients[i%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := make([]byte, 32)
			for time.Now().Before(stopAt) {
				_, _ = rand.Read(digest)
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				t0 := time.Now()
				sig, _, err := c.Sign(cctx, *ref, key.ID.Version, digest, scheme)
				d := time.Since(t0)
				cancel()
				mu.Lock()
				switch {
				case err == nil && !ecdsa.VerifyASN1(ecPub, digest, sig):
					wrong++
				case err == nil:
					lat = append(lat, d)
				default:
					failed++
					cause := ""
					for _, cs := range causes {
						if strings.Contains(err.Error(), cs) {
							cause = cs
							break
						}
					}
					clear := cause != ""
					for _, w := range keyWords {
						clear = clear && strings.Contains(err.Error(), w)
					}
					if !clear {
						cause = "unclear"
						if len(unclear) < 3 {
							unclear = append(unclear, err.Error())
						}
					}
					byCause[cause]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	calls := len(lat) + failed + wrong
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1)+0.5)]) / 1e6
	}
	var names []string
	for k := range byCause {
		names = append(names, k)
	}
	sort.Strings(names)
	var cs []string
	for _, k := range names {
		cs = append(cs, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", "_"), byCause[k]))
	}
	okPct := 0.0
	if calls > 0 {
		okPct = 100 * float64(len(lat)) / float64(calls)
	}
	fmt.Printf("%-8s %-6s %7s %9s %7s %7s %6s %8s %8s %8s  %s\n", "backend", "alg", "threads", "calls/s", "ok%", "failed", "wrong", "unclear", "p50 ms", "p99 ms", "failures by cause")
	fmt.Printf("%-8s %-6s %7d %9.0f %7.2f %7d %6d %8d %8.2f %8.2f  %s\n", "faults", "P-256", *threads,
		float64(calls)/wall.Seconds(), okPct, failed, wrong, byCause["unclear"], pct(0.5), pct(0.99), strings.Join(cs, " "))
	for _, u := range unclear {
		fmt.Fprintln(os.Stderr, "faultload: unclear failure:", u)
	}
	if wrong > 0 || byCause["unclear"] > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "faultload:", err)
	os.Exit(1)
}
