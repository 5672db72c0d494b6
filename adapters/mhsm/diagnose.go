package mhsm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/hsmbridge/hsmbridge/core"
)

// managedHSMScope is the token scope of every Managed HSM data-plane call.
const managedHSMScope = "https://managedhsm.azure.net/.default"

// Diagnose checks, for one HSM, what hsmhost doctor reports before it tries
// the keys: which credential is in use, whether it issues a token for
// Managed HSM, and whether the HSM answers a key listing with that token.
func (b *Backend) Diagnose(ctx context.Context, hsm string) ([]core.Check, error) {
	if err := checkID(core.KeyID{Namespace: hsm}, false); err != nil {
		return nil, err
	}
	c, err := b.client(hsm)
	if err != nil {
		return []core.Check{{Name: "credential", Detail: err.Error(), Fix: defaultFix}}, nil
	}
	checks := []core.Check{{Name: "credential", OK: true, Detail: c.cred.name}}

	tk, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managedHSMScope}})
	if err != nil {
		return append(checks, core.Check{Name: "token", Detail: err.Error(), Fix: c.cred.fix}), nil
	}
	detail := "issued"
	if !tk.ExpiresOn.IsZero() {
		detail += ", valid until " + tk.ExpiresOn.UTC().Format(time.RFC3339)
	}
	if who := c.cred.Identity(); who != "" {
		detail += ", for " + who
	}
	checks = append(checks, core.Check{Name: "token", OK: true, Detail: detail})

	name := "HSM " + c.endpoint
	keys, err := b.listHSM(ctx, hsm)
	if err != nil {
		return append(checks, core.Check{Name: name, Detail: err.Error(), Fix: fixFor(err, hsm, c.cred.fix)}), nil
	}
	return append(checks, core.Check{Name: name, OK: true, Detail: fmt.Sprintf("answered a key listing (%d keys)", len(keys))}), nil
}

func fixFor(err error, hsm, credentialFix string) string {
	switch {
	case errors.Is(err, core.ErrPermissionDenied):
		return fmt.Sprintf(`az keyvault role assignment create --hsm-name %s --assignee <object id> --scope / --role "Managed HSM Crypto User"`, hsm)
	case errors.Is(err, core.ErrUnauthenticated):
		return credentialFix
	case errors.Is(err, core.ErrUnavailable):
		return "check the backend's endpoint, connect_to and ca_file settings and that this machine reaches the HSM over HTTPS"
	}
	return ""
}
