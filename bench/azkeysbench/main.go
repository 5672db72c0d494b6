// Command azkeysbench is the baseline for the Managed HSM bench: the same
// ES256 signing the hsmbridge path does (a 32-byte SHA-256 digest, the key
// version resolved once up front), made directly with azkeys from N
// goroutines, over a transport set up the way the mhsm backend sets its own
// (HTTP/2, one shared connection pool, the HSM name sent to a fixed address
// like the backend's connect_to setting).
//
// Comparing its rows with signbench's hsmbridge rows against the same
// stand-in in the same run isolates what the bridge (C provider, socket,
// hsmhost, go-plugin gRPC) adds to a bare azkeys call.
//
//	azkeysbench -connect-to 127.0.0.1:8443 -ca ca.pem -key bench-p256 -t 1,16,64 -s 2
//
// The token is taken from AZURE_CLI_ACCESS_TOKEN (or -token). The first
// signature of every row is checked with crypto/ecdsa against the public key
// the service returned.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func main() {
	hsm := flag.String("hsm", "MyHSM", "HSM name")
	endpoint := flag.String("endpoint", "https://{hsm}.managedhsm.azure.net", "base URL; {hsm} is replaced by the HSM name")
	connectTo := flag.String("connect-to", "", "host:port every connection goes to (the stand-in)")
	caFile := flag.String("ca", "", "PEM CA file to trust (the stand-in's -ca-out)")
	token := flag.String("token", os.Getenv("AZURE_CLI_ACCESS_TOKEN"), "bearer token (default $AZURE_CLI_ACCESS_TOKEN)")
	key := flag.String("key", "bench-p256", "P-256 key name")
	threadList := flag.String("t", "1,16,64", "concurrent signers, comma-separated")
	seconds := flag.Float64("s", 2, "seconds per row")
	label := flag.String("label", "", "text printed at the start of every row")
	flag.Parse()
	if *token == "" {
		fail(errors.New("no token: set AZURE_CLI_ACCESS_TOKEN or -token"))
	}
	var threads []int
	for _, f := range strings.Split(*threadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-t %q: want positive numbers", *threadList))
		}
		threads = append(threads, n)
	}

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail(err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			fail(fmt.Errorf("no certificate in %s", *caFile))
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if *connectTo != "" {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, *connectTo)
		}
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: dial, ForceAttemptHTTP2: true, TLSClientConfig: tlsConf,
		MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
	}}
	url := strings.ReplaceAll(*endpoint, "{hsm}", strings.ToLower(*hsm))
	client, err := azkeys.NewClient(url, staticToken(*token), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		fail(err)
	}

	ctx := context.Background()
	// Resolve the version once, as the bridge does when a key is loaded.
	kb, err := client.GetKey(ctx, *key, "", nil)
	if err != nil {
		fail(err)
	}
	jwk := kb.Key
	if jwk == nil || jwk.Crv == nil || *jwk.Crv != azkeys.CurveNameP256 || jwk.KID == nil {
		fail(fmt.Errorf("key %s is not a P-256 key", *key))
	}
	version := jwk.KID.Version()
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(jwk.X), Y: new(big.Int).SetBytes(jwk.Y)}
	digest := sha256.Sum256([]byte("azkeysbench"))
	alg := azkeys.SignatureAlgorithmES256
	sign := func() ([]byte, error) {
		r, err := client.Sign(ctx, *key, version, azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil)
		if err != nil {
			return nil, err
		}
		return r.Result, nil
	}

	fmt.Printf("%-14s %-9s %7s %10s %10s %10s\n", "backend", "alg", "threads", "ops/s", "p50 us", "p99 us")
	failed := false
	for _, n := range threads {
		sig, err := sign()
		if err == nil && (len(sig) != 64 || !ecdsa.Verify(pub, digest[:],
			new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))) {
			err = errors.New("signature does not verify with the key's public key")
		}
		if err != nil {
			fmt.Printf("%s%-14s %-9s %7d   FAILED: %v\n", *label, "azkeys-direct", "P-256", n, err)
			failed = true
			continue
		}
		ops, p50, p99, err := run(n, time.Duration(*seconds*float64(time.Second)), sign)
		if err != nil {
			fmt.Printf("%s%-14s %-9s %7d   FAILED: %v\n", *label, "azkeys-direct", "P-256", n, err)
			failed = true
			continue
		}
		fmt.Printf("%s%-14s %-9s %7d %10.0f %10.1f %10.1f\n", *label, "azkeys-direct", "P-256", n, ops, p50, p99)
	}
	if failed {
		os.Exit(1)
	}
}

// run signs from n goroutines for d and returns throughput and latency
// percentiles in microseconds.
func run(n int, d time.Duration, sign func() ([]byte, error)) (ops, p50, p99 float64, err error) {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				t0 := time.Now()
				if _, err := sign(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					break
				}
				t1 := time.Now()
				mine = append(mine, t1.Sub(t0))
				if t1.After(end) {
					break
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if first != nil {
		return 0, 0, 0, first
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1)+0.5)]) / 1e3
	}
	return float64(len(lat)) / wall.Seconds(), pct(0.5), pct(0.99), nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "azkeysbench:", err)
	os.Exit(1)
}
