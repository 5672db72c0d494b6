package pkcs11backend

import (
	"context"
	"encoding/asn1"
	"math/big"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// DigestInfo prefixes (RFC 8017 section 9.2, note 1).
var digestInfo = map[core.Hash][]byte{
	core.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	core.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	core.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	core.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	core.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var hashMech = map[core.Hash]uint{core.SHA1: pkcs11.CKM_SHA_1, core.SHA224: pkcs11.CKM_SHA224, core.SHA256: pkcs11.CKM_SHA256, core.SHA384: pkcs11.CKM_SHA384, core.SHA512: pkcs11.CKM_SHA512}
var mgfOf = map[core.Hash]uint{core.SHA1: pkcs11.CKG_MGF1_SHA1, core.SHA224: pkcs11.CKG_MGF1_SHA224, core.SHA256: pkcs11.CKG_MGF1_SHA256, core.SHA384: pkcs11.CKG_MGF1_SHA384, core.SHA512: pkcs11.CKG_MGF1_SHA512}

// Sign implements ports.Signer.
func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) (sig []byte, err error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := b.checkNamespace(id); err != nil {
		return nil, err
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := b.resolve(s, id)
		if err != nil {
			return err
		}
		ki, err := b.info(s, b.ns(id), o)
		if err != nil {
			return err
		}
		if !ki.Allows(core.UsageSign) {
			return core.Errorf(core.KindOperationNotAllowed, "pkcs11: key %s does not allow sign", ki.ID)
		}
		if err := scheme.CheckFor(ki, digest); err != nil {
			return err
		}
		var mech *pkcs11.Mechanism
		data := digest
		switch scheme.Padding {
		case core.PaddingPKCS1v15:
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
			data = append(append([]byte{}, digestInfo[scheme.Hash]...), digest...)
		case core.PaddingPSS:
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(hashMech[scheme.Hash], mgfOf[scheme.EffectiveMGF1()], uint(scheme.SaltLength)))
		case core.PaddingECDSA:
			mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
		}
		if !b.hasMech(mech.Mechanism) {
			return core.Errorf(core.KindUnsupported, "pkcs11: token %q has no %s for %s", b.pool.label, mechName(mech.Mechanism), scheme.Name())
		}
		what := "key " + quote(ki.ID.String())
		if err := b.pool.ctx.SignInit(s, []*pkcs11.Mechanism{mech}, o.h); err != nil {
			return p11err("C_SignInit", what, err)
		}
		out, err := b.pool.ctx.Sign(s, data)
		if err != nil {
			return p11err("C_Sign", what, err)
		}
		if scheme.Padding == core.PaddingECDSA {
			if len(out)%2 != 0 {
				return core.Errorf(core.KindInternal, "pkcs11: C_Sign on %s: ECDSA signature of odd length %d", what, len(out))
			}
			h := len(out) / 2
			out, _ = asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(out[:h]), new(big.Int).SetBytes(out[h:])})
		}
		sig = out
		return nil
	})
	return sig, err
}

// Decrypt implements ports.Decrypter.
func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) (pt []byte, err error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := b.checkNamespace(id); err != nil {
		return nil, err
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := b.resolve(s, id)
		if err != nil {
			return err
		}
		ki, err := b.info(s, b.ns(id), o)
		if err != nil {
			return err
		}
		if ki.Type != core.KeyTypeRSA {
			return core.Errorf(core.KindInvalidInput, "pkcs11: %s needs an RSA key, key %s is %s", scheme.Name(), ki.ID, ki.Type)
		}
		if !ki.Allows(core.UsageDecrypt) {
			return core.Errorf(core.KindOperationNotAllowed, "pkcs11: key %s does not allow decrypt", ki.ID)
		}
		var mech *pkcs11.Mechanism
		switch scheme.Padding {
		case core.EncryptionPKCS1v15:
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		case core.EncryptionOAEP:
			h, ok := hashMech[scheme.OAEPHash]
			mh := scheme.MGF1Hash
			if mh == core.HashUnspecified {
				mh = scheme.OAEPHash
			}
			if !ok || mgfOf[mh] == 0 {
				return core.Errorf(core.KindUnsupported, "pkcs11: encryption scheme %s is not supported", scheme.Name())
			}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(h, mgfOf[mh], pkcs11.CKZ_DATA_SPECIFIED, scheme.Label))
		default:
			return core.Errorf(core.KindUnsupported, "pkcs11: encryption scheme %s is not supported", scheme.Name())
		}
		what := "key " + quote(ki.ID.String())
		if err := b.pool.ctx.DecryptInit(s, []*pkcs11.Mechanism{mech}, o.h); err != nil {
			return p11err("C_DecryptInit", what, err)
		}
		pt, err = b.pool.ctx.Decrypt(s, ciphertext)
		return p11err("C_Decrypt", what, err)
	})
	return pt, err
}
