package socketserver_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

var ctx = context.Background()

type env struct {
	path string
	srv  *socketserver.Server
	fake *fakebackend.Backend
	sock *socketserver.Socket
}

// start serves one fake backend (plus a "nosign" one for hsmbridge:nosign:)
// on a fresh socket.
func start(t *testing.T, cfg socketserver.SocketConfig) *env {
	t.Helper()
	return startServer(t, cfg, nil)
}

// startServer is start with a chance to set the server's limits first.
func startServer(t *testing.T, cfg socketserver.SocketConfig, adjust func(*socketserver.Server)) *env {
	t.Helper()
	fake := fakebackend.New("simulator")
	nosign := fakebackend.New("nosign").Without(core.OpSign)
	svc, err := hostsvc.New([]hostsvc.Route{
		{Prefix: "managedhsm:", Backend: "simulator"},
		{Prefix: "hsmbridge:nosign:", Backend: "nosign"},
	}, []hostsvc.Backend{fake, nosign})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path == "" {
		// Unix socket paths are short; t.TempDir() can be too long.
		dir, err := os.MkdirTemp("", "hsmsock")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cfg.Path = filepath.Join(dir, "run", "hsmhost.sock")
	}
	sock, err := socketserver.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sock.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := &socketserver.Server{Service: svc, HostVersion: "test"}
	if adjust != nil {
		adjust(srv)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Shutdown(c)
		sock.Remove()
		svc.Close()
	})
	return &env{path: cfg.Path, srv: srv, fake: fake, sock: sock}
}

func dial(t *testing.T, path string) *hostclient.Client {
	t.Helper()
	c, err := hostclient.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEndToEndOperationsVerifiedIndependently(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	c := dial(t, e.path)
	if v, err := c.Hello(ctx, "test"); err != nil || v != "test" {
		t.Fatalf("hello: %q %v", v, err)
	}

	ec, err := c.CreateKey(ctx, "akv:vault=MyHSM,name=ec", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	if err != nil {
		t.Fatal(err)
	}
	if ec.Reference != "managedhsm:MyHSM:ec?version=v1" || ec.Backend != "simulator" || ec.Curve != core.CurveP256 {
		t.Fatalf("created %+v", ec)
	}
	digest := sha256.Sum256([]byte("payload"))
	sig, timing, err := c.Sign(ctx, "managedhsm:MyHSM:ec", ec.ID.Version, digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(ec.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("ECDSA signature does not verify")
	}
	if timing.GetHostNs() == 0 || timing.GetBackendNs() == 0 || timing.GetHostNs() < timing.GetBackendNs() {
		t.Fatalf("timing %v", timing)
	}

	rk, err := c.CreateKey(ctx, "managedhsm:MyHSM:rsa", core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageSign, core.UsageDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	rpub, _ := x509.ParsePKIXPublicKey(rk.PublicKeyDER)
	sig, _, err = c.Sign(ctx, rk.Reference, "", digest[:], core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(rpub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("PSS: %v", err)
	}
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, rpub.(*rsa.PublicKey), []byte("secret"), nil)
	pt, err := c.Decrypt(ctx, rk.Reference, "", ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if err != nil || string(pt) != "secret" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}

	r, err := c.Random(ctx, "", 48)
	if err != nil || len(r) != 48 {
		t.Fatalf("random %d %v", len(r), err)
	}
	keys, err := c.ListKeys(ctx, "managedhsm:MyHSM:")
	if err != nil || len(keys) != 2 || keys[0].Reference != ec.Reference || keys[1].Reference != rk.Reference {
		t.Fatalf("list: %+v %v", keys, err)
	}
	n, err := c.DeleteKey(ctx, "managedhsm:MyHSM:ec")
	if err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	_, err = c.GetKey(ctx, "managedhsm:MyHSM:ec")
	if !errors.Is(err, core.ErrNotFound) || err.Error() != `managedhsm:MyHSM:ec: key not found in backend "simulator"` {
		t.Fatalf("after delete: %v (%s)", err, core.KindOf(err))
	}
}

func TestErrorKindsRoundTrip(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	c := dial(t, e.path)
	digest := make([]byte, 32)
	ecdsa256 := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	for _, tc := range []struct {
		name string
		call func() error
		want error
		text string
	}{
		{"no route", func() error { _, err := c.GetKey(ctx, "hsmbridge:other:k"); return err }, core.ErrNoRoute, "hsmbridge:other:k: "},
		{"bad reference", func() error { _, err := c.GetKey(ctx, "managedhsm:x"); return err }, core.ErrInvalidReference, `"managedhsm:x"`},
		{"undeclared sign", func() error {
			_, _, err := c.Sign(ctx, "hsmbridge:nosign:k", "", digest, ecdsa256)
			return err
		}, core.ErrUnsupported, `backend "nosign" does not support signing`},
		{"bad usage", func() error {
			_, err := c.CreateKey(ctx, "managedhsm:MyHSM:k", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{"fly"}})
			return err
		}, core.ErrInvalidInput, "fly"},
	} {
		err := tc.call()
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %v (kind %s)", tc.name, err, core.KindOf(err))
		}
	}
	if e.fake.Calls(core.OpSign) != 0 {
		t.Fatal("simulator was called")
	}
}

// rawConn speaks the framing directly, to check ids and ordering.
type rawConn struct {
	t *testing.T
	c net.Conn
}

func (r rawConn) send(req *hostapi.Request) {
	if err := hostframe.Write(r.c, req); err != nil {
		r.t.Fatal(err)
	}
}

func (r rawConn) recv() *hostapi.Response {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := hostframe.Read(r.c)
	if err != nil {
		r.t.Fatal(err)
	}
	resp := new(hostapi.Response)
	if err := proto.Unmarshal(frame, resp); err != nil {
		r.t.Fatal(err)
	}
	return resp
}

func TestPipelinedRequestsAnswerOutOfOrder(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	c := dial(t, e.path)
	k, err := c.CreateKey(ctx, "managedhsm:MyHSM:slow", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	e.fake.SignHook = func(d []byte) {
		if d[0] == 1 {
			once.Do(func() { <-release })
		}
	}
	conn, err := net.Dial("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := rawConn{t, conn}
	slow := make([]byte, 32)
	slow[0] = 1
	r.send(&hostapi.Request{Id: 7, Op: &hostapi.Request_Sign{Sign: &hostapi.SignRequest{Reference: k.Reference, Digest: slow,
		Scheme: &hostapi.SignatureScheme{Padding: hostapi.SignaturePadding_SIGNATURE_PADDING_ECDSA, Hash: hostapi.Hash_HASH_SHA256}}}})
	r.send(&hostapi.Request{Id: 8, Op: &hostapi.Request_GetKey{GetKey: &hostapi.GetKeyRequest{Reference: k.Reference}}})
	first := r.recv()
	if first.GetId() != 8 || first.GetKey() == nil {
		t.Fatalf("first response %v, want id 8 (the quick one)", first)
	}
	close(release)
	second := r.recv()
	if second.GetId() != 7 || len(second.GetSign().GetSignature()) == 0 {
		t.Fatalf("second response %v", second)
	}
	pub, _ := x509.ParsePKIXPublicKey(k.PublicKeyDER)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), slow, second.GetSign().GetSignature()) {
		t.Fatal("signature does not verify")
	}

	// The Go client multiplexes the same way: many concurrent calls.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := sha256.Sum256([]byte{byte(i)})
			sig, _, err := c.Sign(ctx, k.Reference, "", d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
			if err == nil && !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig) {
				err = errors.New("bad signature for request " + strconv.Itoa(i))
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOversizeFrameIsRejectedThenClosed(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	conn, err := net.Dial("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], hostframe.MaxSize+1)
	conn.Write(hdr[:])
	r := rawConn{t, conn}
	resp := r.recv()
	if resp.GetId() != 0 || resp.GetError().GetKind() != hostapi.ErrorKind_ERROR_KIND_INVALID_INPUT || !strings.Contains(resp.GetError().GetMessage(), "exceeds") {
		t.Fatalf("response %v", resp)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
	// A frame of exactly the limit is read (and rejected only as a bad Request).
	conn2, _ := net.Dial("unix", e.path)
	defer conn2.Close()
	binary.BigEndian.PutUint32(hdr[:], hostframe.MaxSize)
	conn2.Write(hdr[:])
	conn2.Write(make([]byte, hostframe.MaxSize)) // zeros: field number 0 is invalid protobuf
	resp = rawConn{t, conn2}.recv()
	if !strings.Contains(resp.GetError().GetMessage(), "not a Request") {
		t.Fatalf("limit-sized frame: %v", resp)
	}
}

func TestHelloRejectsOtherProtocolVersions(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	c := dial(t, e.path)
	_, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Hello{Hello: &hostapi.HelloRequest{Version: 2}}})
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "protocol version 2") {
		t.Fatalf("%v", err)
	}
}

func TestSocketModeDefaultsTo0600AndStaleSocketIsReplaced(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	fi, err := os.Stat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(e.path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v", di.Mode())
	}
	// A live host answers: a second Prepare steps aside.
	if _, err := socketserver.Prepare(socketserver.SocketConfig{Path: e.path}); !errors.Is(err, socketserver.ErrAlreadyRunning) {
		t.Fatalf("second Prepare: %v", err)
	}

	// A socket nobody listens on is stale and replaced.
	dir := filepath.Dir(e.path)
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s, err := socketserver.Prepare(socketserver.SocketConfig{Path: stale, Mode: 0o660})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(stale); fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// A regular file is never removed.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o600)
	if _, err := socketserver.Prepare(socketserver.SocketConfig{Path: plain}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
}

func TestSocketGroupWhenRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the socket to another group")
	}
	var g *user.Group
	for _, name := range []string{"daemon", "bin", "sys", "adm", "nogroup"} {
		if x, err := user.LookupGroup(name); err == nil && x.Gid != "0" {
			g = x
			break
		}
	}
	if g == nil {
		t.Skip("no non-root group to test with")
	}
	dir, _ := os.MkdirTemp("", "hsmgrp")
	defer os.RemoveAll(dir)
	e := start(t, socketserver.SocketConfig{Path: filepath.Join(dir, "run", "h.sock"), Mode: 0o660, Group: g.Name})
	fi, _ := os.Stat(e.path)
	gid, _ := strconv.Atoi(g.Gid)
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket gid %d mode %v, want %d 0660", st.Gid, fi.Mode().Perm(), gid)
	}
	di, _ := os.Stat(filepath.Dir(e.path))
	if st := di.Sys().(*syscall.Stat_t); int(st.Gid) != gid || di.Mode().Perm() != 0o750 {
		t.Fatalf("directory gid %d mode %v", st.Gid, di.Mode().Perm())
	}
}

func TestShutdownLetsRunningRequestsAnswer(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	c := dial(t, e.path)
	k, _ := c.CreateKey(ctx, "managedhsm:MyHSM:k", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	entered, release := make(chan struct{}), make(chan struct{})
	e.fake.SignHook = func([]byte) { close(entered); <-release }
	done := make(chan error)
	go func() {
		d := make([]byte, 32)
		_, _, err := c.Sign(ctx, k.Reference, "", d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		done <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { e.srv.Shutdown(ctx); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight request failed: %v", err)
	}
	<-stopped
	e.sock.Remove()
	if _, err := os.Stat(e.path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
