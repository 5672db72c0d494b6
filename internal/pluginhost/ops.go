package pluginhost

import (
	"context"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

// The ports methods, each one call() around the SDK client.

func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.KeyInfo, error) { return c.GetKey(ctx, id) })
}

func (b *Backend) ListKeys(ctx context.Context, namespace string) ([]core.KeyInfo, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]core.KeyInfo, error) { return c.ListKeys(ctx, namespace) })
}

func (b *Backend) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.KeyInfo, error) { return c.CreateKey(ctx, id, spec) })
}

func (b *Backend) ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.KeyInfo, error) {
		return c.ImportKey(ctx, id, pkcs8, usages)
	})
}

func (b *Backend) DeleteKey(ctx context.Context, id core.KeyID) (int, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (int, error) { return c.DeleteKey(ctx, id) })
}

func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, s core.SignatureScheme) ([]byte, error) {
	sig, _, err := b.SignTimed(ctx, id, digest, s)
	return sig, err
}

// timedResult is an answer (a signature or a plaintext) and the plugin's
// time for it.
type timedResult struct {
	out []byte
	ns  uint64
}

func (b *Backend) SignMessage(ctx context.Context, id core.KeyID, message []byte, s core.SignatureScheme) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.SignMessage(ctx, id, message, s) })
}

// SignTimed also returns the time the plugin spent signing.
func (b *Backend) SignTimed(ctx context.Context, id core.KeyID, digest []byte, s core.SignatureScheme) ([]byte, uint64, error) {
	r, err := call(b, ctx, func(ctx context.Context, c *sdk.Client) (timedResult, error) {
		sig, ns, err := c.SignTimed(ctx, id, digest, s)
		return timedResult{sig, ns}, err
	})
	return r.out, r.ns, err
}

func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ct []byte, s core.EncryptionScheme) ([]byte, error) {
	pt, _, err := b.DecryptTimed(ctx, id, ct, s)
	return pt, err
}

// DecryptTimed also returns the time the plugin spent decrypting.
func (b *Backend) DecryptTimed(ctx context.Context, id core.KeyID, ct []byte, s core.EncryptionScheme) ([]byte, uint64, error) {
	r, err := call(b, ctx, func(ctx context.Context, c *sdk.Client) (timedResult, error) {
		pt, ns, err := c.DecryptTimed(ctx, id, ct, s)
		return timedResult{pt, ns}, err
	})
	return r.out, r.ns, err
}

func (b *Backend) Agree(ctx context.Context, id core.KeyID, peer []byte) (core.MaskedKey, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.MaskedKey, error) { return c.Agree(ctx, id, peer) })
}

func (b *Backend) Derive(ctx context.Context, p core.DeriveParams) (core.MaskedKey, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.MaskedKey, error) { return c.Derive(ctx, p) })
}

func (b *Backend) Mask(ctx context.Context, id core.KeyID) (core.MaskedKey, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.MaskedKey, error) { return c.Mask(ctx, id) })
}

func (b *Backend) Unmask(ctx context.Context, blob core.MaskedKey) (core.KeyInfo, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) (core.KeyInfo, error) { return c.Unmask(ctx, blob) })
}

func (b *Backend) Random(ctx context.Context, n int) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.Random(ctx, n) })
}

func (b *Backend) WrapKey(ctx context.Context, id core.KeyID, key []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.WrapKey(ctx, id, key, alg) })
}

func (b *Backend) UnwrapKey(ctx context.Context, id core.KeyID, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.UnwrapKey(ctx, id, wrapped, alg) })
}

func (b *Backend) Diagnose(ctx context.Context, namespace string) ([]core.Check, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]core.Check, error) { return c.Diagnose(ctx, namespace) })
}

type maskedResult struct {
	blob core.MaskedKey
	info core.KeyInfo
}

func (b *Backend) GenerateMasked(ctx context.Context, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	r, err := call(b, ctx, func(ctx context.Context, c *sdk.Client) (maskedResult, error) {
		blob, info, err := c.GenerateMasked(ctx, spec, session)
		return maskedResult{blob, info}, err
	})
	return r.blob, r.info, err
}

func (b *Backend) ImportWrappingKey(ctx context.Context) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.ImportWrappingKey(ctx) })
}

func (b *Backend) ImportMasked(ctx context.Context, wrapped []byte, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	r, err := call(b, ctx, func(ctx context.Context, c *sdk.Client) (maskedResult, error) {
		blob, info, err := c.ImportMasked(ctx, wrapped, spec, session)
		return maskedResult{blob, info}, err
	})
	return r.blob, r.info, err
}

func (b *Backend) EndSession(ctx context.Context, session string) error {
	_, err := call(b, ctx, func(ctx context.Context, c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.EndSession(ctx, session)
	})
	return err
}

func (b *Backend) MAC(ctx context.Context, id core.KeyID, hash core.Hash, data []byte) ([]byte, error) {
	return call(b, ctx, func(ctx context.Context, c *sdk.Client) ([]byte, error) { return c.MAC(ctx, id, hash, data) })
}
