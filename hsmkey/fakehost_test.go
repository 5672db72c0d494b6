package hsmkey_test

// What a real host does not do on cue (drop a connection with a request
// in flight, answer out of order, stall), played by a scripted host that
// speaks the protocol with the framing the server uses (hostframe).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
)

// fakeHost answers Hello and GetKey itself (one P-256 key) and hands every
// other request to sign, which answers (return a response), or drops the
// connection (return nil).
type fakeHost struct {
	t       *testing.T
	socket  string
	key     *ecdsa.PrivateKey
	conns   atomic.Int32 // connections accepted
	signs   atomic.Int32 // sign requests received
	hello   func(*hostapi.HelloRequest) *hostapi.Response
	sign    func(conn int32, req *hostapi.Request) *hostapi.Response
	batch   int // answer sign requests in batches of this many, last first
	ln      net.Listener
	wg      sync.WaitGroup
	closing atomic.Bool
}

func newFakeHost(t *testing.T) *fakeHost {
	dir, err := os.MkdirTemp("", "hsmkey-fake-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fakeHost{t: t, socket: filepath.Join(dir, "hsmhost.sock"), key: k}
	f.sign = func(_ int32, req *hostapi.Request) *hostapi.Response { return f.signed(req) }
	return f
}

func (f *fakeHost) start() {
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ln = ln
	f.t.Cleanup(f.stop)
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := f.conns.Add(1)
			f.wg.Go(func() { f.serve(n, c) })
		}
	})
}

func (f *fakeHost) stop() {
	if f.closing.Swap(true) {
		return
	}
	f.ln.Close()
	f.wg.Wait()
}

// signed is the correct answer to a sign request.
func (f *fakeHost) signed(req *hostapi.Request) *hostapi.Response {
	sig, err := ecdsa.SignASN1(rand.Reader, f.key, req.GetSign().GetDigest())
	if err != nil {
		f.t.Error(err)
	}
	return &hostapi.Response{Id: req.GetId(), Result: &hostapi.Response_Sign{Sign: &hostapi.SignResponse{Signature: sig}}}
}

func (f *fakeHost) serve(n int32, c net.Conn) {
	defer c.Close()
	var held []*hostapi.Response
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		frame, err := hostframe.Read(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if f.closing.Load() {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		req := new(hostapi.Request)
		if err := proto.Unmarshal(frame, req); err != nil {
			f.t.Error(err)
			return
		}
		var resp *hostapi.Response
		switch op := req.GetOp().(type) {
		case *hostapi.Request_Hello:
			resp = &hostapi.Response{Result: &hostapi.Response_Hello{Hello: &hostapi.HelloResponse{Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1}}}
			if f.hello != nil {
				resp = f.hello(op.Hello)
			}
			if resp.GetError() == nil {
				resp.Id = req.GetId()
			}
		case *hostapi.Request_GetKey:
			der, _ := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
			resp = &hostapi.Response{Id: req.GetId(), Result: &hostapi.Response_Key{Key: &hostapi.KeyInfo{
				Reference: op.GetKey.GetReference() + "?version=v1", Version: "v1", KeyType: hostapi.KeyType_KEY_TYPE_EC,
				Curve: "P-256", Bits: 256, PublicKeyDer: der, Backend: "fake", Enabled: true}}}
		default:
			f.signs.Add(1)
			if resp = f.sign(n, req); resp == nil {
				return // drop the connection with the request in flight
			}
			if f.batch > 1 {
				if held = append(held, resp); len(held) < f.batch {
					continue
				}
				for i := len(held) - 1; i >= 0; i-- {
					hostframe.Write(c, held[i])
				}
				held = nil
				continue
			}
		}
		if resp.GetId() == 0 && resp.GetError() == nil {
			resp.Id = req.GetId()
		}
		if err := hostframe.Write(c, resp); err != nil {
			return
		}
	}
}

func (f *fakeHost) open(t *testing.T, opts ...hsmkey.Option) hsmkey.Key {
	t.Helper()
	k, err := hsmkey.NewClient(append([]hsmkey.Option{hsmkey.WithSocket(f.socket)}, opts...)...).Open(context.Background(), "managedhsm:Fake:k")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signOnce(k hsmkey.Key) ([]byte, error) {
	return k.Sign(rand.Reader, digestOf(crypto.SHA256, "x"), crypto.SHA256)
}

// A sign request in flight when the connection breaks is sent again, once,
// on a fresh connection.
func TestRequestRetriedOnceWhenTheConnectionBreaks(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	f.sign = func(conn int32, req *hostapi.Request) *hostapi.Response {
		if conn == 1 {
			return nil
		}
		return f.signed(req)
	}
	f.start()
	k := f.open(t)
	d := digestOf(crypto.SHA256, "x")
	sig, err := k.Sign(rand.Reader, d, crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(&f.key.PublicKey, d, sig) {
		t.Fatalf("%v", err)
	}
	if f.conns.Load() != 2 || f.signs.Load() != 2 {
		t.Fatalf("%d connections, %d sign requests; want 2 and 2", f.conns.Load(), f.signs.Load())
	}
}

// ... but only once: a host that drops every connection gets the request
// twice and the caller an unavailable error that says what happened.
func TestRequestRetriedNoMoreThanOnce(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	f.sign = func(int32, *hostapi.Request) *hostapi.Response { return nil }
	f.start()
	k := f.open(t)
	_, err := signOnce(k)
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "lost") || !strings.HasPrefix(err.Error(), "managedhsm:Fake:k?version=v1: ") {
		t.Fatalf("%v", err)
	}
	if f.signs.Load() != 2 {
		t.Fatalf("%d sign requests, want 2", f.signs.Load())
	}
}

// An error the host answered is the host's, verbatim, and never retried.
func TestHostAnsweredErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	const msg = `managedhsm:Fake:k?version=v1: the HSM is busy in backend "fake"`
	f.sign = func(_ int32, req *hostapi.Request) *hostapi.Response {
		return &hostapi.Response{Id: req.GetId(), Error: &hostapi.Error{Kind: hostapi.ErrorKind_ERROR_KIND_UNAVAILABLE, Message: msg, Backend: "fake"}}
	}
	f.start()
	_, err := signOnce(f.open(t))
	if !errors.Is(err, core.ErrUnavailable) || err.Error() != msg {
		t.Fatalf("%v", err)
	}
	if f.signs.Load() != 1 || f.conns.Load() != 1 {
		t.Fatalf("%d sign requests on %d connections, want 1 on 1", f.signs.Load(), f.conns.Load())
	}
}

// Concurrent requests share one connection and each gets its own answer,
// though the host answers them in reverse order.
func TestPipelinedRequestsAnsweredOutOfOrder(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	f.batch = 8
	f.start()
	k := f.open(t)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			d := digestOf(crypto.SHA256, string(rune('a'+i)))
			sig, err := k.Sign(rand.Reader, d, crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(&f.key.PublicKey, d, sig) {
				t.Errorf("request %d: %v (or a signature over another digest)", i, err)
			}
		})
	}
	wg.Wait()
	if f.conns.Load() != 1 {
		t.Fatalf("%d connections, want 1", f.conns.Load())
	}
}

// A host that does not answer costs the caller the client's timeout, not
// more; SignContext also stops at its context's end.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	block := make(chan struct{})
	f.sign = func(_ int32, req *hostapi.Request) *hostapi.Response { <-block; return f.signed(req) }
	f.start()
	defer close(block)
	k := f.open(t, hsmkey.WithTimeout(200*time.Millisecond))
	start := time.Now()
	_, err := signOnce(k)
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer in time") || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256); !errors.Is(err, context.Canceled) || !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}
}

// A host speaking another protocol version is refused at Hello; one that
// refuses the connection (id 0) is heard.
func TestHelloRefusals(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	f.hello = func(*hostapi.HelloRequest) *hostapi.Response {
		return &hostapi.Response{Result: &hostapi.Response_Hello{Hello: &hostapi.HelloResponse{Version: 2}}}
	}
	f.start()
	_, err := hsmkey.NewClient(hsmkey.WithSocket(f.socket)).Open(context.Background(), "managedhsm:Fake:k")
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "protocol version 2") {
		t.Fatalf("version 2: %v", err)
	}
	g := newFakeHost(t)
	g.hello = func(h *hostapi.HelloRequest) *hostapi.Response {
		if !strings.HasPrefix(h.GetClient(), "hsmbridge-go/hsmkey") || len(h.GetSession()) != 32 {
			t.Errorf("hello %v", h)
		}
		return &hostapi.Response{Error: &hostapi.Error{Kind: hostapi.ErrorKind_ERROR_KIND_UNAVAILABLE, Message: "too many connections for uid 0"}}
	}
	g.start()
	_, err = hsmkey.NewClient(hsmkey.WithSocket(g.socket)).Open(context.Background(), "managedhsm:Fake:k")
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("refused: %v", err)
	}
}

// The socket is used only where the provider would use it: a folder others
// may write to, or one of another user, is refused before anything is
// sent, and WithHostUIDs trusts a service user.
func TestUntrustedSocketsAreRefused(t *testing.T) {
	t.Parallel()
	f := newFakeHost(t)
	f.start()
	dir := filepath.Dir(f.socket)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := hsmkey.NewClient(hsmkey.WithSocket(f.socket)).Open(context.Background(), "managedhsm:Fake:k")
	if !errors.Is(err, core.ErrPermissionDenied) || !strings.Contains(err.Error(), "refusing the hsmhost socket "+f.socket) || !strings.Contains(err.Error(), "may be written by other users") {
		t.Fatalf("world-writable folder: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// As root, give the folder to nobody: refused unless trusted.
		const nobody = 65534
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		_, err := hsmkey.NewClient(hsmkey.WithSocket(f.socket)).Open(context.Background(), "managedhsm:Fake:k")
		if !errors.Is(err, core.ErrPermissionDenied) || !strings.Contains(err.Error(), "belongs to uid 65534") || !strings.Contains(err.Error(), "WithHostUIDs(65534)") {
			t.Fatalf("folder of another user: %v", err)
		}
		if _, err := hsmkey.NewClient(hsmkey.WithSocket(f.socket), hsmkey.WithHostUIDs(nobody)).Open(context.Background(), "managedhsm:Fake:k"); err != nil {
			t.Fatalf("trusted service user: %v", err)
		}
	}
	if f.signs.Load() != 0 || (os.Geteuid() == 0 && f.conns.Load() != 1) || (os.Geteuid() != 0 && f.conns.Load() != 0) {
		t.Fatalf("%d connections reached the host", f.conns.Load())
	}
}
