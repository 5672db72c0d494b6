// Package hostclient is the Go client of hsmhost's socket protocol, used by
// the hsmhost CLI and by tests. One Client multiplexes concurrent calls over
// one connection: each call gets a fresh request id and waits for the
// response carrying it, so calls may complete in any order. Errors come back
// as *core.Error with the kind the host sent, so errors.Is(err,
// core.ErrNotFound) works across the socket.
package hostclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// Key is a key as the host reports it.
type Key struct {
	Reference string // canonical, pinned to the version
	Backend   string
	core.KeyInfo
}

// Client is safe for concurrent use.
type Client struct {
	conn net.Conn
	path string
	wmu  sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *hostapi.Response
	err     error // set once the connection is unusable
	done    chan struct{}
}

// Dial connects to the host's socket.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, core.Errorf(core.KindUnavailable, "cannot reach hsmhost at %s (is `hsmhost serve` running?): %v", path, err)
	}
	cl := &Client{conn: c, path: path, pending: map[uint64]chan *hostapi.Response{}, done: make(chan struct{})}
	go cl.readLoop()
	return cl, nil
}

// Close closes the connection; pending calls fail.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *Client) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	var ferr error
	for {
		frame, err := hostframe.Read(r)
		if err != nil {
			ferr = core.Errorf(core.KindUnavailable, "connection to hsmhost at %s lost: %v", c.path, err)
			break
		}
		resp := new(hostapi.Response)
		if err := proto.Unmarshal(frame, resp); err != nil {
			ferr = core.Errorf(core.KindInternal, "hsmhost sent a malformed response: %v", err)
			break
		}
		if resp.GetId() == 0 && resp.GetError() != nil {
			// A protocol error the host reports before closing.
			ferr = toError(resp.GetError())
			break
		}
		c.mu.Lock()
		ch := c.pending[resp.GetId()]
		delete(c.pending, resp.GetId())
		c.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	c.conn.Close()
	c.mu.Lock()
	c.err = ferr
	for id, ch := range c.pending {
		delete(c.pending, id)
		close(ch)
	}
	c.mu.Unlock()
}

// Do sends req (its id is assigned here) and waits for the answer. The
// returned error is a transport error or the host's error for the request.
func (c *Client) Do(ctx context.Context, req *hostapi.Request) (*hostapi.Response, error) {
	ch := make(chan *hostapi.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	req.Id = c.nextID
	c.pending[req.Id] = ch
	c.mu.Unlock()

	c.wmu.Lock()
	err := hostframe.Write(c.conn, req)
	c.wmu.Unlock()
	if err != nil {
		c.forget(req.Id)
		var big *hostframe.TooLargeError
		if errors.As(err, &big) {
			return nil, core.Errorf(core.KindInvalidInput, "request too large: %v", err)
		}
		return nil, core.Errorf(core.KindUnavailable, "sending to hsmhost: %v", err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			if err == nil {
				err = core.Errorf(core.KindUnavailable, "connection to hsmhost closed")
			}
			return nil, err
		}
		if resp.GetError() != nil {
			return resp, toError(resp.GetError())
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(req.Id)
		return nil, core.Errorf(core.KindUnavailable, "waiting for hsmhost: %v", ctx.Err())
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func toError(e *hostapi.Error) error {
	return &core.Error{Kind: socketserver.KindFromProto(e.GetKind()), Message: e.GetMessage()}
}

func keyFrom(p *hostapi.KeyInfo) Key {
	ref, backend, info := socketserver.KeyInfoFromProto(p)
	return Key{Reference: ref, Backend: backend, KeyInfo: info}
}

func keyResult(resp *hostapi.Response, err error) (Key, error) {
	if err != nil {
		return Key{}, err
	}
	if resp.GetKey() == nil {
		return Key{}, unexpected(resp)
	}
	return keyFrom(resp.GetKey()), nil
}

func unexpected(resp *hostapi.Response) error {
	return core.Errorf(core.KindInternal, "hsmhost answered request %d with an unexpected result %T", resp.GetId(), resp.GetResult())
}

// Hello checks the protocol version and returns the host's version.
func (c *Client) Hello(ctx context.Context, client string) (string, error) {
	return c.HelloSession(ctx, client, "")
}

// HelloSession is Hello naming the application session this connection
// belongs to (session keys end with the session's last connection).
func (c *Client) HelloSession(ctx context.Context, client, session string) (string, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Hello{Hello: &hostapi.HelloRequest{
		Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1, Client: client, Session: session}}})
	if err != nil {
		return "", err
	}
	if resp.GetHello() == nil {
		return "", unexpected(resp)
	}
	if v := resp.GetHello().GetVersion(); v != hostapi.ProtocolVersion_PROTOCOL_VERSION_1 {
		return "", core.Errorf(core.KindUnsupported, "hsmhost speaks protocol version %d, this client %d", v, hostapi.ProtocolVersion_PROTOCOL_VERSION_1)
	}
	return resp.GetHello().GetHostVersion(), nil
}

// GetKey returns a key's metadata and public key.
func (c *Client) GetKey(ctx context.Context, ref string) (Key, error) {
	return keyResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_GetKey{GetKey: &hostapi.GetKeyRequest{Reference: ref}}}))
}

// Sign signs a digest; version may be empty.
func (c *Client) Sign(ctx context.Context, ref, version string, digest []byte, s core.SignatureScheme) ([]byte, *hostapi.Timing, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Sign{Sign: &hostapi.SignRequest{
		Reference: ref, Version: version, Digest: digest, Scheme: socketserver.SignatureSchemeToProto(s)}}})
	if err != nil {
		return nil, resp.GetTiming(), err
	}
	if resp.GetSign() == nil {
		return nil, resp.GetTiming(), unexpected(resp)
	}
	return resp.GetSign().GetSignature(), resp.GetTiming(), nil
}

// Decrypt decrypts a ciphertext; version may be empty.
func (c *Client) Decrypt(ctx context.Context, ref, version string, ct []byte, s core.EncryptionScheme) ([]byte, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Decrypt{Decrypt: &hostapi.DecryptRequest{
		Reference: ref, Version: version, Ciphertext: ct, Scheme: socketserver.EncryptionSchemeToProto(s)}}})
	if err != nil {
		return nil, err
	}
	if resp.GetDecrypt() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetDecrypt().GetPlaintext(), nil
}

// WrapKey wraps key material with the key at ref inside its backend.
func (c *Client) WrapKey(ctx context.Context, ref, version string, key []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return c.wrapKey(ctx, &hostapi.Request{Op: &hostapi.Request_WrapKey{WrapKey: &hostapi.WrapKeyRequest{
		Reference: ref, Version: version, Algorithm: string(alg), Data: key}}})
}

// UnwrapKey unwraps key material with the key at ref inside its backend.
func (c *Client) UnwrapKey(ctx context.Context, ref, version string, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return c.wrapKey(ctx, &hostapi.Request{Op: &hostapi.Request_UnwrapKey{UnwrapKey: &hostapi.WrapKeyRequest{
		Reference: ref, Version: version, Algorithm: string(alg), Data: wrapped}}})
}

func (c *Client) wrapKey(ctx context.Context, req *hostapi.Request) ([]byte, error) {
	resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.GetWrapped() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetWrapped().GetData(), nil
}

// Diagnose asks the backend serving a namespace ("managedhsm:MyHSM") to
// check its own prerequisites.
func (c *Client) Diagnose(ctx context.Context, namespaceRef string) (*hostapi.Diagnosis, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Diagnose{Diagnose: &hostapi.DiagnoseRequest{ReferencePrefix: namespaceRef}}})
	if err != nil {
		return nil, err
	}
	if resp.GetDiagnosis() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetDiagnosis(), nil
}

// GenerateMasked generates a key in ref's backend and returns it masked.
func (c *Client) GenerateMasked(ctx context.Context, ref string, spec core.KeySpec, words []string, session bool) ([]byte, Key, error) {
	return maskedResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_GenerateMasked{GenerateMasked: &hostapi.GenerateMaskedRequest{
		Reference: ref, KeyType: socketserver.KeyTypeToProto(spec.Type), Bits: int32(spec.Bits), Curve: string(spec.Curve),
		Ops: words, Session: session}}}))
}

// ImportWrappingKey returns the public key imports are wrapped under.
func (c *Client) ImportWrappingKey(ctx context.Context, ref string) ([]byte, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_ImportWrappingKey{ImportWrappingKey: &hostapi.ImportWrappingKeyRequest{Reference: ref}}})
	if err != nil {
		return nil, err
	}
	if resp.GetWrappingKey() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetWrappingKey().GetPublicKeyDer(), nil
}

// ImportMasked imports a wrapped PKCS#8 key into ref's backend, masked.
func (c *Client) ImportMasked(ctx context.Context, ref string, wrapped []byte, words []string, session bool) ([]byte, Key, error) {
	return maskedResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_ImportMasked{ImportMasked: &hostapi.ImportMaskedRequest{
		Reference: ref, Wrapped: wrapped, Ops: words, Session: session}}}))
}

// OpenMasked opens a blob; the key's reference names the handle.
func (c *Client) OpenMasked(ctx context.Context, ref string, blob []byte) (Key, error) {
	return keyResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_OpenMasked{OpenMasked: &hostapi.OpenMaskedRequest{Reference: ref, Blob: blob}}}))
}

// Agree runs ECDH with the key at ref; the shared secret comes back masked.
func (c *Client) Agree(ctx context.Context, ref, version string, peerPublicKeyDER []byte) ([]byte, error) {
	blob, _, err := maskedResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Agree{Agree: &hostapi.AgreeRequest{
		Reference: ref, Version: version, PeerPublicKeyDer: peerPublicKeyDER}}}))
	return blob, err
}

// Derive runs p.KDF (HKDF when empty, or KBKDF) in ref's backend over a
// masked input.
func (c *Client) Derive(ctx context.Context, ref string, p core.DeriveParams) ([]byte, error) {
	blob, _, err := maskedResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Derive{Derive: &hostapi.DeriveRequest{
		Reference: ref, InputBlob: p.Input, Kdf: p.KDF, Hash: socketserver.HashToProto(p.Hash), Salt: p.Salt, Info: p.Info,
		OutputType: p.OutputType, OutputBits: int32(p.OutputBits)}}}))
	return blob, err
}

// MAC computes an HMAC with the key at ref.
func (c *Client) MAC(ctx context.Context, ref, version string, hash core.Hash, data []byte) ([]byte, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Mac{Mac: &hostapi.MacRequest{
		Reference: ref, Version: version, Hash: socketserver.HashToProto(hash), Data: data}}})
	if err != nil {
		return nil, err
	}
	if resp.GetMac() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetMac().GetMac(), nil
}

func maskedResult(resp *hostapi.Response, err error) ([]byte, Key, error) {
	if err != nil {
		return nil, Key{}, err
	}
	m := resp.GetMasked()
	if m == nil {
		return nil, Key{}, unexpected(resp)
	}
	if m.GetKey() == nil { // Agree and Derive answer with the blob alone
		return m.GetBlob(), Key{}, nil
	}
	k, err := keyResult(&hostapi.Response{Id: resp.GetId(), Result: &hostapi.Response_Key{Key: m.GetKey()}}, nil)
	return m.GetBlob(), k, err
}

// Random draws n bytes from the backend of ref (empty: the default).
func (c *Client) Random(ctx context.Context, ref string, n int) ([]byte, error) {
	if n < 0 || n > 1<<30 {
		return nil, core.Errorf(core.KindInvalidInput, "random: bad length %d", n)
	}
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Random{Random: &hostapi.RandomRequest{Reference: ref, Length: uint32(n)}}})
	if err != nil {
		return nil, err
	}
	if resp.GetRandom() == nil {
		return nil, unexpected(resp)
	}
	return resp.GetRandom().GetData(), nil
}

// CreateKey creates a key, or a new version of it.
func (c *Client) CreateKey(ctx context.Context, ref string, spec core.KeySpec) (Key, error) {
	return keyResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_CreateKey{CreateKey: &hostapi.CreateKeyRequest{
		Reference: ref, KeyType: socketserver.KeyTypeToProto(spec.Type), Bits: int32(spec.Bits), Curve: string(spec.Curve), Ops: usageWords(spec.Usages)}}}))
}

// ImportKey imports a PKCS#8 private key.
func (c *Client) ImportKey(ctx context.Context, ref string, pkcs8 []byte, usages []core.KeyUsage) (Key, error) {
	return keyResult(c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_ImportKey{ImportKey: &hostapi.ImportKeyRequest{
		Reference: ref, Pkcs8: pkcs8, Ops: usageWords(usages)}}}))
}

func usageWords(us []core.KeyUsage) []string {
	var out []string
	for _, u := range us {
		out = append(out, string(u))
	}
	return out
}

// ListKeys lists keys whose canonical reference starts with prefix.
func (c *Client) ListKeys(ctx context.Context, prefix string) ([]Key, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_ListKeys{ListKeys: &hostapi.ListKeysRequest{Prefix: prefix}}})
	if err != nil {
		return nil, err
	}
	if resp.GetKeyList() == nil {
		return nil, unexpected(resp)
	}
	var out []Key
	for _, k := range resp.GetKeyList().GetKeys() {
		out = append(out, keyFrom(k))
	}
	return out, nil
}

// DeleteKey deletes every version of a key and says how many there were.
func (c *Client) DeleteKey(ctx context.Context, ref string) (int, error) {
	resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_DeleteKey{DeleteKey: &hostapi.DeleteKeyRequest{Reference: ref}}})
	if err != nil {
		return 0, err
	}
	if resp.GetDeleted() == nil {
		return 0, unexpected(resp)
	}
	return int(resp.GetDeleted().GetVersions()), nil
}

func (k Key) String() string {
	return fmt.Sprintf("%s (%s, backend %q)", k.Reference, k.KeyInfo.Describe(), k.Backend)
}
