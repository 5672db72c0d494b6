package mhsm

// What is retried, and why each retry is safe.
//
// azcore's retry policy (limits from the max_retries, retry_delay,
// max_retry_delay and try_timeout settings) retries a 408, 429, 500, 502,
// 503 or 504 answer and any transport error, whatever the request, and never
// retries a POST whose answer was cut off mid-body. Neither rule fits
// Managed HSM's two kinds of operation:
//
//   - Operations that change nothing in the HSM: GET (key reads, listings)
//     and POST sign, verify, encrypt, decrypt, wrapkey, unwrapkey and /rng.
//     Carried out twice they leave the HSM as it was, and either answer is
//     right: two signatures of one digest are both valid (ECDSA and PSS
//     signatures differ every time anyway), a decryption or an unwrap gives
//     the same bytes, a wrap or an encryption another valid ciphertext. They
//     are retried after every transient failure, a cut-off answer included.
//   - Operations that change it: create, import, delete, and every other
//     request (PATCH, purge, recover, restore, rotate; unknown requests are
//     counted here). They are retried only when the service cannot have
//     carried them out: a 429 (Managed HSM answers "Request was not
//     processed because too many requests were received") and a connection
//     that was never made (dial, DNS, proxy CONNECT). After a 5xx, a 408, a
//     cut-off answer, a lost connection or a try timeout the change may have
//     been made, and a second create or import would add a second version
//     (a second delete would answer 404 for a key it deleted); the error says
//     so, and what to check, instead.
//
// A 401 challenge and the re-send azkeys makes after it are authentication,
// not a retry: the service refused the request before doing anything.
//
// retryGuard, the transport under azcore's pipeline, applies these rules:
// it reads each answer whole within its try (so a cut is a failure of that
// try, and try_timeout covers the body as well as the headers), and marks
// what must not be retried with azcore's convention, a NonRetriable method.
// It also counts each call's tries, for the error messages.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// readOnlyOps are the POST operations that change nothing in the HSM (the
// last path segment, lower case).
var readOnlyOps = map[string]bool{"sign": true, "verify": true, "encrypt": true, "decrypt": true, "wrapkey": true, "unwrapkey": true}

// changesHSM tells whether a request may change the HSM. One without a
// token cannot: azkeys sends the first request of a client without one to
// learn the challenge, and the service refuses it before anything else.
func changesHSM(r *http.Request) bool {
	if r.Header.Get("Authorization") == "" {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return false
	case http.MethodPost:
		path := strings.TrimSuffix(r.URL.Path, "/")
		if path == "/rng" {
			return false
		}
		return !readOnlyOps[strings.ToLower(path[strings.LastIndexByte(path, '/')+1:])]
	}
	return true
}

// neverSent tells a transport error that happened before the request could
// leave: no connection was made.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// mayHaveRun are the answers azcore retries that do not say the service
// left the request alone (429 does).
func mayHaveRun(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// notRetried marks the failure of a request that changes the HSM and may
// have been carried out. azcore's retry policy does not retry an error with
// a NonRetriable method.
type notRetried struct{ err error }

func (e *notRetried) Error() string { return e.err.Error() }
func (e *notRetried) Unwrap() error { return e.err }
func (*notRetried) NonRetriable()   {}

// cutOff is an answer that broke off before its end.
type cutOff struct{ err error }

func (e *cutOff) Error() string { return "the answer was cut off: " + e.err.Error() }
func (e *cutOff) Unwrap() error { return e.err }

// triesKey holds a call's try counter (*atomic.Int32) in its context.
type triesKey struct{}

// counts are what the backend reports in Stats.
type counts struct {
	retries   atomic.Uint64 // tries after a call's first (a 401 challenge's re-send is not one)
	throttled atomic.Uint64 // 429 answers
}

// retryGuard applies the rules above around the real transport.
type retryGuard struct {
	next   policy.Transporter
	counts *counts
}

func (g retryGuard) Do(req *http.Request) (*http.Response, error) {
	resp, err := g.next.Do(req)
	if n, ok := req.Context().Value(triesKey{}).(*atomic.Int32); ok && (err != nil || resp.StatusCode != http.StatusUnauthorized) {
		if n.Add(1) > 1 && g.counts != nil {
			g.counts.retries.Add(1)
		}
	}
	if err == nil && resp.StatusCode == http.StatusTooManyRequests && g.counts != nil {
		g.counts.throttled.Add(1)
	}
	change := changesHSM(req)
	if err != nil {
		if change && !neverSent(err) {
			return nil, &notRetried{err}
		}
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		if change {
			return nil, &notRetried{&cutOff{err}}
		}
		return nil, &cutOff{err}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if change && mayHaveRun(resp.StatusCode) {
		return nil, &notRetried{runtime.NewResponseError(resp)}
	}
	return resp, nil
}

// callError is a failed call's error with what was tried, for messages.
type callError struct {
	err        error
	tries      int  // requests sent and not answered 401
	callerGone bool // the caller's context ended
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// withTries adds a try counter to ctx.
func withTries(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, triesKey{}, n), n
}
