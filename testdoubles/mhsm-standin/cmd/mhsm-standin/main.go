// Command mhsm-standin serves a local stand-in for the Azure Key Vault
// Managed HSM keys REST API over HTTPS on loopback, for tests and demos of
// the Managed HSM backend. See README.md beside this file; the server itself
// is testdoubles/mhsm-standin.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

// listFlag collects a repeatable, comma-separable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func main() {
	var (
		tokens, hosts listFlag
		opts          mhsmstandin.Options
		inj           mhsmstandin.Inject
	)
	addr := flag.String("addr", "127.0.0.1:8443", "listen address (host:port; port 0 picks a free one)")
	caOut := flag.String("ca-out", "", "write the generated CA certificate (PEM) to this file")
	urlOut := flag.String("url-out", "", "write the base URL to this file once listening (scripts can wait for it)")
	logReq := flag.Bool("log", false, "log one line per request to stderr")
	flag.Var(&tokens, "token", "accepted bearer token (repeatable or comma-separated; none: any token is accepted)")
	flag.Var(&hosts, "hostname", "extra DNS name for the served certificate (repeatable)")
	flag.StringVar(&opts.Tenant, "tenant", mhsmstandin.DefaultTenant, "tenant ID announced in the 401 challenge")
	flag.StringVar(&opts.Resource, "resource", mhsmstandin.DefaultResource, "resource announced in the 401 challenge")
	flag.StringVar(&opts.StateFile, "state", "", "JSON file to load keys from and save them to (private keys in clear: tests only)")
	flag.IntVar(&opts.PageSize, "page-size", 25, "list page size when the client sends no maxresults")
	flag.BoolVar(&opts.PurgeOnDelete, "purge-on-delete", false, "purge keys on delete (the real HSM soft-deletes; the name stays taken until purged)")
	flag.DurationVar(&inj.Latency, "latency", 0, "added latency per request (e.g. 20ms)")
	flag.IntVar(&inj.Throttle.Count, "throttle-count", 0, "answer the next N requests with 429 Throttled")
	flag.Float64Var(&inj.Throttle.Rate, "throttle-rate", 0, "answer this fraction (0..1) of requests with 429 Throttled")
	flag.DurationVar(&inj.RetryAfter, "retry-after", 0, "Retry-After on 429 answers (rounded up to seconds; 0: no header)")
	flag.IntVar(&inj.ServerError.Count, "5xx-count", 0, "answer the next N requests with a 5xx")
	flag.Float64Var(&inj.ServerError.Rate, "5xx-rate", 0, "answer this fraction of requests with a 5xx")
	flag.IntVar(&inj.ServerErrorStatus, "5xx-status", 503, "status code of injected server errors")
	flag.IntVar(&inj.ThrottleBare.Count, "throttle-bare-count", 0, "answer the next N requests with 429 without Retry-After")
	flag.Float64Var(&inj.ThrottleBare.Rate, "throttle-bare-rate", 0, "answer this fraction of requests with 429 without Retry-After")
	flag.IntVar(&inj.InternalError.Count, "500-count", 0, "answer the next N requests with 500 (beside the -5xx ones)")
	flag.Float64Var(&inj.InternalError.Rate, "500-rate", 0, "answer this fraction of requests with 500 (beside the -5xx ones)")
	flag.IntVar(&inj.Drop.Count, "drop-count", 0, "carry out the next N requests and cut their answers off half way")
	flag.Float64Var(&inj.Drop.Rate, "drop-rate", 0, "carry out this fraction of requests and cut their answers off half way")
	flag.IntVar(&inj.Late.Count, "late-count", 0, "carry out the next N requests -late-by late (even if the client has gone)")
	flag.Float64Var(&inj.Late.Rate, "late-rate", 0, "carry out this fraction of requests -late-by late (even if the client has gone)")
	flag.DurationVar(&inj.LateBy, "late-by", 0, "how late the -late answers come (default 10s)")
	flag.IntVar(&inj.ExpireToken.Count, "expire-count", 0, "answer the next N authenticated requests as if the token had expired (401)")
	flag.Float64Var(&inj.ExpireToken.Rate, "expire-rate", 0, "answer this fraction of authenticated requests as if the token had expired")
	flag.IntVar(&inj.Deny.Count, "deny-count", 0, "answer the next N requests with 403 (RBAC denial)")
	flag.Float64Var(&inj.Deny.Rate, "deny-rate", 0, "answer this fraction of requests with 403 (RBAC denial)")
	identityAddr := flag.String("identity-addr", "", "also serve an App Service-style managed identity endpoint (plain HTTP) on this address, e.g. 127.0.0.1:0")
	identityHeader := flag.String("identity-header", "", "the secret its clients send as X-IDENTITY-HEADER (IDENTITY_HEADER; default: random, written to -identity-url-out)")
	identityOut := flag.String("identity-url-out", "", "write IDENTITY_ENDPOINT=<url> and IDENTITY_HEADER=<secret> lines to this file once listening")
	flag.DurationVar(&opts.TokenLifetime, "token-lifetime", mhsmstandin.DefaultTokenLifetime, "how long the identity endpoint's tokens are accepted")
	flag.Parse()

	opts.ValidTokens, opts.HostNames, opts.Inject = tokens, hosts, inj
	if *logReq {
		opts.Logf = log.Printf
	}
	srv, err := mhsmstandin.New(opts)
	if err != nil {
		log.Fatalf("mhsm-standin: %v", err)
	}
	if *caOut != "" {
		if err := os.WriteFile(*caOut, srv.CAPEM(), 0o644); err != nil {
			log.Fatalf("mhsm-standin: writing CA: %v", err)
		}
	}
	if *identityAddr != "" {
		secret := *identityHeader
		if secret == "" {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			secret = hex.EncodeToString(b)
		}
		ln, err := net.Listen("tcp", *identityAddr)
		if err != nil {
			log.Fatalf("mhsm-standin: identity endpoint: %v", err)
		}
		endpoint := "http://" + ln.Addr().String() + "/msi/token"
		go func() {
			_ = (&http.Server{Handler: srv.IdentityHandler(secret), ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
		}()
		if *identityOut != "" {
			env := "IDENTITY_ENDPOINT=" + endpoint + "\nIDENTITY_HEADER=" + secret + "\n"
			if err := os.WriteFile(*identityOut, []byte(env), 0o600); err != nil {
				log.Fatalf("mhsm-standin: writing identity endpoint: %v", err)
			}
		}
		fmt.Printf("managed identity endpoint: %s (tokens last %s)\n", endpoint, opts.TokenLifetime)
	}
	url, err := srv.Start(*addr)
	if err != nil {
		log.Fatalf("mhsm-standin: %v", err)
	}
	if *urlOut != "" {
		if err := os.WriteFile(*urlOut, []byte(url+"\n"), 0o644); err != nil {
			log.Fatalf("mhsm-standin: writing URL: %v", err)
		}
	}
	fmt.Printf("mhsm-standin listening on %s (admin: %s/_standin/inject)\n", url, url)
	if *caOut != "" {
		fmt.Printf("CA certificate: %s\n", *caOut)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	done := make(chan struct{})
	go func() { _ = srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
