// Package socketserver serves hsmhost's Unix-socket protocol (api/hostapi)
// to the OpenSSL front end and to the hsmhost CLI.
//
// Each connection has one goroutine reading length-prefixed Request frames.
// Every request is then handled on a goroutine of its own, from a pool of
// workers that outlive one request, at most MaxInflight per connection
// (the reader stops reading when the limit is reached, which
// pushes back on the client), and its Response is written under the
// connection's write lock with the request's id, so a client that pipelines
// gets answers in completion order. A frame over MaxFrame or a body that is
// not a Request is a protocol error: the server answers with id 0 and closes
// the connection, since the stream can no longer be trusted.
//
// What a client can make the server hold is bounded. A connection may idle
// between frames as long as it likes, but once the first byte of a frame
// has come the rest must follow within FrameTimeout, and a response must be
// taken within the same time; otherwise the connection is closed. A frame's
// buffer grows with the bytes that arrive, not with the length its header
// announces (see hostframe.Read). And each peer uid, read with SO_PEERCRED at
// accept, may hold at most MaxConnsPerUID connections; one more is answered
// with an error and closed at once. Root is not exempt: in a container every
// client is root, and the limit is a bound on memory, not a permission.
//
// The same credentials, completed once per connection with the peer's
// supplementary groups and executable from /proc (callerOf), are the
// caller of every request on the connection: the server puts them in the
// request's context and hostsvc checks its access policy against them.
// Refusals are logged once per uid per refusalLogEvery, with a count.
package socketserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/plugins/sdk/workpool"
)

// DefaultMaxInflight bounds the concurrent requests of one connection.
const DefaultMaxInflight = 64

// handlerIdle is how long a connection's idle handler waits for the next
// request before it ends.
const handlerIdle = 30 * time.Second

// DefaultRequestTimeout bounds one request, backend call included.
const DefaultRequestTimeout = 60 * time.Second

// DefaultFrameTimeout bounds how long a frame, once begun, takes to arrive
// (and a response to be read).
const DefaultFrameTimeout = 10 * time.Second

// DefaultMaxConnsPerUID bounds the open connections of one peer uid.
const DefaultMaxConnsPerUID = 256

// refusalLogEvery spaces the log lines about one uid's refused connections.
const refusalLogEvery = 10 * time.Second

// Server answers hostapi requests with a hostsvc.Service.
type Server struct {
	Service        *hostsvc.Service
	Log            hclog.Logger
	HostVersion    string
	MaxInflight    int
	RequestTimeout time.Duration
	// FrameTimeout: zero means DefaultFrameTimeout.
	FrameTimeout time.Duration
	// MaxConnsPerUID: zero means DefaultMaxConnsPerUID, negative no limit.
	MaxConnsPerUID int

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	peers    map[uint32]*peer // by SO_PEERCRED uid, while it has connections
	sessions map[string]int   // open connections per application session
	refused  uint64           // connections refused over MaxConnsPerUID, since start
	closing  bool
	ctx      context.Context
	cancel   context.CancelFunc
	connsWG  sync.WaitGroup
	listener net.Listener
}

func (s *Server) init() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.conns = map[net.Conn]struct{}{}
		s.sessions = map[string]int{}
		s.peers = map[uint32]*peer{}
		if s.Log == nil {
			s.Log = hclog.NewNullLogger()
		}
		if s.MaxInflight <= 0 {
			s.MaxInflight = DefaultMaxInflight
		}
		if s.RequestTimeout <= 0 {
			s.RequestTimeout = DefaultRequestTimeout
		}
		if s.FrameTimeout <= 0 {
			s.FrameTimeout = DefaultFrameTimeout
		}
		if s.MaxConnsPerUID == 0 {
			s.MaxConnsPerUID = DefaultMaxConnsPerUID
		}
	}
}

// Serve accepts connections until the listener is closed by Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		return errors.New("server is shut down")
	}
	s.listener = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		cred, known := peerCred(c)
		uid := cred.uid
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		if known && !s.admit(uid) {
			s.mu.Unlock()
			s.refuse(c, uid)
			continue
		}
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go s.serveConn(c, cred, known)
	}
}

// Stats is a snapshot of the server's clients, which the metrics read when
// scraped (so that counting them costs requests nothing).
type Stats struct {
	Connections int    // open connections
	Sessions    int    // application processes (sessions named in a hello) with a connection open
	Refused     uint64 // connections refused over max_connections_per_uid since start
}

// Stats reports the server's clients now.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Connections: len(s.conns), Sessions: len(s.sessions), Refused: s.refused}
}

// ucred is what SO_PEERCRED tells of a connection's peer.
type ucred struct {
	uid, gid uint32
	pid      int32
}

// peer counts one uid's connections, and those refused since the last log
// line about it; likewise its requests the access policy refused, and those
// a backend refused as permission_denied (an HSM role it lacks).
type peer struct {
	open, refused int
	warned        time.Time
	denied        [2]int       // by deniedBy
	deniedWarned  [2]time.Time // by deniedBy
}

// Who refused a request with permission_denied.
const (
	deniedByPolicy  = 0 // hsmhost's access policy (the error names no backend)
	deniedByBackend = 1 // the backend, which hsmhost asked
)

// admit counts a new connection of uid, or reports that uid is at its
// limit. s.mu is held.
func (s *Server) admit(uid uint32) bool {
	p := s.peers[uid]
	if p == nil {
		p = &peer{}
		s.peers[uid] = p
	}
	if s.MaxConnsPerUID > 0 && p.open >= s.MaxConnsPerUID {
		p.refused++
		s.refused++
		return false
	}
	p.open++
	return true
}

func (s *Server) release(uid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[uid]; p != nil {
		if p.open--; p.open <= 0 {
			delete(s.peers, uid)
		}
	}
}

// refuse answers a connection over its uid's limit with an error (id 0, as
// for protocol errors, so a client that reads sees why) and closes it. The
// log says so once per refusalLogEvery per uid, with the count since.
func (s *Server) refuse(c net.Conn, uid uint32) {
	s.mu.Lock()
	var refused int
	if p := s.peers[uid]; p != nil && time.Since(p.warned) >= refusalLogEvery {
		refused, p.refused, p.warned = p.refused, 0, time.Now()
	}
	s.mu.Unlock()
	if refused > 0 {
		s.Log.Warn("refusing connection: too many connections from one uid (max_connections_per_uid)",
			"uid", uid, "limit", s.MaxConnsPerUID, "refused_since_last_warning", refused)
	}
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	hostframe.Write(c, errorResponse(0, core.Errorf(core.KindUnavailable,
		"hsmhost refuses a connection: uid %d already has %d open, the limit set by max_connections_per_uid in hsmhost's configuration",
		uid, s.MaxConnsPerUID)))
	c.Close()
}

// logDenied logs a request refused with permission_denied, saying who
// refused it: hsmhost's access policy, or the backend (whose errors name
// it). Each at once for a uid's first, then once per refusalLogEvery with
// the count since.
func (s *Server) logDenied(c *hostsvc.Caller, req *hostapi.Request, e *hostapi.Error) {
	by, what := deniedByPolicy, "request refused by the access policy"
	if e.GetBackend() != "" {
		by, what = deniedByBackend, "request refused by the backend: permission denied"
	}
	n := 1
	if c.Known {
		s.mu.Lock()
		p := s.peers[c.UID]
		n = 0
		if p != nil {
			p.denied[by]++
			if time.Since(p.deniedWarned[by]) >= refusalLogEvery {
				n, p.denied[by], p.deniedWarned[by] = p.denied[by], 0, time.Now()
			}
		}
		s.mu.Unlock()
	}
	if n > 0 {
		args := []any{"op", opName(req), "uid", peerLabel(c.UID, c.Known), "pid", c.PID, "exe", c.Exe,
			"refused_since_last_warning", n, "error", e.GetMessage()}
		if by == deniedByBackend {
			args = append(args, "backend", e.GetBackend())
		}
		s.Log.Warn(what, args...)
	}
}

// setReadDeadline sets c's read deadline unless the server is shutting
// down, whose own deadline it must not undo; it reports whether to go on.
func (s *Server) setReadDeadline(c net.Conn, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	c.SetReadDeadline(t)
	return true
}

// Shutdown stops accepting, stops reading new requests, lets running ones
// answer, and closes the connections; when ctx ends first it cancels the
// running requests and closes at once.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.init()
	s.closing = true
	if s.listener != nil {
		s.listener.Close()
	}
	for c := range s.conns {
		if uc, ok := c.(*net.UnixConn); ok {
			uc.CloseRead()
		} else {
			c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
}

// serveConn reads c's requests; cred is its peer's, counted by uid when
// known. The caller, with its groups and executable, is worked out once
// here, and every request of the connection is made in its name.
func (s *Server) serveConn(c net.Conn, cred ucred, counted bool) {
	uid := cred.uid
	caller := callerOf(cred, counted)
	base := hostsvc.WithCaller(s.ctx, &caller)
	var session string // from the connection's Hello
	// Handlers keep their goroutines between requests (workpool), and with
	// them the stacks that signing grew.
	pool := workpool.New(s.MaxInflight, handlerIdle)
	defer func() {
		pool.Wait()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if counted {
			s.release(uid)
		}
		s.leaveSession(session)
		s.connsWG.Done()
	}()
	var wmu sync.Mutex
	write := func(resp *hostapi.Response) {
		wmu.Lock()
		defer wmu.Unlock()
		c.SetWriteDeadline(time.Now().Add(s.FrameTimeout))
		if err := hostframe.Write(c, resp); err != nil {
			// Part of a frame may have gone: the stream is done for.
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.Log.Warn("closing connection: response not read within frame_timeout", "id", resp.GetId(), "timeout", s.FrameTimeout, "uid", peerLabel(uid, counted))
			} else {
				s.Log.Debug("writing response failed", "id", resp.GetId(), "error", err)
			}
			c.Close()
		}
	}
	r := bufio.NewReader(c)
	for {
		// Idle between frames without a deadline; the frame timeout starts
		// with a frame's first byte.
		if !s.setReadDeadline(c, time.Time{}) {
			return
		}
		_, err := r.Peek(1)
		if err == nil {
			if !s.setReadDeadline(c, time.Now().Add(s.FrameTimeout)) {
				return
			}
		}
		var frame []byte
		if err == nil {
			frame, err = hostframe.Read(r)
		}
		if err != nil {
			var big *hostframe.TooLargeError
			switch {
			case errors.As(err, &big):
				s.Log.Warn("closing connection after oversize frame", "size", big.Size)
				write(errorResponse(0, core.Errorf(core.KindInvalidInput, "protocol error: %s; closing the connection", big)))
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.Log.Warn("closing connection: frame not completed within frame_timeout", "timeout", s.FrameTimeout, "uid", peerLabel(uid, counted))
				write(errorResponse(0, core.Errorf(core.KindInvalidInput,
					"protocol error: frame not completed within %s (frame_timeout); closing the connection", s.FrameTimeout)))
			case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
				s.Log.Debug("connection read failed", "error", err)
			}
			return
		}
		start := time.Now()
		req := new(hostapi.Request)
		if err := proto.Unmarshal(frame, req); err != nil {
			write(errorResponse(0, core.Errorf(core.KindInvalidInput, "protocol error: frame is not a Request: %v; closing the connection", err)))
			return
		}
		if h := req.GetHello(); h != nil && session == "" && h.GetSession() != "" {
			session = h.GetSession()
			s.joinSession(session)
		}
		session := session
		pool.Go(func() { write(s.handle(base, &caller, req, start, session)) })
	}
}

// peerLabel is a connection's uid for log lines.
func peerLabel(uid uint32, known bool) string {
	if !known {
		return "unknown"
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func errorResponse(id uint64, err error) *hostapi.Response {
	return &hostapi.Response{Id: id, Error: &hostapi.Error{
		Kind: KindToProto(core.KindOf(err)), Message: err.Error(), Backend: hostsvc.BackendOf(err)}}
}

// A session is an application process (the front end makes one at load and
// a new one in a forked child): its session keys stop working when its last
// connection closes.
func (s *Server) joinSession(session string) {
	s.mu.Lock()
	s.sessions[session]++
	s.mu.Unlock()
}

func (s *Server) leaveSession(session string) {
	if session == "" {
		return
	}
	s.mu.Lock()
	s.sessions[session]--
	ended := s.sessions[session] <= 0
	if ended {
		delete(s.sessions, session)
	}
	s.mu.Unlock()
	if ended {
		s.Log.Debug("session ended", "session", session)
		ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout)
		defer cancel()
		s.Service.EndSession(ctx, session)
	}
}

// handle runs one request; it never returns nil. base carries the
// connection's caller; session is its application session, if its Hello
// named one.
func (s *Server) handle(base context.Context, caller *hostsvc.Caller, req *hostapi.Request, start time.Time, session string) (resp *hostapi.Response) {
	ctx, cancel := context.WithTimeout(base, s.RequestTimeout)
	defer cancel()
	timing := &hostapi.Timing{}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("request panicked", "id", req.GetId(), "panic", p)
			resp = errorResponse(req.GetId(), core.Errorf(core.KindInternal, "internal error in hsmhost"))
		}
		timing.HostNs = uint64(time.Since(start))
		resp.Timing = timing
		if resp.Error.GetKind() == hostapi.ErrorKind_ERROR_KIND_PERMISSION_DENIED {
			s.logDenied(caller, req, resp.Error)
		}
		// Checked first: the arguments cost allocations even when not logged.
		if resp.Error != nil && s.Log.IsDebug() {
			s.Log.Debug("request failed", "id", req.GetId(), "op", opName(req), "kind", resp.Error.Kind, "error", resp.Error.Message)
		} else if resp.Error == nil && s.Log.IsTrace() {
			s.Log.Trace("request done", "id", req.GetId(), "op", opName(req), "ns", timing.HostNs)
		}
	}()
	svc := s.Service
	id := req.GetId()
	fail := func(err error) *hostapi.Response { return errorResponse(id, err) }
	keyResp := func(k hostsvc.Key, err error) *hostapi.Response {
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Key{Key: KeyInfoToProto(k.Reference, k.Backend, k.KeyInfo)}}
	}
	maskedResp := func(blob core.MaskedKey, k hostsvc.Key, err error) *hostapi.Response {
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Masked{Masked: &hostapi.MaskedKeyResponse{
			Blob: blob, Key: KeyInfoToProto(k.Reference, k.Backend, k.KeyInfo)}}}
	}

	switch op := req.Op.(type) {
	case *hostapi.Request_Hello:
		if v := op.Hello.GetVersion(); v != hostapi.ProtocolVersion_PROTOCOL_VERSION_1 {
			return fail(core.Errorf(core.KindUnsupported, "protocol version %d is not supported: this hsmhost (%s) speaks version %d",
				int32(v), s.HostVersion, int32(hostapi.ProtocolVersion_PROTOCOL_VERSION_1)))
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Hello{Hello: &hostapi.HelloResponse{
			Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1, HostVersion: s.HostVersion}}}

	case *hostapi.Request_GetKey:
		return keyResp(svc.GetKey(ctx, op.GetKey.GetReference()))

	case *hostapi.Request_Sign:
		m := op.Sign
		sig, tm, err := svc.SignWithMessage(ctx, m.GetReference(), m.GetVersion(), m.GetDigest(), m.GetMessage(), SignatureSchemeFromProto(m.GetScheme()))
		timing.BackendNs, timing.PluginNs = tm.Backend, tm.Plugin
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Sign{Sign: &hostapi.SignResponse{Signature: sig}}}

	case *hostapi.Request_Decrypt:
		m := op.Decrypt
		pt, tm, err := svc.DecryptTimed(ctx, m.GetReference(), m.GetVersion(), m.GetCiphertext(), EncryptionSchemeFromProto(m.GetScheme()))
		timing.BackendNs, timing.PluginNs = tm.Backend, tm.Plugin
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Decrypt{Decrypt: &hostapi.DecryptResponse{Plaintext: pt}}}

	case *hostapi.Request_WrapKey, *hostapi.Request_UnwrapKey:
		m, wrapping := req.GetWrapKey(), true
		if m == nil {
			m, wrapping = req.GetUnwrapKey(), false
		}
		alg, err := core.ParseWrapAlgorithm(m.GetAlgorithm())
		if err != nil {
			return fail(core.Errorf(core.KindOf(err), "%s: %s", m.GetReference(), err))
		}
		start := time.Now()
		var data []byte
		if wrapping {
			data, err = svc.WrapKey(ctx, m.GetReference(), m.GetVersion(), m.GetData(), alg)
		} else {
			data, err = svc.UnwrapKey(ctx, m.GetReference(), m.GetVersion(), m.GetData(), alg)
		}
		timing.BackendNs = uint64(time.Since(start))
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Wrapped{Wrapped: &hostapi.WrapKeyResponse{Data: data}}}

	case *hostapi.Request_Random:
		data, err := svc.Random(ctx, op.Random.GetReference(), int(op.Random.GetLength()))
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Random{Random: &hostapi.RandomResponse{Data: data}}}

	case *hostapi.Request_CreateKey:
		m := op.CreateKey
		spec := core.KeySpec{Type: KeyTypeFromProto(m.GetKeyType()), Bits: int(m.GetBits()), Curve: core.Curve(m.GetCurve())}
		usages, err := parseUsages(m.GetReference(), m.GetOps())
		if err != nil {
			return fail(err)
		}
		spec.Usages = usages
		return keyResp(svc.CreateKey(ctx, m.GetReference(), spec))

	case *hostapi.Request_ImportKey:
		m := op.ImportKey
		usages, err := parseUsages(m.GetReference(), m.GetOps())
		if err != nil {
			return fail(err)
		}
		return keyResp(svc.ImportKey(ctx, m.GetReference(), m.GetPkcs8(), usages))

	case *hostapi.Request_ListKeys:
		keys, err := svc.ListKeys(ctx, op.ListKeys.GetPrefix())
		if err != nil {
			return fail(err)
		}
		list := &hostapi.KeyList{}
		for _, k := range keys {
			list.Keys = append(list.Keys, KeyInfoToProto(k.Reference, k.Backend, k.KeyInfo))
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_KeyList{KeyList: list}}

	case *hostapi.Request_GenerateMasked:
		m := op.GenerateMasked
		sess, err := sessionFor(m.GetSession(), session, m.GetReference())
		if err != nil {
			return fail(err)
		}
		usages, err := core.ParseUsageWords(m.GetOps())
		if err != nil {
			return fail(core.Errorf(core.KindOf(err), "%s: %s", m.GetReference(), err))
		}
		spec := core.KeySpec{Type: KeyTypeFromProto(m.GetKeyType()), Bits: int(m.GetBits()), Curve: core.Curve(m.GetCurve()), Usages: usages}
		return maskedResp(svc.GenerateMasked(ctx, m.GetReference(), spec, sess))

	case *hostapi.Request_ImportWrappingKey:
		spki, err := svc.ImportWrappingKey(ctx, op.ImportWrappingKey.GetReference())
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_WrappingKey{WrappingKey: &hostapi.WrappingKeyResponse{
			PublicKeyDer: spki, Algorithm: core.ImportWrapAlgorithm}}}

	case *hostapi.Request_ImportMasked:
		m := op.ImportMasked
		sess, err := sessionFor(m.GetSession(), session, m.GetReference())
		if err != nil {
			return fail(err)
		}
		usages, err := core.ParseUsageWords(m.GetOps())
		if err != nil {
			return fail(core.Errorf(core.KindOf(err), "%s: %s", m.GetReference(), err))
		}
		spec := core.KeySpec{Type: KeyTypeFromProto(m.GetKeyType()), Bits: int(m.GetBits()), Curve: core.Curve(m.GetCurve()), Usages: usages}
		return maskedResp(svc.ImportMasked(ctx, m.GetReference(), m.GetWrapped(), spec, sess))

	case *hostapi.Request_OpenMasked:
		return keyResp(svc.OpenMasked(ctx, op.OpenMasked.GetReference(), op.OpenMasked.GetBlob()))

	case *hostapi.Request_Agree:
		m := op.Agree
		blob, err := svc.Agree(ctx, m.GetReference(), m.GetVersion(), m.GetPeerPublicKeyDer())
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Masked{Masked: &hostapi.MaskedKeyResponse{Blob: blob}}}

	case *hostapi.Request_Derive:
		m := op.Derive
		kdf := m.GetKdf()
		if kdf == "" {
			kdf = "hkdf"
		}
		blob, err := svc.Derive(ctx, m.GetReference(), core.DeriveParams{
			Input: m.GetInputBlob(), KDF: kdf, Hash: HashFromProto(m.GetHash()), Salt: m.GetSalt(), Info: m.GetInfo(),
			OutputType: m.GetOutputType(), OutputBits: int(m.GetOutputBits())})
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Masked{Masked: &hostapi.MaskedKeyResponse{Blob: blob}}}

	case *hostapi.Request_Mac:
		m := op.Mac
		mac, err := svc.MAC(ctx, m.GetReference(), m.GetVersion(), HashFromProto(m.GetHash()), m.GetData())
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Mac{Mac: &hostapi.MacResponse{Mac: mac}}}

	case *hostapi.Request_Diagnose:
		d, err := svc.Diagnose(ctx, op.Diagnose.GetReferencePrefix())
		if err != nil {
			return fail(err)
		}
		out := &hostapi.Diagnosis{Backend: d.Backend, Supported: d.Supported}
		for _, c := range d.Checks {
			out.Checks = append(out.Checks, &hostapi.Check{Name: c.Name, Ok: c.OK, Detail: c.Detail, Fix: c.Fix})
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Diagnosis{Diagnosis: out}}

	case *hostapi.Request_DeleteKey:
		n, err := svc.DeleteKey(ctx, op.DeleteKey.GetReference())
		if err != nil {
			return fail(err)
		}
		return &hostapi.Response{Id: id, Result: &hostapi.Response_Deleted{Deleted: &hostapi.DeleteKeyResponse{Versions: int32(n)}}}
	}
	return fail(core.Errorf(core.KindUnsupported, "request %d has no operation this hsmhost knows", id))
}

// sessionFor is the session a new key is bound to: the connection's, when
// the request asks for a session key.
func sessionFor(wanted bool, session, ref string) (string, error) {
	if !wanted {
		return "", nil
	}
	if session == "" {
		return "", core.Errorf(core.KindInvalidInput, "%s: a session key needs a connection whose hello names a session", ref)
	}
	return session, nil
}

func parseUsages(ref string, ops []string) ([]core.KeyUsage, error) {
	var out []core.KeyUsage
	for _, o := range ops {
		u, err := core.ParseKeyUsage(o)
		if err != nil {
			return nil, core.Errorf(core.KindInvalidInput, "%s: %s", ref, err)
		}
		out = append(out, u)
	}
	return out, nil
}

func opName(req *hostapi.Request) string {
	switch req.Op.(type) {
	case *hostapi.Request_Hello:
		return "hello"
	case *hostapi.Request_GetKey:
		return "get_key"
	case *hostapi.Request_Sign:
		return "sign"
	case *hostapi.Request_Decrypt:
		return "decrypt"
	case *hostapi.Request_Random:
		return "random"
	case *hostapi.Request_WrapKey:
		return "wrap_key"
	case *hostapi.Request_UnwrapKey:
		return "unwrap_key"
	case *hostapi.Request_CreateKey:
		return "create_key"
	case *hostapi.Request_ImportKey:
		return "import_key"
	case *hostapi.Request_ListKeys:
		return "list_keys"
	case *hostapi.Request_DeleteKey:
		return "delete_key"
	case *hostapi.Request_Diagnose:
		return "diagnose"
	case *hostapi.Request_GenerateMasked:
		return "generate_masked"
	case *hostapi.Request_ImportWrappingKey:
		return "import_wrapping_key"
	case *hostapi.Request_ImportMasked:
		return "import_masked"
	case *hostapi.Request_OpenMasked:
		return "open_masked"
	case *hostapi.Request_Agree:
		return "agree"
	case *hostapi.Request_Derive:
		return "derive"
	case *hostapi.Request_Mac:
		return "mac"
	}
	return "unknown"
}
