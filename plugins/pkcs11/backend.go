package pkcs11backend

import (
	"context"
	"sync"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// Backend is the PKCS#11 backend; New makes one, Configure opens the token.
type Backend struct {
	mu        sync.Mutex
	cfg       config
	pool      *pool
	namespace string
	mechs     map[uint]bool
	libInfo   pkcs11.Info
}

// New returns an unconfigured backend.
func New() *Backend { return &Backend{} }

func (b *Backend) ready() error {
	if b.pool == nil {
		return core.Errorf(core.KindUnavailable, "pkcs11: backend is not configured (Configure was not called or failed)")
	}
	return nil
}

// Configure implements ports.Configurer: loads the module, finds the token,
// opens the session pool and logs in.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseConfig(settings)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pool != nil {
		return core.Errorf(core.KindInvalidInput, "pkcs11: backend is already configured")
	}
	m := pkcs11.New(cfg.module)
	if m == nil {
		return core.Errorf(core.KindUnavailable, "pkcs11: cannot load PKCS#11 module %q", cfg.module)
	}
	if err := m.Initialize(); err != nil {
		if e, ok := err.(pkcs11.Error); !ok || uint(e) != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			m.Destroy()
			return p11err("C_Initialize", "module "+quote(cfg.module), err)
		}
	}
	info, err := m.GetInfo()
	if err != nil {
		return p11err("C_GetInfo", "module "+quote(cfg.module), err)
	}
	p, err := newPool(m, cfg)
	if err != nil {
		m.Finalize()
		m.Destroy()
		return err
	}
	ml, err := m.GetMechanismList(p.slot)
	if err != nil {
		return p11err("C_GetMechanismList", "token "+quote(p.label), err)
	}
	b.mechs = map[uint]bool{}
	for _, x := range ml {
		b.mechs[x.Mechanism] = true
	}
	b.cfg, b.pool, b.libInfo = cfg, p, info
	b.namespace = cfg.namespace
	if b.namespace == "" {
		b.namespace = p.label
	}
	return nil
}

func (b *Backend) hasMech(m uint) bool { return b.mechs == nil || b.mechs[m] }

var mechNames = map[uint]string{
	pkcs11.CKM_RSA_PKCS: "CKM_RSA_PKCS", pkcs11.CKM_RSA_PKCS_PSS: "CKM_RSA_PKCS_PSS", pkcs11.CKM_RSA_PKCS_OAEP: "CKM_RSA_PKCS_OAEP",
	pkcs11.CKM_ECDSA: "CKM_ECDSA", pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN: "CKM_RSA_PKCS_KEY_PAIR_GEN", pkcs11.CKM_EC_KEY_PAIR_GEN: "CKM_EC_KEY_PAIR_GEN",
}

func mechName(m uint) string { return mechNames[m] }

// The schemes declared are those the token's mechanism list (read in
// Configure) allows; before Configure, none. CKM_RSA_PKCS_OAEP does not say
// which hashes a token takes as OAEP parameters, so those come from the
// setting oaep_hashes (default sha1, the one SoftHSM2 accepts; see README).
var hashes = []core.Hash{core.SHA1, core.SHA224, core.SHA256, core.SHA384, core.SHA512}

// SignatureSchemes implements ports.SchemeLister.
func (b *Backend) SignatureSchemes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, pm := range []struct {
		p core.SignaturePadding
		m uint
	}{{core.PaddingPKCS1v15, pkcs11.CKM_RSA_PKCS}, {core.PaddingPSS, pkcs11.CKM_RSA_PKCS_PSS}, {core.PaddingECDSA, pkcs11.CKM_ECDSA}} {
		if !b.mechs[pm.m] {
			continue
		}
		for _, h := range hashes {
			out = append(out, core.SignatureScheme{Padding: pm.p, Hash: h}.Name())
		}
	}
	return out
}

// EncryptionSchemes implements ports.SchemeLister.
func (b *Backend) EncryptionSchemes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	if b.mechs[pkcs11.CKM_RSA_PKCS] {
		out = append(out, core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}.Name())
	}
	if b.mechs[pkcs11.CKM_RSA_PKCS_OAEP] {
		for _, h := range b.cfg.oaepHashes {
			out = append(out, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: h}.Name())
		}
	}
	return out
}
