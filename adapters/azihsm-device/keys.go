package azihsmdevice

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// GetKey describes an open masked key. The device keeps no named keys.
func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	if id.Namespace != core.MaskedNamespace {
		return core.KeyInfo{}, core.Errorf(core.KindNotFound,
			"the Integrated HSM keeps no named keys (%s): keys are masked key files, opened as azihsm://<file>;type=ec|rsa", id)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	k, err := b.keyLocked(id)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return k.infoCopy(), nil
}

func (k *openKey) infoCopy() core.KeyInfo {
	i := k.info
	i.Usages = slices.Clone(i.Usages)
	i.PublicKeyDER = slices.Clone(i.PublicKeyDER)
	return i
}

// Mask returns an open key's masked blob, as the device made it.
func (b *Backend) Mask(ctx context.Context, id core.KeyID) (core.MaskedKey, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	k, err := b.keyLocked(id)
	if err != nil {
		return nil, err
	}
	return slices.Clone(k.blob), nil
}

// unmaskOrder is the order kinds are tried in: the API wants the kind, the
// blob is the device's, and the device answers INVALID_KEY for a wrong one.
var unmaskOrder = []devapi.KeyKind{devapi.KindECC, devapi.KindRSA, devapi.KindSharedSecret,
	devapi.KindHMACSHA256, devapi.KindHMACSHA384, devapi.KindHMACSHA512, devapi.KindAES}

func isPair(kind devapi.KeyKind) bool { return kind == devapi.KindECC || kind == devapi.KindRSA }

// Unmask has the device open a masked blob (in the session that made it,
// for a session key made through this backend) and returns a handle to it.
func (b *Backend) Unmask(ctx context.Context, blob core.MaskedKey) (core.KeyInfo, error) {
	if len(blob) == 0 {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "masked key is empty")
	}
	name := blobName(blob)
	b.mu.RLock()
	if k := b.keys[name]; k != nil && !k.lost {
		b.mu.RUnlock()
		return k.infoCopy(), nil
	}
	app := b.appBlobs[name]
	b.mu.RUnlock()
	var s *session
	if app != "" {
		var err error
		if s, err = b.appSession(app); err != nil {
			return core.KeyInfo{}, err
		}
	}
	var k *openKey
	err := b.run(func() (*session, error) {
		sess := s
		if sess == nil {
			sess = b.main
		}
		var err error
		k, err = b.unmaskIn(sess, blob, name)
		return sess, err
	})
	if err != nil {
		return core.KeyInfo{}, keyError("the Integrated HSM could not open the masked key", core.KeyID{}, "", err)
	}
	return b.remember(k), nil
}

// unmaskIn tries each kind until the device accepts one. Caller holds b.mu
// for reading.
func (b *Backend) unmaskIn(s *session, blob []byte, name string) (*openKey, error) {
	for _, kind := range unmaskOrder {
		k := &openKey{name: name, blob: slices.Clone(blob), kind: kind, sess: s}
		var err error
		if isPair(kind) {
			k.priv, k.pub, err = b.lib.UnmaskPair(s.h, kind, blob)
		} else {
			k.priv, err = b.lib.Unmask(s.h, kind, blob)
		}
		if st, ok := devapi.StatusOf(err); ok && st == devapi.StatusInvalidKey {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := b.describe(k); err != nil {
			k.deleteHandles(b.lib)
			return nil, err
		}
		return k, nil
	}
	return nil, core.Errorf(core.KindInvalidInput, "the device takes the blob for no key kind it knows (EC, RSA, secret, HMAC, AES)")
}

// remember keeps a newly opened key; if another caller opened the same
// blob meanwhile, the first stays and the second's handles are deleted.
func (b *Backend) remember(k *openKey) core.KeyInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.keys[k.name]; old != nil && !old.lost {
		if b.lib != nil {
			k.deleteHandles(b.lib)
		}
		return old.infoCopy()
	}
	if k.sess != nil && k.sess.app != "" {
		if b.apps[k.sess.app] != k.sess { // its session ended meanwhile
			if b.lib != nil {
				k.deleteHandles(b.lib)
			}
			k.lost = true
			return k.infoCopy()
		}
		b.appBlobs[k.name] = k.sess.app
	}
	k.used.Store(b.clock.Add(1))
	b.keys[k.name] = k
	if len(b.keys) > b.cfg.maxOpenKeys {
		b.evictLocked(max(1, b.cfg.maxOpenKeys/8))
	}
	return k.infoCopy()
}

// evictLocked closes the n least recently used open keys.
func (b *Backend) evictLocked(n int) {
	all := make([]*openKey, 0, len(b.keys))
	for _, k := range b.keys {
		all = append(all, k)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Load() < all[j].used.Load() })
	for _, k := range all[:min(n, len(all))] {
		delete(b.keys, k.name)
		if b.lib != nil && !k.lost {
			k.deleteHandles(b.lib)
		}
	}
}

// describe reads what hsmbridge needs to know of an open key from the
// device's properties.
func (b *Backend) describe(k *openKey) error {
	k.info = core.KeyInfo{ID: core.KeyID{Namespace: core.MaskedNamespace, Name: k.name, Version: k.name}, Enabled: true}
	bits, err := b.u32(k.priv, devapi.PropBitLen)
	if err != nil {
		return err
	}
	k.info.Bits = int(bits)
	switch k.kind {
	case devapi.KindRSA:
		k.info.Type = core.KeyTypeRSA
	case devapi.KindECC:
		k.info.Type = core.KeyTypeEC
		c, err := b.u32(k.priv, devapi.PropECCurve)
		if err != nil {
			return err
		}
		if k.info.Curve = curveName(devapi.Curve(c)); k.info.Curve == "" {
			return core.Errorf(core.KindUnsupported, "the device reports EC curve %d, which hsmbridge does not know", c)
		}
	case devapi.KindSharedSecret:
		k.info.Type = core.KeyTypeSecret
	case devapi.KindAES:
		k.info.Type = core.KeyTypeOct
	default:
		k.info.Type = core.KeyTypeHMAC
		k.hmacHash = hmacHashOf(k.kind)
	}
	flags := []struct {
		prop   devapi.KeyPropID
		usages []core.KeyUsage
	}{
		{devapi.PropSign, []core.KeyUsage{core.UsageSign, core.UsageVerify}},
		{devapi.PropDecrypt, []core.KeyUsage{core.UsageEncrypt, core.UsageDecrypt}},
		{devapi.PropEncrypt, []core.KeyUsage{core.UsageEncrypt}},
		{devapi.PropDerive, []core.KeyUsage{core.UsageDeriveKey}},
		{devapi.PropUnwrap, []core.KeyUsage{core.UsageUnwrapKey}},
	}
	for _, f := range flags {
		v, err := b.lib.KeyProperty(k.priv, f.prop)
		if st, ok := devapi.StatusOf(err); ok && st == devapi.StatusPropertyNotPresent {
			continue
		}
		if err != nil {
			return err
		}
		if len(v) == 1 && v[0] != 0 {
			for _, u := range f.usages {
				if !slices.Contains(k.info.Usages, u) {
					k.info.Usages = append(k.info.Usages, u)
				}
			}
		}
	}
	if k.pub != 0 {
		spki, err := b.lib.KeyProperty(k.pub, devapi.PropPubKeyInfo)
		if err != nil {
			return err
		}
		k.info.PublicKeyDER = spki
	}
	return nil
}

func (b *Backend) u32(h devapi.Handle, id devapi.KeyPropID) (uint32, error) {
	v, err := b.lib.KeyProperty(h, id)
	if err != nil {
		return 0, err
	}
	n, ok := devapi.AsU32(v)
	if !ok {
		return 0, core.Errorf(core.KindInternal, "the device's key property %d is %d bytes, not 4", id, len(v))
	}
	return n, nil
}

func curveName(c devapi.Curve) core.Curve {
	switch c {
	case devapi.CurveP256:
		return core.CurveP256
	case devapi.CurveP384:
		return core.CurveP384
	case devapi.CurveP521:
		return core.CurveP521
	}
	return ""
}

func curveID(c core.Curve) (devapi.Curve, error) {
	switch c {
	case core.CurveP256:
		return devapi.CurveP256, nil
	case core.CurveP384:
		return devapi.CurveP384, nil
	case core.CurveP521:
		return devapi.CurveP521, nil
	}
	return 0, core.Errorf(core.KindUnsupported, "the Integrated HSM has P-256, P-384 and P-521, not %q", c)
}

func hmacHashOf(kind devapi.KeyKind) core.Hash {
	switch kind {
	case devapi.KindHMACSHA256:
		return core.SHA256
	case devapi.KindHMACSHA384:
		return core.SHA384
	case devapi.KindHMACSHA512:
		return core.SHA512
	}
	return 0
}

// usageProps turns the requested usages into the device's flags for the
// private (or secret) and the public half. The device allows one usage
// family per key and refuses mixtures itself.
func usageProps(us []core.KeyUsage) (priv, pub []devapi.KeyProp, err error) {
	if len(us) == 0 {
		return nil, nil, core.Errorf(core.KindInvalidInput, "a key needs a usage (digitalSignature, keyAgreement or keyEncipherment)")
	}
	privSet, pubSet := map[devapi.KeyPropID]bool{}, map[devapi.KeyPropID]bool{}
	for _, u := range us {
		switch u {
		case core.UsageSign:
			privSet[devapi.PropSign] = true
		case core.UsageVerify:
			pubSet[devapi.PropVerify] = true
		case core.UsageDecrypt:
			privSet[devapi.PropDecrypt] = true
		case core.UsageEncrypt:
			pubSet[devapi.PropEncrypt] = true
		case core.UsageDeriveKey:
			privSet[devapi.PropDerive], pubSet[devapi.PropDerive] = true, true
		default:
			return nil, nil, core.Errorf(core.KindUnsupported, "the Integrated HSM has no %s usage for application keys (digitalSignature, keyAgreement or keyEncipherment)", u)
		}
	}
	for _, id := range []devapi.KeyPropID{devapi.PropSign, devapi.PropVerify, devapi.PropDecrypt, devapi.PropEncrypt, devapi.PropDerive} {
		if privSet[id] {
			priv = append(priv, devapi.Bool(id, true))
		}
		if pubSet[id] {
			pub = append(pub, devapi.Bool(id, true))
		}
	}
	return priv, pub, nil
}

// GenerateMasked generates an EC key pair in the device (the device makes
// no RSA keys: they are imported).
func (b *Backend) GenerateMasked(ctx context.Context, spec core.KeySpec, app string) (core.MaskedKey, core.KeyInfo, error) {
	if spec.Type != core.KeyTypeEC {
		return nil, core.KeyInfo{}, core.Errorf(core.KindUnsupported,
			"the Integrated HSM generates EC keys only; an %s key must be generated outside and imported (azihsm.input_key)", spec.Type)
	}
	curve, err := curveID(spec.Curve)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	up, pp, err := usageProps(spec.Usages)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	common := []devapi.KeyProp{devapi.U32(devapi.PropKind, uint32(devapi.KindECC)), devapi.U32(devapi.PropECCurve, uint32(curve))}
	if app != "" {
		common = append(common, devapi.Bool(devapi.PropSession, true))
	}
	privProps := append(append([]devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate))}, common...), up...)
	pubProps := append(append([]devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic))}, common...), pp...)
	s, err := b.sessionOf(app)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	var k *openKey
	err = b.run(func() (*session, error) {
		priv, pub, err := b.lib.GenerateKeyPair(s.h, devapi.Algo{ID: devapi.AlgoECKeyPairGen}, privProps, pubProps)
		if err != nil {
			return s, err
		}
		k, err = b.adopt(s, devapi.KindECC, priv, pub)
		return s, err
	})
	if err != nil {
		return nil, core.KeyInfo{}, deviceError("the Integrated HSM could not generate the EC key", err)
	}
	return slices.Clone(k.blob), b.remember(k), nil
}

// sessionOf is the main session for "" and the application's otherwise.
func (b *Backend) sessionOf(app string) (*session, error) {
	if app != "" {
		return b.appSession(app)
	}
	if err := b.ready(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.main, nil
}

// adopt reads a new key's masked blob and properties. On error the
// handles are deleted. Caller holds b.mu for reading.
func (b *Backend) adopt(s *session, kind devapi.KeyKind, priv, pub devapi.Handle) (*openKey, error) {
	k := &openKey{kind: kind, priv: priv, pub: pub, sess: s}
	blob, err := b.lib.KeyProperty(priv, devapi.PropMaskedKey)
	if err == nil {
		k.blob, k.name = blob, blobName(blob)
		err = b.describe(k)
	}
	if err != nil {
		k.deleteHandles(b.lib)
		return nil, err
	}
	return k, nil
}

// importKeyBits is the size of the device's import (unwrapping) key.
const importKeyBits = 3072

// ImportWrappingKey is the public half of the device's unwrapping key,
// generated once per backend process in the main session.
func (b *Backend) ImportWrappingKey(ctx context.Context) ([]byte, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	k, err := b.importKey()
	if err != nil {
		return nil, err
	}
	return slices.Clone(k.info.PublicKeyDER), nil
}

func (b *Backend) importKey() (*openKey, error) {
	b.mu.RLock()
	k := b.unwrap
	b.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	privProps := []devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate)), devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
		devapi.U32(devapi.PropBitLen, importKeyBits), devapi.Bool(devapi.PropUnwrap, true)}
	pubProps := []devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic)), devapi.U32(devapi.PropKind, uint32(devapi.KindRSA)),
		devapi.U32(devapi.PropBitLen, importKeyBits), devapi.Bool(devapi.PropWrap, true)}
	err := b.run(func() (*session, error) {
		priv, pub, err := b.lib.GenerateKeyPair(b.main.h, devapi.Algo{ID: devapi.AlgoRSAUnwrappingKeyPairGen}, privProps, pubProps)
		if err != nil {
			return b.main, err
		}
		k, err = b.adopt(b.main, devapi.KindRSA, priv, pub)
		return b.main, err
	})
	if err != nil {
		return nil, deviceError("the Integrated HSM could not make its import key", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unwrap != nil { // made twice concurrently: keep the first
		k.deleteHandles(b.lib)
		return b.unwrap, nil
	}
	b.unwrap = k
	return k, nil
}

// ImportMasked has the device unwrap a CKM_RSA_AES_KEY_WRAP'd private key
// (RSA-OAEP-SHA256 of an AES-256 key, then AES key wrap with padding) and
// returns it masked. spec says what the key must be; the device checks it.
func (b *Backend) ImportMasked(ctx context.Context, wrapped []byte, spec core.KeySpec, app string) (core.MaskedKey, core.KeyInfo, error) {
	var kind devapi.KeyKind
	common := []devapi.KeyProp{}
	switch spec.Type {
	case core.KeyTypeRSA:
		if spec.Bits == 0 {
			return nil, core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "an RSA import must say the key's size (rsa_keygen_bits)")
		}
		kind = devapi.KindRSA
		common = append(common, devapi.U32(devapi.PropKind, uint32(kind)), devapi.U32(devapi.PropBitLen, uint32(spec.Bits)))
	case core.KeyTypeEC:
		kind = devapi.KindECC
		common = append(common, devapi.U32(devapi.PropKind, uint32(kind)))
		if spec.Curve != "" {
			c, err := curveID(spec.Curve)
			if err != nil {
				return nil, core.KeyInfo{}, err
			}
			common = append(common, devapi.U32(devapi.PropECCurve, uint32(c)))
		}
	default:
		return nil, core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "an import must say whether the key is RSA or EC (got %q)", spec.Type)
	}
	up, pp, err := usageProps(spec.Usages)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	if app != "" {
		common = append(common, devapi.Bool(devapi.PropSession, true))
	}
	privProps := append(append([]devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPrivate))}, common...), up...)
	pubProps := append(append([]devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassPublic))}, common...), pp...)
	if err := b.ready(); err != nil {
		return nil, core.KeyInfo{}, err
	}
	ik, err := b.importKey()
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	s, err := b.sessionOf(app)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	algo := devapi.Algo{ID: devapi.AlgoRSAAESKeyWrap, Params: &devapi.RSAAESKeyWrapParams{AESKeyBits: 256,
		OAEP: devapi.OAEPParams{Hash: devapi.AlgoSHA256, MGF1: devapi.MGF1SHA256}}}
	var k *openKey
	err = b.run(func() (*session, error) {
		unwrapping := ik.priv
		if s != b.main {
			// The new key lives in the session of the unwrapping key: open
			// the import key (a persistent blob) in the application's.
			h, hpub, err := b.lib.UnmaskPair(s.h, devapi.KindRSA, ik.blob)
			if err != nil {
				return s, err
			}
			defer b.lib.DeleteKey(hpub)
			defer b.lib.DeleteKey(h)
			unwrapping = h
		}
		priv, pub, err := b.lib.UnwrapKeyPair(algo, unwrapping, wrapped, privProps, pubProps)
		if err != nil {
			return s, err
		}
		k, err = b.adopt(s, kind, priv, pub)
		return s, err
	})
	if err != nil {
		if errors.Is(err, core.ErrInvalidInput) {
			return nil, core.KeyInfo{}, deviceError("the Integrated HSM refused the wrapped key (is it wrapped for this device's import key, and is it what the request says?)", err)
		}
		return nil, core.KeyInfo{}, deviceError("the Integrated HSM could not import the key", err)
	}
	return slices.Clone(k.blob), b.remember(k), nil
}
