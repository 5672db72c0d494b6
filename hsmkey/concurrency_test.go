package hsmkey_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
)

// verify checks one signature of k over d with Go's standard crypto.
func verify(k hsmkey.Key, d []byte, sig []byte, opts crypto.SignerOpts) error {
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, pss.Hash, d, sig, pss)
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), d, sig)
	}
	return fmt.Errorf("public key %T", k.Public())
}

// Many goroutines sign with several keys of one fresh client at once: the
// first requests race to connect, the rest share the pipelined
// connection, and every answer reaches the goroutine that asked (each
// signature verifies over that goroutine's own digest).
func TestConcurrentSigningOnOneClient(t *testing.T) {
	t.Parallel()
	c := hsmkey.NewClient()
	defer c.Close()
	var keys []hsmkey.Key
	for _, spec := range []core.KeySpec{rsa2048, ecP256, ecP384} {
		k, err := c.Open(context.Background(), createKey(t, mainHost, spec))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	const goroutines, each = 48, 15
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			k := keys[g%len(keys)]
			for i := range each {
				d := digestOf(crypto.SHA256, fmt.Sprintf("goroutine %d message %d", g, i))
				var opts crypto.SignerOpts = crypto.SHA256
				if _, isRSA := k.Public().(*rsa.PublicKey); isRSA && i%2 == 1 {
					opts = &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
				}
				sig, err := k.Sign(rand.Reader, d, opts)
				if err == nil {
					err = verify(k, d, sig, opts)
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, signature %d with %s: %w", g, i, k.Reference(), err)
					return
				}
			}
		})
	}
	// Opening keys concurrently with the signing works too.
	for range 8 {
		wg.Go(func() {
			if _, err := c.Open(context.Background(), "managedhsm:MyHSM:myeckey"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// hsmhost restarts while goroutines sign in a loop with keys opened before:
// requests during the gap fail at once, as unavailable and naming the
// socket; once the host is back the same keys sign again with no action
// from the program, and nothing but "unavailable" ever comes out.
func TestHostRestartMidUse(t *testing.T) {
	t.Parallel()
	h, err := startHost(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer h.stop()
	c := hsmkey.NewClient(hsmkey.WithSocket(h.socket), hsmkey.WithTimeout(10*time.Second))
	defer c.Close()
	var keys []hsmkey.Key
	for _, spec := range []core.KeySpec{rsa2048, ecP256} {
		k, err := c.Open(context.Background(), createKey(t, h, spec))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}

	var restarted atomic.Bool
	var before, during, after atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			k := keys[g%len(keys)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := digestOf(crypto.SHA384, fmt.Sprintf("%d/%d", g, i))
				sig, err := k.Sign(rand.Reader, d, crypto.SHA384)
				switch {
				case err == nil:
					if err := verify(k, d, sig, crypto.SHA384); err != nil {
						errs <- err
						return
					}
					if restarted.Load() {
						after.Add(1)
					} else {
						before.Add(1)
					}
				case errors.Is(err, core.ErrUnavailable) && strings.Contains(err.Error(), h.socket) && strings.HasPrefix(err.Error(), k.Reference()+": "):
					during.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					errs <- fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
			}
		})
	}
	waitFor(t, "signatures before the restart", func() bool { return before.Load() >= 50 })
	h.stop()
	// The host is gone: a request fails at once rather than waiting.
	start := time.Now()
	if _, err := keys[1].Sign(rand.Reader, digestOf(crypto.SHA256, "gap"), crypto.SHA256); !errors.Is(err, core.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("with no host: %v after %v", err, time.Since(start))
	}
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	waitFor(t, "signatures after the restart", func() bool { return after.Load() >= 50 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("signatures: %d before, %d after; %d unavailable during the restart", before.Load(), after.Load(), during.Load())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
