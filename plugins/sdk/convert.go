package sdk

import (
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
)

func keyIDToPB(id core.KeyID) *pb.KeyID {
	return &pb.KeyID{Namespace: id.Namespace, Name: id.Name, Version: id.Version}
}

func keyIDFromPB(id *pb.KeyID) core.KeyID {
	return core.KeyID{Namespace: id.GetNamespace(), Name: id.GetName(), Version: id.GetVersion()}
}

func usagesToPB(us []core.KeyUsage) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u)
	}
	return out
}

func usagesFromPB(ss []string) ([]core.KeyUsage, error) {
	out := make([]core.KeyUsage, 0, len(ss))
	for _, s := range ss {
		u, err := core.ParseKeyUsage(s)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func keyInfoToPB(k core.KeyInfo) *pb.KeyInfo {
	var created int64
	if !k.Created.IsZero() {
		created = k.Created.Unix()
	}
	return &pb.KeyInfo{
		Key: keyIDToPB(k.ID), KeyType: string(k.Type), Bits: int32(k.Bits), Curve: string(k.Curve),
		AllowedOps: usagesToPB(k.Usages), PublicKeyDer: k.PublicKeyDER, Enabled: k.Enabled, CreatedUnix: created,
	}
}

func keyInfoFromPB(k *pb.KeyInfo) core.KeyInfo {
	usages := make([]core.KeyUsage, len(k.GetAllowedOps()))
	for i, s := range k.GetAllowedOps() {
		usages[i] = core.KeyUsage(s)
	}
	var created time.Time
	if k.GetCreatedUnix() != 0 {
		created = time.Unix(k.GetCreatedUnix(), 0)
	}
	return core.KeyInfo{
		ID: keyIDFromPB(k.GetKey()), Type: core.KeyType(k.GetKeyType()), Bits: int(k.GetBits()),
		Curve: core.Curve(k.GetCurve()), Usages: usages, PublicKeyDER: k.GetPublicKeyDer(),
		Enabled: k.GetEnabled(), Created: created,
	}
}

func signatureSchemeToPB(s core.SignatureScheme) *pb.SignatureScheme {
	out := &pb.SignatureScheme{Name: s.Name(), SaltLength: int32(s.SaltLength)}
	if s.MGF1Hash != core.HashUnspecified {
		out.Mgf1Hash = s.MGF1Hash.String()
	}
	return out
}

func signatureSchemeFromPB(p *pb.SignatureScheme) (core.SignatureScheme, error) {
	s, err := core.ParseSignatureSchemeName(p.GetName())
	if err != nil {
		return s, err
	}
	s.SaltLength = int(p.GetSaltLength())
	if p.GetMgf1Hash() != "" {
		if s.MGF1Hash, err = core.ParseHash(p.GetMgf1Hash()); err != nil {
			return s, err
		}
	}
	return s, nil
}

func encryptionSchemeToPB(s core.EncryptionScheme) *pb.EncryptionScheme {
	out := &pb.EncryptionScheme{Name: s.Name(), Label: s.Label}
	if s.MGF1Hash != core.HashUnspecified {
		out.Mgf1Hash = s.MGF1Hash.String()
	}
	return out
}

func encryptionSchemeFromPB(p *pb.EncryptionScheme) (core.EncryptionScheme, error) {
	s, err := core.ParseEncryptionSchemeName(p.GetName())
	if err != nil {
		return s, err
	}
	s.Label = p.GetLabel()
	if p.GetMgf1Hash() != "" {
		if s.MGF1Hash, err = core.ParseHash(p.GetMgf1Hash()); err != nil {
			return s, err
		}
	}
	return s, nil
}

func deriveParamsToPB(p core.DeriveParams) *pb.DeriveRequest {
	return &pb.DeriveRequest{
		Input: &pb.MaskedKey{Blob: p.Input}, Kdf: p.KDF, Hash: p.Hash.String(), Salt: p.Salt, Info: p.Info,
		OutputType: p.OutputType, OutputBits: int32(p.OutputBits),
	}
}

func deriveParamsFromPB(r *pb.DeriveRequest) (core.DeriveParams, error) {
	h, err := core.ParseHash(r.GetHash())
	if err != nil {
		return core.DeriveParams{}, err
	}
	return core.DeriveParams{
		Input: r.GetInput().GetBlob(), KDF: r.GetKdf(), Hash: h, Salt: r.GetSalt(), Info: r.GetInfo(),
		OutputType: r.GetOutputType(), OutputBits: int(r.GetOutputBits()),
	}, nil
}

func descriptionToPB(d core.BackendDescription) *pb.DescribeResponse {
	ops := make([]string, len(d.Operations))
	for i, o := range d.Operations {
		ops[i] = string(o)
	}
	return &pb.DescribeResponse{Name: d.Name, Version: d.Version, Operations: ops,
		SignatureSchemes: d.SignatureSchemes, EncryptionSchemes: d.EncryptionSchemes}
}

func descriptionFromPB(r *pb.DescribeResponse) core.BackendDescription {
	ops := make([]core.Operation, len(r.GetOperations()))
	for i, o := range r.GetOperations() {
		ops[i] = core.Operation(o)
	}
	return core.BackendDescription{Name: r.GetName(), Version: r.GetVersion(), Operations: ops,
		SignatureSchemes: r.GetSignatureSchemes(), EncryptionSchemes: r.GetEncryptionSchemes()}
}
