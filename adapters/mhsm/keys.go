package mhsm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"sort"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// GetKey reads a key version (the latest when id.Version is empty).
func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	if err := checkID(id, true); err != nil {
		return core.KeyInfo{}, err
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return b.fetch(ctx, c, id)
}

// fetch reads a key from the service and caches it.
func (b *Backend) fetch(ctx context.Context, c *hsmClient, id core.KeyID) (core.KeyInfo, error) {
	var resp azkeys.GetKeyResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.kc.GetKey(ctx, id.Name, id.Version, nil)
		return err
	})
	if err != nil {
		return core.KeyInfo{}, b.mapErr(c, "reading", id, err)
	}
	info, err := bundleInfo(id, resp.Key, resp.Attributes)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return b.remember(info), nil
}

// bundleInfo converts the service's JSON Web Key and attributes. The
// namespace and name are the caller's (the kid's host may be anything a
// proxy or stand-in chose); the version comes from the kid.
func bundleInfo(id core.KeyID, jwk *azkeys.JSONWebKey, attrs *azkeys.KeyAttributes) (core.KeyInfo, error) {
	info, err := partialInfo(id, jwk, attrs)
	if err != nil {
		return info, err
	}
	switch {
	case info.Type == core.KeyTypeRSA:
		if len(jwk.N) == 0 || len(jwk.E) == 0 || len(jwk.E) > 4 {
			return info, core.Errorf(core.KindInternal, "mhsm: key %s: the service returned an RSA key without a valid n and e", id)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(jwk.N), E: int(new(big.Int).SetBytes(jwk.E).Int64())}
		info.Bits = pub.N.BitLen()
		info.PublicKeyDER, err = x509.MarshalPKIXPublicKey(pub)
	case info.Type == core.KeyTypeEC && info.Curve == core.CurveP256K:
		// secp256k1: crypto/ecdsa and crypto/x509 do not have it.
		var pub *secp256k1.PublicKey
		if pub, err = secp256k1.NewPublicKey(jwk.X, jwk.Y); err != nil {
			return info, core.Errorf(core.KindInternal, "mhsm: key %s: the service returned an invalid P-256K point: %v", id, err)
		}
		info.Bits = 256
		info.PublicKeyDER, err = secp256k1.MarshalPKIXPublicKey(pub)
	case info.Type == core.KeyTypeEC:
		curve := ellipticCurve(info.Curve)
		if curve == nil {
			return info, core.Errorf(core.KindUnsupported, "mhsm: key %s is on curve %s, which hsmbridge does not support (P-256, P-256K, P-384, P-521)", id, info.Curve)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(jwk.X) > size || len(jwk.Y) > size {
			return info, core.Errorf(core.KindInternal, "mhsm: key %s: the service returned an EC point too long for %s", id, info.Curve)
		}
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(jwk.X):1+size], jwk.X)
		copy(point[1+2*size-len(jwk.Y):], jwk.Y)
		var pub *ecdsa.PublicKey
		if pub, err = ecdsa.ParseUncompressedPublicKey(curve, point); err != nil {
			return info, core.Errorf(core.KindInternal, "mhsm: key %s: the service returned an invalid EC point: %v", id, err)
		}
		info.Bits = curve.Params().BitSize
		info.PublicKeyDER, err = x509.MarshalPKIXPublicKey(pub)
	}
	if err != nil {
		return info, core.Errorf(core.KindInternal, "mhsm: key %s: encoding public key: %v", id, err)
	}
	return info, nil
}

// partialInfo is everything but the public key: what a listing can show
// even for a key hsmbridge cannot use.
func partialInfo(id core.KeyID, jwk *azkeys.JSONWebKey, attrs *azkeys.KeyAttributes) (core.KeyInfo, error) {
	if jwk == nil || jwk.Kty == nil {
		return core.KeyInfo{}, core.Errorf(core.KindInternal, "mhsm: key %s: the service's answer has no key", id)
	}
	info := core.KeyInfo{ID: core.KeyID{Namespace: id.Namespace, Name: id.Name, Version: id.Version}}
	if jwk.KID != nil {
		if v := jwk.KID.Version(); v != "" {
			info.ID.Version = v
		}
	}
	if info.ID.Version == "" {
		return info, core.Errorf(core.KindInternal, "mhsm: key %s: the service's answer names no version", id)
	}
	switch kty := strings.TrimSuffix(string(*jwk.Kty), "-HSM"); kty {
	case "RSA":
		info.Type = core.KeyTypeRSA
	case "EC":
		info.Type = core.KeyTypeEC
		if jwk.Crv != nil {
			info.Curve = core.Curve(*jwk.Crv)
		}
	case "oct":
		info.Type = core.KeyTypeOct
	default:
		return info, core.Errorf(core.KindUnsupported, "mhsm: key %s has type %s, which hsmbridge does not support", id, *jwk.Kty)
	}
	for _, op := range jwk.KeyOps {
		if op == nil {
			continue
		}
		if u, err := core.ParseKeyUsage(string(*op)); err == nil {
			info.Usages = append(info.Usages, u)
		}
	}
	if attrs != nil {
		info.Enabled = attrs.Enabled == nil || *attrs.Enabled
		if attrs.Created != nil {
			info.Created = *attrs.Created
		}
	}
	return info, nil
}

func ellipticCurve(c core.Curve) elliptic.Curve {
	switch c {
	case core.CurveP256:
		return elliptic.P256()
	case core.CurveP384:
		return elliptic.P384()
	case core.CurveP521:
		return elliptic.P521()
	}
	return nil
}

// keyOps converts usages to key_ops words (the same words in Key Vault).
func keyOps(usages []core.KeyUsage) ([]*azkeys.KeyOperation, error) {
	if len(usages) == 0 {
		return nil, nil // key_ops left out: the service chooses
	}
	ops := make([]*azkeys.KeyOperation, 0, len(usages))
	seen := map[core.KeyUsage]bool{}
	for _, u := range usages {
		u, err := core.ParseKeyUsage(string(u))
		if err != nil {
			return nil, err
		}
		if !seen[u] {
			seen[u] = true
			ops = append(ops, to.Ptr(azkeys.KeyOperation(u)))
		}
	}
	return ops, nil
}

// CreateKey creates a key (or a new version of one) inside the HSM.
func (b *Backend) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error) {
	if err := checkID(id, true); err != nil {
		return core.KeyInfo{}, err
	}
	if id.Version != "" {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "mhsm: key %q: the HSM chooses a new key's version; do not give one", id.Name)
	}
	if err := spec.Validate(); err != nil {
		return core.KeyInfo{}, err
	}
	ops, err := keyOps(spec.Usages)
	if err != nil {
		return core.KeyInfo{}, err
	}
	params := azkeys.CreateKeyParameters{KeyOps: ops, KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}
	switch spec.Type {
	case core.KeyTypeRSA:
		params.Kty = to.Ptr(azkeys.KeyTypeRSAHSM)
		params.KeySize = to.Ptr(int32(spec.Bits))
		params.PublicExponent = to.Ptr(int32(65537))
	case core.KeyTypeEC:
		params.Kty = to.Ptr(azkeys.KeyTypeECHSM)
		params.Curve = to.Ptr(azkeys.CurveName(spec.Curve))
	case core.KeyTypeOct:
		params.Kty = to.Ptr(azkeys.KeyTypeOctHSM)
		params.KeySize = to.Ptr(int32(spec.Bits))
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return core.KeyInfo{}, err
	}
	var resp azkeys.CreateKeyResponse
	err = c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.kc.CreateKey(ctx, id.Name, params, nil)
		return err
	})
	if err != nil {
		return core.KeyInfo{}, b.mapErr(c, "creating", id, err)
	}
	info, err := bundleInfo(id, resp.Key, resp.Attributes)
	if err != nil {
		return core.KeyInfo{}, err
	}
	if info.Type == core.KeyTypeOct {
		info.Bits = spec.Bits
	}
	return b.remember(info), nil
}

// ImportKey imports a PKCS#8 RSA or EC private key, to be held in the HSM.
func (b *Backend) ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error) {
	if err := checkID(id, true); err != nil {
		return core.KeyInfo{}, err
	}
	if id.Version != "" {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "mhsm: key %q: the HSM chooses an imported key's version; do not give one", id.Name)
	}
	if len(usages) == 0 {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "a key needs at least one allowed operation")
	}
	ops, err := keyOps(usages)
	if err != nil {
		return core.KeyInfo{}, err
	}
	var priv any
	if k1, err := secp256k1.ParsePKCS8PrivateKey(pkcs8); err == nil {
		priv = k1 // crypto/x509 has no secp256k1
	} else if priv, err = x509.ParsePKCS8PrivateKey(pkcs8); err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "mhsm: the key to import is not a valid PKCS#8 private key")
	}
	jwk := &azkeys.JSONWebKey{KeyOps: ops}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if err := (core.KeySpec{Type: core.KeyTypeRSA, Bits: k.N.BitLen(), Usages: usages}).Validate(); err != nil {
			return core.KeyInfo{}, err
		}
		if len(k.Primes) != 2 {
			return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "mhsm: multi-prime RSA keys cannot be imported")
		}
		k.Precompute()
		jwk.Kty = to.Ptr(azkeys.KeyTypeRSA)
		jwk.N = k.N.Bytes()
		jwk.E = big.NewInt(int64(k.E)).Bytes()
		jwk.D = k.D.Bytes()
		jwk.P = k.Primes[0].Bytes()
		jwk.Q = k.Primes[1].Bytes()
		jwk.DP = k.Precomputed.Dp.Bytes()
		jwk.DQ = k.Precomputed.Dq.Bytes()
		jwk.QI = k.Precomputed.Qinv.Bytes()
	case *ecdsa.PrivateKey:
		var crv core.Curve
		switch k.Curve {
		case elliptic.P256():
			crv = core.CurveP256
		case elliptic.P384():
			crv = core.CurveP384
		case elliptic.P521():
			crv = core.CurveP521
		default:
			return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "mhsm: curve %s cannot be imported (P-256, P-256K, P-384 or P-521)", k.Curve.Params().Name)
		}
		point, err := k.PublicKey.Bytes() // 04 || X || Y, fixed width
		if err != nil {
			return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "mhsm: the EC key to import is invalid: %v", err)
		}
		d, err := k.Bytes()
		if err != nil {
			return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "mhsm: the EC key to import is invalid: %v", err)
		}
		size := len(d)
		jwk.Kty = to.Ptr(azkeys.KeyTypeEC)
		jwk.Crv = to.Ptr(azkeys.CurveName(crv))
		jwk.X = point[1 : 1+size]
		jwk.Y = point[1+size:]
		jwk.D = d
	case *secp256k1.PrivateKey:
		point := k.PublicKey.Bytes()
		jwk.Kty = to.Ptr(azkeys.KeyTypeEC)
		jwk.Crv = to.Ptr(azkeys.CurveNameP256K)
		jwk.X = point[1 : 1+secp256k1.Size]
		jwk.Y = point[1+secp256k1.Size:]
		jwk.D = k.Bytes()
	default:
		return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "mhsm: cannot import a %T key (RSA or EC only)", priv)
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return core.KeyInfo{}, err
	}
	params := azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true), KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}
	var resp azkeys.ImportKeyResponse
	err = c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.kc.ImportKey(ctx, id.Name, params, nil)
		return err
	})
	if err != nil {
		return core.KeyInfo{}, b.mapErr(c, "importing", id, err)
	}
	info, err := bundleInfo(id, resp.Key, resp.Attributes)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return b.remember(info), nil
}

// DeleteKey deletes a key with all its versions. Managed HSM keeps deleted
// keys recoverable for the HSM's retention period; purging is left to an
// administrator (it needs the Crypto Officer role).
func (b *Backend) DeleteKey(ctx context.Context, id core.KeyID) (int, error) {
	if err := checkID(id, true); err != nil {
		return 0, err
	}
	if id.Version != "" {
		return 0, core.Errorf(core.KindInvalidInput, "key %q: delete removes every version; do not pin one", id.Namespace+"/"+id.Name)
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return 0, err
	}
	// Count the versions first (they cannot be listed once deleted); a
	// failure here only loses the count, the delete decides.
	versions := 0
	pager := c.kc.NewListKeyPropertiesVersionsPager(id.Name, nil)
	for pager.More() {
		var page azkeys.ListKeyPropertiesVersionsResponse
		if c.call(ctx, func(ctx context.Context) (err error) { page, err = pager.NextPage(ctx); return err }) != nil {
			versions = 0
			break
		}
		versions += len(page.Value)
	}
	err = c.call(ctx, func(ctx context.Context) error {
		_, err := c.kc.DeleteKey(ctx, id.Name, nil)
		return err
	})
	b.forget(id.Namespace, id.Name)
	if err != nil {
		return 0, b.mapErr(c, "deleting", id, err)
	}
	return max(versions, 1), nil
}

// ListKeys lists the latest version of every key in namespace, or in every
// HSM named in the hsms setting or used so far when namespace is empty.
func (b *Backend) ListKeys(ctx context.Context, namespace string) ([]core.KeyInfo, error) {
	var hsms []string
	if namespace != "" {
		hsms = []string{namespace}
	} else {
		b.mu.RLock()
		set := map[string]bool{}
		for _, h := range b.cfg.hsms {
			set[h] = true
		}
		for h := range b.seen {
			set[h] = true
		}
		b.mu.RUnlock()
		for h := range set {
			hsms = append(hsms, h)
		}
		sort.Strings(hsms)
		if len(hsms) == 0 {
			return nil, core.Errorf(core.KindInvalidInput, "mhsm: listing keys: which HSMs? name them in the backend's %s setting (e.g. hsms = \"MyHSM\") or list one HSM's keys", SettingHSMs)
		}
	}
	var out []core.KeyInfo
	for _, h := range hsms {
		infos, err := b.listHSM(ctx, h)
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
	}
	return out, nil
}

// listConcurrency bounds the key reads of one listing: the list answer has
// names only, so each key costs a read.
const listConcurrency = 8

func (b *Backend) listHSM(ctx context.Context, hsm string) ([]core.KeyInfo, error) {
	if err := checkID(core.KeyID{Namespace: hsm}, false); err != nil {
		return nil, err
	}
	c, err := b.client(hsm)
	if err != nil {
		return nil, err
	}
	var names []string
	pager := c.kc.NewListKeyPropertiesPager(nil)
	for pager.More() {
		var page azkeys.ListKeyPropertiesResponse
		if err := c.call(ctx, func(ctx context.Context) (err error) { page, err = pager.NextPage(ctx); return err }); err != nil {
			return nil, b.mapErr(c, "listing keys of", core.KeyID{Namespace: hsm}, err)
		}
		for _, p := range page.Value {
			if p != nil && p.KID != nil {
				names = append(names, p.KID.Name())
			}
		}
	}
	infos := make([]core.KeyInfo, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, listConcurrency)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := core.KeyID{Namespace: hsm, Name: name}
			var resp azkeys.GetKeyResponse
			err := c.call(ctx, func(ctx context.Context) (err error) {
				resp, err = c.kc.GetKey(ctx, name, "", nil)
				return err
			})
			if err != nil {
				errs[i] = b.mapErr(c, "reading", id, err)
				return
			}
			info, err := bundleInfo(id, resp.Key, resp.Attributes)
			if err == nil {
				info = b.remember(info) // keeps the size of AES keys this process made
			} else {
				// Show what can be shown of a key hsmbridge cannot use.
				info, err = partialInfo(id, resp.Key, resp.Attributes)
			}
			infos[i], errs[i] = info, err
		}()
	}
	wg.Wait()
	out := infos[:0]
	for i, info := range infos {
		switch {
		case errs[i] == nil:
			out = append(out, info)
		case core.KindOf(errs[i]) == core.KindNotFound:
			// deleted between the listing and the read
		default:
			return nil, errs[i]
		}
	}
	return out, nil
}

// usable returns the key's info for an operation, from the cache when the
// version is pinned and the cached answer allows the operation; a cached
// refusal is checked again with the service before it is believed.
func (b *Backend) usable(ctx context.Context, c *hsmClient, id core.KeyID, usage core.KeyUsage) (core.KeyInfo, error) {
	if info, ok := b.cached(id); ok && info.Enabled && info.Allows(usage) {
		return info, nil
	}
	info, err := b.fetch(ctx, c, id)
	if err != nil {
		return core.KeyInfo{}, err
	}
	if !info.Enabled {
		return core.KeyInfo{}, core.Errorf(core.KindOperationNotAllowed, "mhsm: %s in Managed HSM %q is disabled; enable it with az keyvault key set-attributes --hsm-name %s --name %s --enabled true",
			keyDesc(info.ID), c.hsm, c.hsm, id.Name)
	}
	if !info.Allows(usage) {
		allowed := make([]string, len(info.Usages))
		for i, u := range info.Usages {
			allowed[i] = string(u)
		}
		return core.KeyInfo{}, core.Errorf(core.KindOperationNotAllowed, "mhsm: %s in Managed HSM %q does not allow %s (its key_ops: %s)",
			keyDesc(info.ID), c.hsm, usage, strings.Join(allowed, ", "))
	}
	return info, nil
}
