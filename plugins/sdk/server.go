package sdk

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
	"github.com/hsmbridge/hsmbridge/ports"
)

// server adapts a ports backend to the gRPC service. Each method finds the
// port by type assertion; a missing one is an "unsupported" error, so the
// gate holds even against a host that ignores the declaration.
type server struct {
	pb.UnimplementedBackendServer
	impl ports.KeyLookup
	// name and version are reported in Describe, which asks impl afresh on
	// each call: a backend may declare what it can do only once Configure
	// has told it which device or token it serves.
	name, version string
	log           hclog.Logger
}

func (s *server) description() core.BackendDescription {
	return ports.Describe(s.name, s.version, s.impl)
}

func unsupported(op core.Operation) error {
	return toStatus(core.Errorf(core.KindUnsupported, "backend does not implement %s", op))
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return descriptionToPB(s.description()), nil
}

func (s *server) Configure(ctx context.Context, r *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	c, ok := s.impl.(ports.Configurer)
	if !ok {
		if len(r.GetSettings()) > 0 {
			return nil, toStatus(core.Errorf(core.KindInvalidInput, "backend takes no settings"))
		}
		return &pb.ConfigureResponse{}, nil
	}
	return &pb.ConfigureResponse{}, toStatus(c.Configure(ctx, r.GetSettings()))
}

func (s *server) GetKey(ctx context.Context, r *pb.KeyRequest) (*pb.KeyInfo, error) {
	k, err := s.impl.GetKey(ctx, keyIDFromPB(r.GetKey()))
	if err != nil {
		return nil, toStatus(err)
	}
	return keyInfoToPB(k), nil
}

func (s *server) ListKeys(ctx context.Context, r *pb.ListKeysRequest) (*pb.ListKeysResponse, error) {
	l, ok := s.impl.(ports.KeyLister)
	if !ok {
		return nil, unsupported(core.OpListKeys)
	}
	keys, err := l.ListKeys(ctx, r.GetNamespace())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListKeysResponse{Keys: make([]*pb.KeyInfo, len(keys))}
	for i, k := range keys {
		out.Keys[i] = keyInfoToPB(k)
	}
	return out, nil
}

func (s *server) CreateKey(ctx context.Context, r *pb.CreateKeyRequest) (*pb.KeyInfo, error) {
	g, ok := s.impl.(ports.KeyGenerator)
	if !ok {
		return nil, unsupported(core.OpCreateKey)
	}
	usages, err := usagesFromPB(r.GetOps())
	if err != nil {
		return nil, toStatus(err)
	}
	spec := core.KeySpec{Type: core.KeyType(r.GetKeyType()), Bits: int(r.GetBits()), Curve: core.Curve(r.GetCurve()), Usages: usages}
	k, err := g.CreateKey(ctx, keyIDFromPB(r.GetKey()), spec)
	if err != nil {
		return nil, toStatus(err)
	}
	return keyInfoToPB(k), nil
}

func (s *server) ImportKey(ctx context.Context, r *pb.ImportKeyRequest) (*pb.KeyInfo, error) {
	im, ok := s.impl.(ports.KeyImporter)
	if !ok {
		return nil, unsupported(core.OpImportKey)
	}
	usages, err := usagesFromPB(r.GetOps())
	if err != nil {
		return nil, toStatus(err)
	}
	k, err := im.ImportKey(ctx, keyIDFromPB(r.GetKey()), r.GetPkcs8(), usages)
	if err != nil {
		return nil, toStatus(err)
	}
	return keyInfoToPB(k), nil
}

func (s *server) DeleteKey(ctx context.Context, r *pb.KeyRequest) (*pb.DeleteKeyResponse, error) {
	d, ok := s.impl.(ports.KeyDeleter)
	if !ok {
		return nil, unsupported(core.OpDeleteKey)
	}
	n, err := d.DeleteKey(ctx, keyIDFromPB(r.GetKey()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteKeyResponse{Versions: int32(n)}, nil
}

func (s *server) Sign(ctx context.Context, r *pb.SignRequest) (*pb.SignResponse, error) {
	signer, ok := s.impl.(ports.Signer)
	if !ok {
		return nil, unsupported(core.OpSign)
	}
	scheme, err := signatureSchemeFromPB(r.GetScheme())
	if err != nil {
		return nil, toStatus(err)
	}
	start := time.Now()
	var sig []byte
	if len(r.GetMessage()) > 0 {
		ms, ok := s.impl.(ports.MessageSigner)
		if !ok {
			return nil, unsupported(core.OpSignMessage)
		}
		sig, err = ms.SignMessage(ctx, keyIDFromPB(r.GetKey()), r.GetMessage(), scheme)
	} else {
		sig, err = signer.Sign(ctx, keyIDFromPB(r.GetKey()), r.GetDigest(), scheme)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SignResponse{Signature: sig, ComputeNs: uint64(time.Since(start))}, nil
}

func (s *server) Decrypt(ctx context.Context, r *pb.DecryptRequest) (*pb.DecryptResponse, error) {
	d, ok := s.impl.(ports.Decrypter)
	if !ok {
		return nil, unsupported(core.OpDecrypt)
	}
	scheme, err := encryptionSchemeFromPB(r.GetScheme())
	if err != nil {
		return nil, toStatus(err)
	}
	start := time.Now()
	pt, err := d.Decrypt(ctx, keyIDFromPB(r.GetKey()), r.GetCiphertext(), scheme)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DecryptResponse{Plaintext: pt, ComputeNs: uint64(time.Since(start))}, nil
}

func (s *server) Agree(ctx context.Context, r *pb.AgreeRequest) (*pb.MaskedKey, error) {
	a, ok := s.impl.(ports.Agreer)
	if !ok {
		return nil, unsupported(core.OpAgree)
	}
	blob, err := a.Agree(ctx, keyIDFromPB(r.GetKey()), r.GetPeerPublicKeyDer())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MaskedKey{Blob: blob}, nil
}

func (s *server) Derive(ctx context.Context, r *pb.DeriveRequest) (*pb.MaskedKey, error) {
	d, ok := s.impl.(ports.Deriver)
	if !ok {
		return nil, unsupported(core.OpDerive)
	}
	params, err := deriveParamsFromPB(r)
	if err != nil {
		return nil, toStatus(err)
	}
	blob, err := d.Derive(ctx, params)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MaskedKey{Blob: blob}, nil
}

func (s *server) Mask(ctx context.Context, r *pb.KeyRequest) (*pb.MaskedKey, error) {
	m, ok := s.impl.(ports.Masker)
	if !ok {
		return nil, unsupported(core.OpMask)
	}
	blob, err := m.Mask(ctx, keyIDFromPB(r.GetKey()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MaskedKey{Blob: blob}, nil
}

func (s *server) Unmask(ctx context.Context, r *pb.MaskedKey) (*pb.KeyInfo, error) {
	m, ok := s.impl.(ports.Masker)
	if !ok {
		return nil, unsupported(core.OpUnmask)
	}
	k, err := m.Unmask(ctx, r.GetBlob())
	if err != nil {
		return nil, toStatus(err)
	}
	return keyInfoToPB(k), nil
}

func (s *server) Random(ctx context.Context, r *pb.RandomRequest) (*pb.RandomResponse, error) {
	rs, ok := s.impl.(ports.RandomSource)
	if !ok {
		return nil, unsupported(core.OpRandom)
	}
	const maxRandom = 1 << 16
	if r.GetLength() > maxRandom {
		return nil, toStatus(core.Errorf(core.KindInvalidInput, "at most %d random bytes per call, %d asked", maxRandom, r.GetLength()))
	}
	b, err := rs.Random(ctx, int(r.GetLength()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.RandomResponse{Data: b}, nil
}

func (s *server) WrapKey(ctx context.Context, r *pb.WrapRequest) (*pb.WrapResponse, error) {
	return s.wrap(ctx, r, core.OpWrapKey)
}

func (s *server) UnwrapKey(ctx context.Context, r *pb.WrapRequest) (*pb.WrapResponse, error) {
	return s.wrap(ctx, r, core.OpUnwrapKey)
}

func (s *server) wrap(ctx context.Context, r *pb.WrapRequest, op core.Operation) (*pb.WrapResponse, error) {
	w, ok := s.impl.(ports.KeyWrapper)
	if !ok {
		return nil, unsupported(op)
	}
	alg, err := core.ParseWrapAlgorithm(r.GetAlgorithm())
	if err != nil {
		return nil, toStatus(err)
	}
	var out []byte
	if op == core.OpWrapKey {
		out, err = w.WrapKey(ctx, keyIDFromPB(r.GetKey()), r.GetData(), alg)
	} else {
		out, err = w.UnwrapKey(ctx, keyIDFromPB(r.GetKey()), r.GetData(), alg)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.WrapResponse{Data: out}, nil
}

func (s *server) Diagnose(ctx context.Context, r *pb.DiagnoseRequest) (*pb.DiagnoseResponse, error) {
	d, ok := s.impl.(ports.Diagnoser)
	if !ok {
		return nil, toStatus(core.Errorf(core.KindUnsupported, "backend has no self-diagnosis"))
	}
	checks, err := d.Diagnose(ctx, r.GetNamespace())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.DiagnoseResponse{}
	for _, c := range checks {
		out.Checks = append(out.Checks, &pb.Check{Name: c.Name, Ok: c.OK, Detail: c.Detail, Fix: c.Fix})
	}
	return out, nil
}

func (s *server) Stats(context.Context, *pb.StatsRequest) (*pb.StatsResponse, error) {
	out := &pb.StatsResponse{}
	if r, ok := s.impl.(ports.StatsReporter); ok {
		for _, c := range r.Stats() {
			out.Counters = append(out.Counters, &pb.Counter{Name: c.Name, Value: c.Value})
		}
	}
	return out, nil
}

func (s *server) maskedMaker(op core.Operation) (ports.MaskedKeyMaker, error) {
	m, ok := s.impl.(ports.MaskedKeyMaker)
	if !ok {
		return nil, unsupported(op)
	}
	return m, nil
}

func (s *server) GenerateMasked(ctx context.Context, r *pb.GenerateMaskedRequest) (*pb.MaskedKeyInfo, error) {
	m, err := s.maskedMaker(core.OpGenerateMasked)
	if err != nil {
		return nil, err
	}
	usages, err := core.ParseUsageWords(r.GetOps())
	if err != nil {
		return nil, toStatus(err)
	}
	spec := core.KeySpec{Type: core.KeyType(r.GetKeyType()), Bits: int(r.GetBits()), Curve: core.Curve(r.GetCurve()), Usages: usages}
	blob, info, err := m.GenerateMasked(ctx, spec, r.GetSession())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MaskedKeyInfo{Blob: &pb.MaskedKey{Blob: blob}, Key: keyInfoToPB(info)}, nil
}

func (s *server) ImportWrappingKey(ctx context.Context, _ *pb.ImportWrappingKeyRequest) (*pb.WrappingKey, error) {
	m, err := s.maskedMaker(core.OpImportMasked)
	if err != nil {
		return nil, err
	}
	spki, err := m.ImportWrappingKey(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.WrappingKey{PublicKeyDer: spki, Algorithm: core.ImportWrapAlgorithm}, nil
}

func (s *server) ImportMasked(ctx context.Context, r *pb.ImportMaskedRequest) (*pb.MaskedKeyInfo, error) {
	m, err := s.maskedMaker(core.OpImportMasked)
	if err != nil {
		return nil, err
	}
	usages, err := core.ParseUsageWords(r.GetOps())
	if err != nil {
		return nil, toStatus(err)
	}
	spec := core.KeySpec{Type: core.KeyType(r.GetKeyType()), Bits: int(r.GetBits()), Curve: core.Curve(r.GetCurve()), Usages: usages}
	blob, info, err := m.ImportMasked(ctx, r.GetWrapped(), spec, r.GetSession())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MaskedKeyInfo{Blob: &pb.MaskedKey{Blob: blob}, Key: keyInfoToPB(info)}, nil
}

func (s *server) EndSession(ctx context.Context, r *pb.EndSessionRequest) (*pb.EndSessionResponse, error) {
	if e, ok := s.impl.(ports.SessionEnder); ok {
		if err := e.EndSession(ctx, r.GetSession()); err != nil {
			return nil, toStatus(err)
		}
	}
	return &pb.EndSessionResponse{}, nil
}

func (s *server) MAC(ctx context.Context, r *pb.MACRequest) (*pb.MACResponse, error) {
	m, ok := s.impl.(ports.MACer)
	if !ok {
		return nil, unsupported(core.OpMAC)
	}
	h, err := core.ParseHash(r.GetHash())
	if err != nil {
		return nil, toStatus(err)
	}
	mac, err := m.MAC(ctx, keyIDFromPB(r.GetKey()), h, r.GetData())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MACResponse{Mac: mac}, nil
}
