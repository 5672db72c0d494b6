package sdk

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
)

// Client is the host's view of one plugin: it implements every ports
// interface, and refuses, without an RPC, any operation the plugin did not
// declare in Describe.
type Client struct {
	rpc  pb.BackendClient
	desc core.BackendDescription
	data *dataConn // the key operations' own connection; nil: all on gRPC
}

// NewClient asks the plugin to describe itself.
func NewClient(ctx context.Context, rpc pb.BackendClient) (*Client, error) {
	d, err := rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &Client{rpc: rpc, desc: descriptionFromPB(d)}, nil
}

// Description is what the plugin declared.
func (c *Client) Description() core.BackendDescription { return c.desc }

func (c *Client) gate(op core.Operation) error {
	if !c.desc.Supports(op) {
		return core.Errorf(core.KindUnsupported, "backend %q does not support %s", c.desc.Name, op)
	}
	return nil
}

// Configure sends the backend's settings, then asks the plugin to describe
// itself again: what it declares may depend on them (the schemes a PKCS#11
// token's mechanism list allows, say). Call it before the Client is shared.
func (c *Client) Configure(ctx context.Context, settings map[string]string) error {
	if _, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{Settings: settings}); err != nil {
		return fromStatus(err)
	}
	d, err := c.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return fromStatus(err)
	}
	c.desc = descriptionFromPB(d)
	return nil
}

func (c *Client) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	k, err := invoke(c, ctx, &pb.KeyRequest{Key: keyIDToPB(id)},
		func(r *pb.KeyRequest) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_GetKey{GetKey: r}} },
		(*pb.DataResponse).GetKey, c.rpc.GetKey)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return keyInfoFromPB(k), nil
}

func (c *Client) ListKeys(ctx context.Context, namespace string) ([]core.KeyInfo, error) {
	if err := c.gate(core.OpListKeys); err != nil {
		return nil, err
	}
	r, err := c.rpc.ListKeys(ctx, &pb.ListKeysRequest{Namespace: namespace})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]core.KeyInfo, len(r.GetKeys()))
	for i, k := range r.GetKeys() {
		out[i] = keyInfoFromPB(k)
	}
	return out, nil
}

func (c *Client) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error) {
	if err := c.gate(core.OpCreateKey); err != nil {
		return core.KeyInfo{}, err
	}
	k, err := c.rpc.CreateKey(ctx, &pb.CreateKeyRequest{Key: keyIDToPB(id), KeyType: string(spec.Type),
		Bits: int32(spec.Bits), Curve: string(spec.Curve), Ops: usagesToPB(spec.Usages)})
	if err != nil {
		return core.KeyInfo{}, fromStatus(err)
	}
	return keyInfoFromPB(k), nil
}

func (c *Client) ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error) {
	if err := c.gate(core.OpImportKey); err != nil {
		return core.KeyInfo{}, err
	}
	k, err := c.rpc.ImportKey(ctx, &pb.ImportKeyRequest{Key: keyIDToPB(id), Pkcs8: pkcs8, Ops: usagesToPB(usages)})
	if err != nil {
		return core.KeyInfo{}, fromStatus(err)
	}
	return keyInfoFromPB(k), nil
}

func (c *Client) DeleteKey(ctx context.Context, id core.KeyID) (int, error) {
	if err := c.gate(core.OpDeleteKey); err != nil {
		return 0, err
	}
	r, err := c.rpc.DeleteKey(ctx, &pb.KeyRequest{Key: keyIDToPB(id)})
	if err != nil {
		return 0, fromStatus(err)
	}
	return int(r.GetVersions()), nil
}

func (c *Client) Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, error) {
	sig, _, err := c.SignTimed(ctx, id, digest, scheme)
	return sig, err
}

// SignTimed is Sign plus the time the plugin reports it spent signing, so
// the host can tell its own overhead from the backend's work.
func (c *Client) SignTimed(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, uint64, error) {
	if err := c.gate(core.OpSign); err != nil {
		return nil, 0, err
	}
	if !c.desc.SupportsSignature(scheme) {
		return nil, 0, core.Errorf(core.KindUnsupported, "backend %q does not sign with %s", c.desc.Name, scheme.Name())
	}
	r, err := c.sign(ctx, &pb.SignRequest{Key: keyIDToPB(id), Digest: digest, Scheme: signatureSchemeToPB(scheme)})
	if err != nil {
		return nil, 0, err
	}
	return r.GetSignature(), r.GetComputeNs(), nil
}

func (c *Client) sign(ctx context.Context, r *pb.SignRequest) (*pb.SignResponse, error) {
	return invoke(c, ctx, r, func(r *pb.SignRequest) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_Sign{Sign: r}} },
		(*pb.DataResponse).GetSign, c.rpc.Sign)
}

// SignMessage has the plugin hash and sign a whole message.
func (c *Client) SignMessage(ctx context.Context, id core.KeyID, message []byte, scheme core.SignatureScheme) ([]byte, error) {
	if err := c.gate(core.OpSignMessage); err != nil {
		return nil, err
	}
	if !c.desc.SupportsSignature(scheme) {
		return nil, core.Errorf(core.KindUnsupported, "backend %q does not sign with %s", c.desc.Name, scheme.Name())
	}
	r, err := c.sign(ctx, &pb.SignRequest{Key: keyIDToPB(id), Message: message, Scheme: signatureSchemeToPB(scheme)})
	if err != nil {
		return nil, err
	}
	return r.GetSignature(), nil
}

func (c *Client) Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error) {
	pt, _, err := c.DecryptTimed(ctx, id, ciphertext, scheme)
	return pt, err
}

// DecryptTimed is Decrypt plus the time the plugin reports it spent.
func (c *Client) DecryptTimed(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, uint64, error) {
	if err := c.gate(core.OpDecrypt); err != nil {
		return nil, 0, err
	}
	r, err := invoke(c, ctx, &pb.DecryptRequest{Key: keyIDToPB(id), Ciphertext: ciphertext, Scheme: encryptionSchemeToPB(scheme)},
		func(r *pb.DecryptRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_Decrypt{Decrypt: r}}
		},
		(*pb.DataResponse).GetDecrypt, c.rpc.Decrypt)
	if err != nil {
		return nil, 0, err
	}
	return r.GetPlaintext(), r.GetComputeNs(), nil
}

func (c *Client) Agree(ctx context.Context, id core.KeyID, peerPublicKeyDER []byte) (core.MaskedKey, error) {
	if err := c.gate(core.OpAgree); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.AgreeRequest{Key: keyIDToPB(id), PeerPublicKeyDer: peerPublicKeyDER},
		func(r *pb.AgreeRequest) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_Agree{Agree: r}} },
		(*pb.DataResponse).GetMasked, c.rpc.Agree)
	if err != nil {
		return nil, err
	}
	return r.GetBlob(), nil
}

func (c *Client) Derive(ctx context.Context, params core.DeriveParams) (core.MaskedKey, error) {
	if err := c.gate(core.OpDerive); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, deriveParamsToPB(params),
		func(r *pb.DeriveRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_Derive{Derive: r}}
		},
		(*pb.DataResponse).GetMasked, c.rpc.Derive)
	if err != nil {
		return nil, err
	}
	return r.GetBlob(), nil
}

func (c *Client) Mask(ctx context.Context, id core.KeyID) (core.MaskedKey, error) {
	if err := c.gate(core.OpMask); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.KeyRequest{Key: keyIDToPB(id)},
		func(r *pb.KeyRequest) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_Mask{Mask: r}} },
		(*pb.DataResponse).GetMasked, c.rpc.Mask)
	if err != nil {
		return nil, err
	}
	return r.GetBlob(), nil
}

func (c *Client) Unmask(ctx context.Context, blob core.MaskedKey) (core.KeyInfo, error) {
	if err := c.gate(core.OpUnmask); err != nil {
		return core.KeyInfo{}, err
	}
	k, err := invoke(c, ctx, &pb.MaskedKey{Blob: blob},
		func(r *pb.MaskedKey) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_Unmask{Unmask: r}} },
		(*pb.DataResponse).GetKey, c.rpc.Unmask)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return keyInfoFromPB(k), nil
}

func (c *Client) Random(ctx context.Context, n int) ([]byte, error) {
	if err := c.gate(core.OpRandom); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, core.Errorf(core.KindInvalidInput, "negative random length %d", n)
	}
	r, err := invoke(c, ctx, &pb.RandomRequest{Length: uint32(n)},
		func(r *pb.RandomRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_Random{Random: r}}
		},
		(*pb.DataResponse).GetRandom, c.rpc.Random)
	if err != nil {
		return nil, err
	}
	return r.GetData(), nil
}

func (c *Client) WrapKey(ctx context.Context, id core.KeyID, key []byte, alg core.WrapAlgorithm) ([]byte, error) {
	if err := c.gate(core.OpWrapKey); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.WrapRequest{Key: keyIDToPB(id), Algorithm: string(alg), Data: key},
		func(r *pb.WrapRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_WrapKey{WrapKey: r}}
		},
		(*pb.DataResponse).GetWrap, c.rpc.WrapKey)
	if err != nil {
		return nil, err
	}
	return r.GetData(), nil
}

func (c *Client) UnwrapKey(ctx context.Context, id core.KeyID, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	if err := c.gate(core.OpUnwrapKey); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.WrapRequest{Key: keyIDToPB(id), Algorithm: string(alg), Data: wrapped},
		func(r *pb.WrapRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_UnwrapKey{UnwrapKey: r}}
		},
		(*pb.DataResponse).GetWrap, c.rpc.UnwrapKey)
	if err != nil {
		return nil, err
	}
	return r.GetData(), nil
}

// Diagnose runs the plugin's self-diagnosis; a plugin without one answers
// with a KindUnsupported error. It is not an operation a plugin declares:
// every plugin may be asked.
func (c *Client) Diagnose(ctx context.Context, namespace string) ([]core.Check, error) {
	r, err := c.rpc.Diagnose(ctx, &pb.DiagnoseRequest{Namespace: namespace})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]core.Check, len(r.GetChecks()))
	for i, ch := range r.GetChecks() {
		out[i] = core.Check{Name: ch.GetName(), OK: ch.GetOk(), Detail: ch.GetDetail(), Fix: ch.GetFix()}
	}
	return out, nil
}

// Stats reads the counters the plugin keeps of its own work; a plugin
// without any, or one built before Stats existed, has none.
func (c *Client) Stats(ctx context.Context) ([]core.Counter, error) {
	r, err := c.rpc.Stats(ctx, &pb.StatsRequest{})
	if status.Code(err) == codes.Unimplemented {
		return nil, nil
	}
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]core.Counter, len(r.GetCounters()))
	for i, k := range r.GetCounters() {
		out[i] = core.Counter{Name: k.GetName(), Value: k.GetValue()}
	}
	return out, nil
}

func usageWords(us []core.KeyUsage) []string { return usagesToPB(us) }

func (c *Client) GenerateMasked(ctx context.Context, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	if err := c.gate(core.OpGenerateMasked); err != nil {
		return nil, core.KeyInfo{}, err
	}
	r, err := invoke(c, ctx, &pb.GenerateMaskedRequest{KeyType: string(spec.Type), Bits: int32(spec.Bits),
		Curve: string(spec.Curve), Ops: usageWords(spec.Usages), Session: session},
		func(r *pb.GenerateMaskedRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_GenerateMasked{GenerateMasked: r}}
		},
		(*pb.DataResponse).GetMaskedKeyInfo, c.rpc.GenerateMasked)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	return r.GetBlob().GetBlob(), keyInfoFromPB(r.GetKey()), nil
}

func (c *Client) ImportWrappingKey(ctx context.Context) ([]byte, error) {
	if err := c.gate(core.OpImportMasked); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.ImportWrappingKeyRequest{},
		func(r *pb.ImportWrappingKeyRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_ImportWrappingKey{ImportWrappingKey: r}}
		},
		(*pb.DataResponse).GetWrappingKey, c.rpc.ImportWrappingKey)
	if err != nil {
		return nil, err
	}
	if r.GetAlgorithm() != core.ImportWrapAlgorithm {
		return nil, core.Errorf(core.KindUnsupported, "backend %q wraps imports with %q, not %s", c.desc.Name, r.GetAlgorithm(), core.ImportWrapAlgorithm)
	}
	return r.GetPublicKeyDer(), nil
}

func (c *Client) ImportMasked(ctx context.Context, wrapped []byte, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	if err := c.gate(core.OpImportMasked); err != nil {
		return nil, core.KeyInfo{}, err
	}
	r, err := invoke(c, ctx, &pb.ImportMaskedRequest{Wrapped: wrapped, Ops: usageWords(spec.Usages), Session: session,
		KeyType: string(spec.Type), Bits: int32(spec.Bits), Curve: string(spec.Curve)},
		func(r *pb.ImportMaskedRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_ImportMasked{ImportMasked: r}}
		},
		(*pb.DataResponse).GetMaskedKeyInfo, c.rpc.ImportMasked)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	return r.GetBlob().GetBlob(), keyInfoFromPB(r.GetKey()), nil
}

// EndSession tells the plugin a session ended; a plugin without sessions
// ignores it.
func (c *Client) EndSession(ctx context.Context, session string) error {
	_, err := invoke(c, ctx, &pb.EndSessionRequest{Session: session},
		func(r *pb.EndSessionRequest) *pb.DataRequest {
			return &pb.DataRequest{Op: &pb.DataRequest_EndSession{EndSession: r}}
		},
		(*pb.DataResponse).GetEndSession, c.rpc.EndSession)
	return err
}

func (c *Client) MAC(ctx context.Context, id core.KeyID, hash core.Hash, data []byte) ([]byte, error) {
	if err := c.gate(core.OpMAC); err != nil {
		return nil, err
	}
	r, err := invoke(c, ctx, &pb.MACRequest{Key: keyIDToPB(id), Hash: hash.String(), Data: data},
		func(r *pb.MACRequest) *pb.DataRequest { return &pb.DataRequest{Op: &pb.DataRequest_Mac{Mac: r}} },
		(*pb.DataResponse).GetMac, c.rpc.MAC)
	if err != nil {
		return nil, err
	}
	return r.GetMac(), nil
}
