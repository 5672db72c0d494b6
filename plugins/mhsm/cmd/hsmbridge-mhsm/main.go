// Command hsmbridge-mhsm is the Azure Key Vault Managed HSM backend as an
// hsmbridge plugin: hsmhost starts it, it never runs on its own. Its
// settings and credentials are described in docs/MANAGED_HSM.md.
package main

import (
	"github.com/hsmbridge/hsmbridge/adapters/mhsm"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

func main() {
	sdk.Serve(mhsm.New(), sdk.WithName(mhsm.Name), sdk.WithVersion(mhsm.Version))
}
