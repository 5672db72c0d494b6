package hostsvc

import (
	"context"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Masked keys (docs/MASKED_KEYS.md): the reference is an azihsm:// URI that
// only routes the request; the backend sees no path.

func (s *Service) maskedCall(ctx context.Context, ref string, op core.Operation) (*call, ports.MaskedKeyMaker, error) {
	c, err := s.begin(ctx, ref, "", op)
	if err != nil {
		return nil, nil, err
	}
	m, ok := c.backend.(ports.MaskedKeyMaker)
	if !ok {
		c.done()
		return nil, nil, wrap(c.ref.String(), c.backend.Name(), notImplemented(op))
	}
	return c, m, nil
}

// GenerateMasked generates a key in the backend and returns it masked, with
// the reference pinned to the handle the backend opened it under.
func (s *Service) GenerateMasked(ctx context.Context, ref string, spec core.KeySpec, session string) (blob core.MaskedKey, k Key, err error) {
	began := nanotime()
	var c *call
	defer func() {
		s.report(ctx, began, c, ref, "", core.OpGenerateMasked, keyTypeName(spec.Type), len(blob), err)
	}()
	if err := spec.Validate(); err != nil {
		return nil, Key{}, core.Errorf(core.KindOf(err), "%s: %s", ref, err)
	}
	c, m, err := s.maskedCall(ctx, ref, core.OpGenerateMasked)
	if err != nil {
		return nil, Key{}, err
	}
	defer c.done()
	blob, info, err := m.GenerateMasked(ctx, spec, session)
	if err != nil {
		return nil, Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return blob, c.key(info), nil
}

// ImportWrappingKey returns the public key imports to ref's backend are
// wrapped under.
func (s *Service) ImportWrappingKey(ctx context.Context, ref string) ([]byte, error) {
	c, m, err := s.maskedCall(ctx, ref, core.OpImportMasked)
	if err != nil {
		return nil, err
	}
	defer c.done()
	spki, err := m.ImportWrappingKey(ctx)
	return spki, wrap(c.ref.String(), c.backend.Name(), err)
}

// ImportMasked imports a wrapped private key and returns it masked.
func (s *Service) ImportMasked(ctx context.Context, ref string, wrapped []byte, spec core.KeySpec, session string) (blob core.MaskedKey, k Key, err error) {
	began := nanotime()
	c, m, err := s.maskedCall(ctx, ref, core.OpImportMasked)
	defer func() { s.report(ctx, began, c, ref, "", core.OpImportMasked, keyTypeName(spec.Type), len(blob), err) }()
	if err != nil {
		return nil, Key{}, err
	}
	defer c.done()
	blob, info, err := m.ImportMasked(ctx, wrapped, spec, session)
	if err != nil {
		return nil, Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return blob, c.key(info), nil
}

// OpenMasked opens a blob in ref's backend; the returned reference names
// the handle as its version.
func (s *Service) OpenMasked(ctx context.Context, ref string, blob core.MaskedKey) (k Key, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, "", core.OpUnmask)
	defer func() { s.report(ctx, began, c, ref, "", core.OpUnmask, keyTypeName(k.Type), 0, err) }()
	if err != nil {
		return Key{}, err
	}
	defer c.done()
	m, ok := c.backend.(ports.Masker)
	if !ok {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpUnmask))
	}
	info, err := m.Unmask(ctx, blob)
	if err != nil {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return c.key(info), nil
}

// EndSession tells every backend that keeps sessions that one ended.
func (s *Service) EndSession(ctx context.Context, session string) {
	t, done, err := s.acquire()
	if err != nil {
		return
	}
	defer done()
	for _, b := range t.order {
		if e, ok := b.(ports.SessionEnder); ok {
			_ = e.EndSession(ctx, session) // best effort: a dead plugin's sessions are gone anyway
		}
	}
}

// Agree runs ECDH with the key at ref (an opened masked key, or any key
// that allows deriveKey) and returns the shared secret masked.
func (s *Service) Agree(ctx context.Context, ref, version string, peerPublicKeyDER []byte) (blob core.MaskedKey, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, version, core.OpAgree)
	defer func() { s.report(ctx, began, c, ref, version, core.OpAgree, "ecdh", len(blob), err) }()
	if err != nil {
		return nil, err
	}
	defer c.done()
	a, ok := c.backend.(ports.Agreer)
	if !ok {
		return nil, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpAgree))
	}
	blob, err = a.Agree(ctx, c.ref.ID(), peerPublicKeyDER)
	if err = wrap(c.ref.String(), c.backend.Name(), err); err != nil {
		return nil, err
	}
	return blob, nil
}

// Derive runs a KDF in ref's backend over a masked input and returns the
// derived key masked.
func (s *Service) Derive(ctx context.Context, ref string, params core.DeriveParams) (blob core.MaskedKey, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, "", core.OpDerive)
	defer func() { s.report(ctx, began, c, ref, "", core.OpDerive, deriveName(params), len(blob), err) }()
	if err != nil {
		return nil, err
	}
	defer c.done()
	d, ok := c.backend.(ports.Deriver)
	if !ok {
		return nil, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpDerive))
	}
	blob, err = d.Derive(ctx, params)
	if err = wrap(c.ref.String(), c.backend.Name(), err); err != nil {
		return nil, err
	}
	return blob, nil
}

// MAC computes an HMAC with the key at ref.
func (s *Service) MAC(ctx context.Context, ref, version string, hash core.Hash, data []byte) (mac []byte, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, version, core.OpMAC)
	defer func() { s.report(ctx, began, c, ref, version, core.OpMAC, macName(hash), len(mac), err) }()
	if err != nil {
		return nil, err
	}
	defer c.done()
	m, ok := c.backend.(ports.MACer)
	if !ok {
		return nil, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpMAC))
	}
	mac, err = m.MAC(ctx, c.ref.ID(), hash, data)
	if err = wrap(c.ref.String(), c.backend.Name(), err); err != nil {
		return nil, err
	}
	return mac, nil
}
