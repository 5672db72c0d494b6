package pkcs11backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

var curveOIDs = map[core.Curve]asn1.ObjectIdentifier{
	core.CurveP256: {1, 2, 840, 10045, 3, 1, 7},
	core.CurveP384: {1, 3, 132, 0, 34},
	core.CurveP521: {1, 3, 132, 0, 35},
}

func versionOf(id []byte) string {
	if len(id) == 0 {
		return "noid"
	}
	return hex.EncodeToString(id)
}

func parseVersion(v string) ([]byte, error) {
	if v == "noid" {
		return []byte{}, nil
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) == 0 {
		return nil, core.Errorf(core.KindNotFound, "pkcs11: version %q is not a hex CKA_ID", v)
	}
	if len(b) > 32 {
		return nil, core.Errorf(core.KindInvalidInput, "pkcs11: version %q is a CKA_ID of %d bytes; at most 32 are supported", v, len(b))
	}
	return b, nil
}

// checkNamespace refuses a namespace that is not this token's.
func (b *Backend) checkNamespace(id core.KeyID) error {
	if id.Namespace == "" || id.Namespace == b.namespace || id.Namespace == b.pool.label {
		return nil
	}
	return core.Errorf(core.KindNotFound, "pkcs11: key %s: namespace %q is not this token's (%q, token %q)", id, id.Namespace, b.namespace, b.pool.label)
}

type object struct {
	h   pkcs11.ObjectHandle
	id  []byte
	lbl string
}

func (b *Backend) find(s pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]object, error) {
	ctx := b.pool.ctx
	if err := ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	var hs []pkcs11.ObjectHandle
	for {
		part, _, err := ctx.FindObjects(s, 64)
		if err != nil {
			ctx.FindObjectsFinal(s)
			return nil, err
		}
		hs = append(hs, part...)
		if len(part) < 64 {
			break
		}
	}
	if err := ctx.FindObjectsFinal(s); err != nil {
		return nil, err
	}
	out := make([]object, 0, len(hs))
	for _, h := range hs {
		a, err := ctx.GetAttributeValue(s, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil), pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
		if err != nil {
			return nil, err
		}
		out = append(out, object{h: h, id: a[0].Value, lbl: string(a[1].Value)})
	}
	return out, nil
}

// resolve finds the private key of id: a pinned CKA_ID, or the highest.
func (b *Backend) resolve(s pkcs11.SessionHandle, id core.KeyID) (object, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, id.Name)}
	var want []byte
	if id.Version != "" {
		v, err := parseVersion(id.Version)
		if err != nil {
			return object{}, err
		}
		want = v
	}
	objs, err := b.find(s, tmpl)
	if err != nil {
		return object{}, p11err("C_FindObjects", "key "+quote(id.String()), err)
	}
	var best *object
	for i := range objs {
		o := &objs[i]
		if want != nil && !bytes.Equal(o.id, want) {
			continue
		}
		if best == nil || bytes.Compare(o.id, best.id) > 0 {
			best = o
		}
	}
	if best == nil {
		// A session that lost its login sees no private objects at all.
		if si, err := b.pool.ctx.GetSessionInfo(s); err == nil && si.State != pkcs11.CKS_RW_USER_FUNCTIONS && si.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return object{}, p11err("C_FindObjects", "key "+quote(id.String()), pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
		}
		return object{}, core.Errorf(core.KindNotFound, "pkcs11: no private key %s in token %q", id, b.pool.label)
	}
	return *best, nil
}

func boolAttr(a *pkcs11.Attribute) bool { return len(a.Value) > 0 && a.Value[0] != 0 }

// info reads a private key's metadata and public key.
func (b *Backend) info(s pkcs11.SessionHandle, ns string, o object) (core.KeyInfo, error) {
	ctx := b.pool.ctx
	ki := core.KeyInfo{ID: core.KeyID{Namespace: ns, Name: o.lbl, Version: versionOf(o.id)}, Enabled: true}
	if len(o.id) > 32 {
		return ki, core.Errorf(core.KindUnsupported, "pkcs11: key %q has a CKA_ID of %d bytes; at most 32 are supported", o.lbl, len(o.id))
	}
	a, err := ctx.GetAttributeValue(s, o.h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil), pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil), pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil)})
	if err != nil {
		return ki, p11err("C_GetAttributeValue", "key "+quote(ki.ID.String()), err)
	}
	for i, u := range []core.KeyUsage{core.UsageSign, core.UsageDecrypt, core.UsageUnwrapKey, core.UsageDeriveKey} {
		if boolAttr(a[i+1]) {
			ki.Usages = append(ki.Usages, u)
			switch u {
			case core.UsageSign:
				ki.Usages = append(ki.Usages, core.UsageVerify)
			case core.UsageDecrypt:
				ki.Usages = append(ki.Usages, core.UsageEncrypt)
			case core.UsageUnwrapKey:
				ki.Usages = append(ki.Usages, core.UsageWrapKey)
			}
		}
	}
	var kt uint64
	if len(a[0].Value) == 8 {
		kt = binary.NativeEndian.Uint64(a[0].Value)
	}
	if kt == pkcs11.CKK_EC {
		// Tokens default CKA_DECRYPT and CKA_UNWRAP to true on EC keys
		// too (SoftHSM2, and so pkcs11-tool's keys), but neither means
		// anything an EC key can do here.
		ki.Usages = slices.DeleteFunc(ki.Usages, func(u core.KeyUsage) bool {
			return u == core.UsageDecrypt || u == core.UsageEncrypt || u == core.UsageUnwrapKey || u == core.UsageWrapKey
		})
	}
	pubs, _ := b.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, o.lbl), pkcs11.NewAttribute(pkcs11.CKA_ID, o.id)})
	src := o.h
	if len(pubs) > 0 {
		src = pubs[0].h
	}
	var pub any
	switch kt {
	case pkcs11.CKK_RSA:
		ki.Type = core.KeyTypeRSA
		v, err := ctx.GetAttributeValue(s, src, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
		if err != nil {
			return ki, p11err("C_GetAttributeValue", "key "+quote(ki.ID.String()), err)
		}
		n := new(big.Int).SetBytes(v[0].Value)
		pub = &rsa.PublicKey{N: n, E: int(new(big.Int).SetBytes(v[1].Value).Int64())}
		ki.Bits = n.BitLen()
	case pkcs11.CKK_EC:
		ki.Type = core.KeyTypeEC
		if len(pubs) == 0 {
			return ki, core.Errorf(core.KindNotFound, "pkcs11: key %s has no public key object", ki.ID)
		}
		v, err := ctx.GetAttributeValue(s, src, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return ki, p11err("C_GetAttributeValue", "key "+quote(ki.ID.String()), err)
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(v[0].Value, &oid); err != nil {
			return ki, core.Errorf(core.KindUnsupported, "pkcs11: key %s: CKA_EC_PARAMS is not a named curve", ki.ID)
		}
		var curve elliptic.Curve
		for c, o := range curveOIDs {
			if o.Equal(oid) {
				ki.Curve = c
			}
		}
		switch ki.Curve {
		case core.CurveP256:
			curve = elliptic.P256()
		case core.CurveP384:
			curve = elliptic.P384()
		case core.CurveP521:
			curve = elliptic.P521()
		default:
			return ki, core.Errorf(core.KindUnsupported, "pkcs11: key %s: curve %v is not supported", ki.ID, oid)
		}
		ki.Bits = curve.Params().BitSize
		point := v[1].Value
		var raw []byte
		if rest, err := asn1.Unmarshal(point, &raw); err == nil && len(rest) == 0 {
			point = raw
		}
		x, y := elliptic.Unmarshal(curve, point) //nolint:staticcheck // plain uncompressed point
		if x == nil {
			return ki, core.Errorf(core.KindInternal, "pkcs11: key %s: bad CKA_EC_POINT", ki.ID)
		}
		pub = &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
	default:
		return ki, core.Errorf(core.KindUnsupported, "pkcs11: key %s has key type 0x%x", ki.ID, kt)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ki, core.Errorf(core.KindInternal, "pkcs11: key %s: %v", ki.ID, err)
	}
	ki.PublicKeyDER = der
	if len(o.id) >= 8 {
		ki.Created = time.Unix(0, int64(binary.BigEndian.Uint64(o.id[:8])))
		if len(o.id) != 16 {
			ki.Created = time.Time{}
		}
	}
	return ki, nil
}

func (b *Backend) ns(id core.KeyID) string {
	if id.Namespace != "" {
		return id.Namespace
	}
	return b.namespace
}

// GetKey implements ports.KeyLookup.
func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (ki core.KeyInfo, err error) {
	if err := b.ready(); err != nil {
		return ki, err
	}
	if err := b.checkNamespace(id); err != nil {
		return ki, err
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := b.resolve(s, id)
		if err != nil {
			return err
		}
		ki, err = b.info(s, b.ns(id), o)
		return err
	})
	return ki, err
}

// ListKeys implements ports.KeyLister: the latest version of every label.
func (b *Backend) ListKeys(ctx context.Context, namespace string) (out []core.KeyInfo, err error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if namespace != "" && b.checkNamespace(core.KeyID{Namespace: namespace}) != nil {
		return nil, nil
	}
	ns := namespace
	if ns == "" {
		ns = b.namespace
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		objs, err := b.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
		if err != nil {
			return p11err("C_FindObjects", "token "+quote(b.pool.label), err)
		}
		latest := map[string]object{}
		for _, o := range objs {
			if cur, ok := latest[o.lbl]; !ok || bytes.Compare(o.id, cur.id) > 0 {
				latest[o.lbl] = o
			}
		}
		out = out[:0]
		for _, o := range latest {
			ki, err := b.info(s, ns, o)
			if err != nil {
				continue // a key we cannot describe is not listed
			}
			out = append(out, ki)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID.Name < out[j].ID.Name })
	return out, err
}

func newCKAID() []byte {
	id := make([]byte, 16)
	binary.BigEndian.PutUint64(id, uint64(time.Now().UnixNano()))
	rand.Read(id[8:])
	return id
}

// CreateKey implements ports.KeyGenerator with C_GenerateKeyPair.
func (b *Backend) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (ki core.KeyInfo, err error) {
	if err := b.ready(); err != nil {
		return ki, err
	}
	if err := b.checkNamespace(id); err != nil {
		return ki, err
	}
	if err := spec.Validate(); err != nil {
		return ki, err
	}
	if id.Name == "" {
		return ki, core.Errorf(core.KindInvalidInput, "pkcs11: a key needs a name")
	}
	usages := spec.Usages
	if len(usages) == 0 {
		usages = core.DefaultUsages(spec.Type)
	}
	has := func(us ...core.KeyUsage) bool {
		for _, u := range us {
			for _, x := range usages {
				if x == u {
					return true
				}
			}
		}
		return false
	}
	ckaid := newCKAID()
	rsaKey := spec.Type == core.KeyTypeRSA
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, id.Name), pkcs11.NewAttribute(pkcs11.CKA_ID, ckaid),
		// Every usage attribute is given, false ones too: a token's
		// defaults may allow more (SoftHSM2 sets CKA_DECRYPT and
		// CKA_UNWRAP unless told otherwise).
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, has(core.UsageSign)),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, has(core.UsageDeriveKey)),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, rsaKey && has(core.UsageDecrypt)),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, rsaKey && has(core.UsageUnwrapKey)),
	}
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, id.Name),
		pkcs11.NewAttribute(pkcs11.CKA_ID, ckaid), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, has(core.UsageSign, core.UsageVerify)),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, rsaKey && has(core.UsageDecrypt, core.UsageEncrypt)),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, rsaKey && has(core.UsageUnwrapKey, core.UsageWrapKey)),
	}
	var mech uint
	switch spec.Type {
	case core.KeyTypeRSA:
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, spec.Bits), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	case core.KeyTypeEC:
		oid, ok := curveOIDs[spec.Curve]
		if !ok {
			return ki, core.Errorf(core.KindUnsupported, "pkcs11: curve %s is not supported (P-256, P-384, P-521)", spec.Curve)
		}
		der, _ := asn1.Marshal(oid)
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, der))
	default:
		return ki, core.Errorf(core.KindUnsupported, "pkcs11: key type %s is not supported (RSA, EC)", spec.Type)
	}
	if !b.hasMech(mech) {
		return ki, core.Errorf(core.KindUnsupported, "pkcs11: token %q has no %s", b.pool.label, mechName(mech))
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		_, ph, err := b.pool.ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv)
		if err != nil {
			return p11err("C_GenerateKeyPair", "key "+quote(id.String()), err)
		}
		ki, err = b.info(s, b.ns(id), object{h: ph, id: ckaid, lbl: id.Name})
		return err
	})
	return ki, err
}

// DeleteKey implements ports.KeyDeleter: every object with the label.
func (b *Backend) DeleteKey(ctx context.Context, id core.KeyID) (n int, err error) {
	if err := b.ready(); err != nil {
		return 0, err
	}
	if err := b.checkNamespace(id); err != nil {
		return 0, err
	}
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		objs, err := b.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, id.Name)})
		if err != nil {
			return p11err("C_FindObjects", "key "+quote(id.String()), err)
		}
		privs, err := b.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, id.Name)})
		if err != nil {
			return p11err("C_FindObjects", "key "+quote(id.String()), err)
		}
		if len(privs) == 0 {
			return core.Errorf(core.KindNotFound, "pkcs11: no private key %s in token %q", id, b.pool.label)
		}
		for _, o := range objs {
			if err := b.pool.ctx.DestroyObject(s, o.h); err != nil {
				return p11err("C_DestroyObject", "key "+quote(id.String()), err)
			}
		}
		n = len(privs)
		return nil
	})
	return n, err
}
