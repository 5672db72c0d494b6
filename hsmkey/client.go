package hsmkey

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/socketpath"
)

// DefaultTimeout bounds one request when neither [WithTimeout] nor
// $HSMBRIDGE_TIMEOUT_MS says otherwise (the OpenSSL provider's default).
const DefaultTimeout = 30 * time.Second

// Client is a connection to hsmhost that any number of goroutines and keys
// share; see the package documentation for how it pipelines and
// reconnects. The zero value is not usable: use [NewClient].
type Client struct {
	path    string
	trusted []uint32
	timeout time.Duration

	mu     sync.Mutex
	cur    *conn // nil before the first request and after Close
	closed bool
	// dialing is a token: one goroutine connects while the others wait
	// for its connection (or their deadline) instead of dialling too.
	dialing chan struct{}
}

// Option configures a [Client].
type Option func(*Client)

// WithSocket names hsmhost's socket instead of the default (see the package
// documentation).
func WithSocket(path string) Option { return func(c *Client) { c.path = path } }

// WithHostUIDs adds users whose hsmhost socket is trusted, besides root and
// the program's own effective uid: the uid hsmhost runs as when it is a
// service user (the provider's hsmbridge_host_uid).
func WithHostUIDs(uids ...uint32) Option {
	return func(c *Client) { c.trusted = append(c.trusted, uids...) }
}

// WithTimeout bounds each request, connecting included (default
// $HSMBRIDGE_TIMEOUT_MS, else [DefaultTimeout]). d ≤ 0 keeps the default.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// NewClient returns a client of the hsmhost the options name. It connects
// on first use, not here.
func NewClient(opts ...Option) *Client {
	c := &Client{path: socketpath.Default(), timeout: envTimeout(), dialing: make(chan struct{}, 1)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// envTimeout reads $HSMBRIDGE_TIMEOUT_MS as the provider does (1 to
// 3600000 ms); anything else is the default.
func envTimeout() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("HSMBRIDGE_TIMEOUT_MS")); err == nil && ms >= 1 && ms <= 3600000 {
		return time.Duration(ms) * time.Millisecond
	}
	return DefaultTimeout
}

var (
	defaultOnce   sync.Once
	defaultClient *Client
)

// Open opens a key through the process's default client: the socket and
// timeout from the environment (see the package documentation), shared by
// every key opened this way. It is [Client.Open] on that client.
func Open(ctx context.Context, ref string) (Key, error) {
	defaultOnce.Do(func() { defaultClient = NewClient() })
	return defaultClient.Open(ctx, ref)
}

// Socket is the path of the socket the client talks to.
func (c *Client) Socket() string { return c.path }

// Close closes the client's connection; requests in flight fail, and keys
// opened from it fail from now on.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.cur
	c.cur, c.closed = nil, true
	c.mu.Unlock()
	if cn != nil {
		cn.close()
	}
	return nil
}

// do sends req, about the key ref, and returns the host's answer. A
// request that failed because the connection broke under it is sent once
// more, on a fresh connection: every request this package makes is
// idempotent. An error the host answered is returned as it came (its
// message names the reference); this package's own errors (a socket that
// cannot be reached, a timeout) get ref in front.
func (c *Client) do(ctx context.Context, ref string, req *hostapi.Request) (*hostapi.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cn, err := c.conn(ctx)
		if err != nil {
			return nil, withRef(ref, err)
		}
		resp, err := cn.roundTrip(ctx, req)
		if resp != nil || err == nil { // answered, with a result or an error
			return resp, err
		}
		var broken *brokenError
		if !errors.As(err, &broken) {
			return nil, withRef(ref, err)
		}
		if attempt == 1 {
			return nil, withRef(ref, broken.err)
		}
	}
}

func withRef(ref string, err error) error {
	var e *core.Error
	if errors.As(err, &e) {
		return &core.Error{Kind: e.Kind, Message: ref + ": " + e.Message, Err: e.Err}
	}
	return core.Errorf(core.KindInternal, "%s: %w", ref, err)
}

// conn returns the current connection, or makes one when there is none or
// it broke.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	if cn, err := c.current(); cn != nil || err != nil {
		return cn, err
	}
	select {
	case c.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, timeoutError(ctx, c.path)
	}
	defer func() { <-c.dialing }()
	// Another goroutine may have connected while this one waited.
	if cn, err := c.current(); cn != nil || err != nil {
		return cn, err
	}
	cn, err := dial(ctx, c.path, c.trusted)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		go cn.close()
		return nil, errClosed()
	}
	c.cur = cn // the connection it replaces broke, and is closed already
	return cn, nil
}

func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed()
	}
	if c.cur != nil && c.cur.usable() {
		return c.cur, nil
	}
	return nil, nil
}

func errClosed() error {
	return core.Errorf(core.KindUnavailable, "hsmkey: the client is closed")
}
