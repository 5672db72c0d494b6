package hsmkey

// One connection to hsmhost. Writers take wmu to put a whole frame on the
// socket; one reader goroutine (readLoop) reads answers and hands each to
// the channel registered under its request id. When the connection breaks,
// for whatever reason, fail records why once, closes the socket and closes
// every waiting channel, and the connection is never used again: the
// Client replaces it. A waiter whose channel closes got no answer; it
// reports a brokenError, which is the one error the Client retries.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
)

// session names this process to hsmhost (HelloRequest.session): one per
// process, as the OpenSSL provider sends.
var session = func() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

type conn struct {
	nc   net.Conn
	path string
	wmu  sync.Mutex // held while one frame is written

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *hostapi.Response
	err     error // why the connection is unusable, once it is
	done    chan struct{}
}

// brokenError is a request that failed because its connection broke before
// an answer came: the request may be sent again on another connection.
type brokenError struct{ err error }

func (e *brokenError) Error() string { return e.err.Error() }
func (e *brokenError) Unwrap() error { return e.err }

// dial connects to the socket after the trust checks, checks the peer, and
// says Hello.
func dial(ctx context.Context, path string, trusted []uint32) (*conn, error) {
	if err := checkSocketPath(path, trusted); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, core.Errorf(core.KindUnavailable, "cannot reach hsmhost at %s (is `hsmhost serve` running?): %v", path, unwrapOpError(err))
	}
	if err := checkPeer(nc, path, trusted); err != nil {
		nc.Close()
		return nil, err
	}
	c := &conn{nc: nc, path: path, pending: map[uint64]chan *hostapi.Response{}, done: make(chan struct{})}
	go c.readLoop()
	resp, err := c.roundTrip(ctx, &hostapi.Request{Op: &hostapi.Request_Hello{Hello: &hostapi.HelloRequest{
		Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1,
		Client:  fmt.Sprintf("hsmbridge-go/hsmkey pid=%d", os.Getpid()),
		Session: session,
	}}})
	if err == nil && resp.GetHello() == nil {
		err = unexpected(path, resp)
	}
	if err == nil && resp.GetHello().GetVersion() != hostapi.ProtocolVersion_PROTOCOL_VERSION_1 {
		err = core.Errorf(core.KindUnsupported, "hsmhost at %s speaks protocol version %d, this program %d",
			path, resp.GetHello().GetVersion(), hostapi.ProtocolVersion_PROTOCOL_VERSION_1)
	}
	if err != nil {
		c.close()
		var b *brokenError
		if errors.As(err, &b) { // not retried: a fresh connection that breaks at once is a host problem
			err = b.err
		}
		return nil, err
	}
	return c, nil
}

// unwrapOpError drops net.OpError's "dial unix <path>:" prefix, since our
// message names the path already.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func (c *conn) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// fail marks the connection broken (the first cause wins), closes it and
// wakes every waiter.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for id, ch := range c.pending {
		delete(c.pending, id)
		close(ch)
	}
	c.mu.Unlock()
	c.nc.Close()
}

func (c *conn) close() {
	c.fail(core.Errorf(core.KindUnavailable, "hsmkey: connection to hsmhost at %s closed", c.path))
	<-c.done
}

func (c *conn) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.nc)
	for {
		body, err := hostframe.Read(r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				err = errors.New("hsmhost closed the connection")
			}
			c.fail(core.Errorf(core.KindUnavailable, "connection to hsmhost at %s lost: %v", c.path, err))
			return
		}
		resp := new(hostapi.Response)
		if err := proto.Unmarshal(body, resp); err != nil {
			c.fail(core.Errorf(core.KindInternal, "hsmhost at %s sent a malformed response: %v", c.path, err))
			return
		}
		if resp.GetId() == 0 && resp.GetError() != nil {
			// A protocol error (or a refusal, such as too many connections)
			// that the host reports before it closes the connection.
			c.fail(hostError(resp.GetError()))
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.GetId()]
		delete(c.pending, resp.GetId())
		c.mu.Unlock()
		if ch != nil { // nil: its caller gave up waiting
			ch <- resp
		}
	}
}

// roundTrip sends req under a fresh id and waits for its answer. The error
// is the host's (as *core.Error) when it answered with one, a *brokenError
// when the connection broke first, or a timeout.
func (c *conn) roundTrip(ctx context.Context, req *hostapi.Request) (*hostapi.Response, error) {
	ch := make(chan *hostapi.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, &brokenError{err}
	}
	c.nextID++
	req.Id = c.nextID
	c.pending[req.Id] = ch
	c.mu.Unlock()

	frame, err := encodeFrame(req)
	if err != nil {
		c.forget(req.Id)
		return nil, err
	}
	if err := c.write(ctx, frame); err != nil {
		c.fail(core.Errorf(core.KindUnavailable, "sending to hsmhost at %s: %v", c.path, unwrapOpError(err)))
		return nil, &brokenError{c.cause()}
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, &brokenError{c.cause()}
		}
		if resp.GetError() != nil {
			return resp, hostError(resp.GetError())
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(req.Id)
		return nil, timeoutError(ctx, c.path)
	}
}

func (c *conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *conn) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// encodeFrame is req as one frame (hostframe's framing).
func encodeFrame(req *hostapi.Request) ([]byte, error) {
	buf, err := hostframe.Encode(req)
	var big *hostframe.TooLargeError
	switch {
	case errors.As(err, &big):
		return nil, core.Errorf(core.KindInvalidInput, "hsmkey: a request of %d bytes exceeds the protocol's %d-byte frame", big.Size, hostframe.MaxSize)
	case err != nil:
		return nil, core.Errorf(core.KindInternal, "hsmkey: encoding a request: %v", err)
	}
	return buf, nil
}

// write puts one frame on the socket by the context's deadline. A write
// cut short leaves half a frame behind, so its caller fails the connection.
func (c *conn) write(ctx context.Context, frame []byte) error {
	deadline, _ := ctx.Deadline()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(deadline)
	_, err := c.nc.Write(frame)
	return err
}

func timeoutError(ctx context.Context, path string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return core.Errorf(core.KindUnavailable, "hsmhost at %s did not answer in time: %w", path, ctx.Err())
	}
	return core.Errorf(core.KindUnavailable, "waiting for hsmhost at %s: %w", path, ctx.Err())
}

// hostError is the host's error as the domain's: its kind (the enum's
// name, ERROR_KIND_NOT_FOUND for core.KindNotFound, by the schema's naming
// rule) and its message verbatim.
func hostError(e *hostapi.Error) error {
	kind := core.KindInternal // also for a kind newer than this program
	if _, known := hostapi.ErrorKind_name[int32(e.GetKind())]; known && e.GetKind() != hostapi.ErrorKind_ERROR_KIND_UNSPECIFIED {
		kind = core.ErrorKind(strings.ToLower(strings.TrimPrefix(e.GetKind().String(), "ERROR_KIND_")))
	}
	return &core.Error{Kind: kind, Message: e.GetMessage()}
}

func unexpected(path string, resp *hostapi.Response) error {
	return core.Errorf(core.KindInternal, "hsmhost at %s answered request %d with an unexpected result %T", path, resp.GetId(), resp.GetResult())
}
