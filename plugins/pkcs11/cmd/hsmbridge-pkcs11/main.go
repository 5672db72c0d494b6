// Command hsmbridge-pkcs11 is the hsmbridge backend plugin for PKCS#11 tokens.
package main

import (
	pkcs11backend "github.com/hsmbridge/hsmbridge-pkcs11"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

var version = "dev" // set with -ldflags "-X main.version=..."

func main() { sdk.Serve(pkcs11backend.New(), sdk.WithName("pkcs11"), sdk.WithVersion(version)) }
