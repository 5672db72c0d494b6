package sdk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
)

// echoBackend "signs" by reversing the digest, after sleeping as many
// milliseconds as the digest's first byte says, so that answers finish out
// of order; key "gone" is not found.
type echoBackend struct{}

func (echoBackend) GetKey(_ context.Context, id core.KeyID) (core.KeyInfo, error) {
	if id.Name == "gone" {
		return core.KeyInfo{}, core.Errorf(core.KindNotFound, "key %q not found", id.Name)
	}
	return core.KeyInfo{ID: id, Type: core.KeyTypeEC, Curve: core.CurveP256, Enabled: true}, nil
}

func (echoBackend) Sign(ctx context.Context, _ core.KeyID, digest []byte, _ core.SignatureScheme) ([]byte, error) {
	select {
	case <-time.After(time.Duration(digest[0]) * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := bytes.Clone(digest)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func (echoBackend) SignatureSchemes() []string  { return []string{"ecdsa-sha256"} }
func (echoBackend) EncryptionSchemes() []string { return nil }

func newServer() *server {
	return &server{impl: echoBackend{}, name: "echo", version: "test", log: hclog.NewNullLogger()}
}

// openData runs OpenDataPath and connects to it as the host does.
func openData(t testing.TB, s *server) *Client {
	t.Helper()
	r, err := s.OpenDataPath(context.Background(), &pb.OpenDataPathRequest{})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := dialData(context.Background(), r.GetAddress(), r.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{rpc: pb.NewBackendClient(nil), desc: s.description(), data: dc}
	t.Cleanup(c.Close)
	return c
}

var ecdsaSHA256 = core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}

func TestDataPathAnswersEachCallerOutOfOrder(t *testing.T) {
	c := openData(t, newServer())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := make([]byte, 32)
			digest[0] = byte((64 - i) % 16) // later callers finish first
			digest[31] = byte(i)
			sig, _, err := c.SignTimed(context.Background(), core.KeyID{Name: "k"}, digest, ecdsaSHA256)
			if err != nil {
				errs <- err
				return
			}
			if sig[0] != byte(i) || sig[31] != digest[0] {
				errs <- fmt.Errorf("caller %d got the answer to another request: % x", i, sig)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDataPathCarriesErrorKinds(t *testing.T) {
	c := openData(t, newServer())
	_, err := c.GetKey(context.Background(), core.KeyID{Name: "gone"})
	if !errors.Is(err, core.ErrNotFound) || err.Error() != `key "gone" not found` {
		t.Fatalf("got %v", err)
	}
	if _, err := c.GetKey(context.Background(), core.KeyID{Name: "k"}); err != nil {
		t.Fatalf("the connection broke after an error: %v", err)
	}
}

func TestDataPathCallGivesUpAtItsDeadline(t *testing.T) {
	c := openData(t, newServer())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	slow := make([]byte, 32)
	slow[0] = 200
	start := time.Now()
	_, _, err := c.SignTimed(ctx, core.KeyID{Name: "k"}, slow, ecdsaSHA256)
	if !errors.Is(err, core.ErrUnavailable) || time.Since(start) > 150*time.Millisecond {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	if _, err := c.GetKey(context.Background(), core.KeyID{Name: "k"}); err != nil {
		t.Fatalf("the connection broke after a timeout: %v", err)
	}
}

func TestDataPathFailsWaitingCallsWhenThePluginGoes(t *testing.T) {
	c := openData(t, newServer())
	done := make(chan error, 8)
	for range 8 {
		go func() {
			slow := make([]byte, 32)
			slow[0] = 250
			_, _, err := c.SignTimed(context.Background(), core.KeyID{Name: "k"}, slow, ecdsaSHA256)
			done <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	c.data.c.Close() // what the plugin's death looks like from the host
	for range 8 {
		select {
		case err := <-done:
			if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "data connection lost") {
				t.Fatalf("waiting call: %v", err)
			}
		case <-time.After(100 * time.Millisecond):
			t.Fatal("a waiting call was not failed when the connection went")
		}
	}
	if _, err := c.GetKey(context.Background(), core.KeyID{Name: "k"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("a call after the loss: %v", err)
	}
}

func TestDataPathRefusesAWrongTokenAndServesTheHost(t *testing.T) {
	s := newServer()
	r, err := s.OpenDataPath(context.Background(), &pb.OpenDataPathRequest{})
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := dialData(context.Background(), r.GetAddress(), []byte("not the token"))
	if err != nil {
		t.Fatal(err)
	}
	c0 := &Client{rpc: pb.NewBackendClient(nil), desc: s.description(), data: intruder}
	if _, err := c0.GetKey(context.Background(), core.KeyID{Name: "k"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("a connection with the wrong token was served: %v", err)
	}
	dc, err := dialData(context.Background(), r.GetAddress(), r.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{rpc: pb.NewBackendClient(nil), desc: s.description(), data: dc}
	defer c.Close()
	if _, err := c.GetKey(context.Background(), core.KeyID{Name: "k"}); err != nil {
		t.Fatalf("the host's connection after a refused one: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(r.GetAddress())); !os.IsNotExist(err) {
		t.Fatalf("the data socket's directory is still there once the host connected: %v", err)
	}
}

func TestDataPathSocketMustBeInAPrivateDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "data.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := dialData(context.Background(), path, nil); err == nil || !strings.Contains(err.Error(), "closed to others") {
		t.Fatalf("a socket in a directory others can enter: %v", err)
	}
}

func TestDataFrameLimits(t *testing.T) {
	big := &pb.DataRequest{Op: &pb.DataRequest_Sign{Sign: &pb.SignRequest{Message: make([]byte, maxDataFrame)}}}
	if _, err := appendDataFrame(nil, big); err == nil {
		t.Fatal("a frame over the limit was written")
	}
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		b.Write([]byte{0xff, 0xff, 0xff, 0xff})
		b.Close()
	}()
	var m pb.DataRequest
	if err := readDataFrame(bufio.NewReader(a), &m); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("a frame header over the limit: %v", err)
	}
}
