package pkcs11backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// Diagnose implements ports.Diagnoser.
func (b *Backend) Diagnose(ctx context.Context, namespace string) ([]core.Check, error) {
	if b.pool == nil {
		return []core.Check{{Name: "pkcs11 module loaded", OK: false, Detail: "the backend is not configured",
			Fix: "set the backend's settings module and token_label (or slot) in hsmhost's config"}}, nil
	}
	i := b.libInfo
	checks := []core.Check{{Name: "pkcs11 module loaded", OK: true,
		Detail: fmt.Sprintf("%s: %s %d.%d (Cryptoki %d.%d)", b.cfg.module, strings.TrimSpace(i.LibraryDescription), i.LibraryVersion.Major, i.LibraryVersion.Minor, i.CryptokiVersion.Major, i.CryptokiVersion.Minor)}}
	if namespace != "" && b.checkNamespace(core.KeyID{Namespace: namespace}) != nil {
		checks = append(checks, core.Check{Name: "token", OK: false, Detail: fmt.Sprintf("namespace %q is not this token's (%q)", namespace, b.namespace),
			Fix: "route the namespace to the backend configured for its token"})
		return checks, nil
	}
	ti, err := b.pool.ctx.GetTokenInfo(b.pool.slot)
	if err != nil {
		checks = append(checks, core.Check{Name: "token found", OK: false, Detail: p11err("C_GetTokenInfo", "", err).Error(), Fix: "check that the token is present"})
		return checks, nil
	}
	checks = append(checks, core.Check{Name: "token found", OK: true, Detail: fmt.Sprintf("label %q, serial %q, slot %d", strings.TrimSpace(ti.Label), strings.TrimSpace(ti.SerialNumber), b.pool.slot)})
	err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
		si, err := b.pool.ctx.GetSessionInfo(s)
		if err != nil {
			return p11err("C_GetSessionInfo", "", err)
		}
		if si.State != pkcs11.CKS_RW_USER_FUNCTIONS && si.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return core.Errorf(core.KindUnauthenticated, "session state %d is not logged in", si.State)
		}
		return nil
	})
	c := core.Check{Name: "login", OK: err == nil, Detail: "user logged in"}
	if err != nil {
		c.Detail, c.Fix = err.Error(), "check the PIN (pin_file, pin_env or pin)"
	}
	checks = append(checks, c)
	var have, miss []string
	for _, m := range []uint{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKM_RSA_PKCS, pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKM_ECDSA} {
		if b.mechs[m] {
			have = append(have, mechName(m))
		} else {
			miss = append(miss, mechName(m))
		}
	}
	c = core.Check{Name: "mechanisms", OK: len(miss) == 0, Detail: "available: " + strings.Join(have, ", ")}
	if len(miss) > 0 {
		c.Detail += "; missing: " + strings.Join(miss, ", ")
		c.Fix = "operations needing the missing mechanisms are refused as unsupported"
	}
	return append(checks, c), nil
}
