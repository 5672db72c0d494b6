//go:build !cgo

package native

import (
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// Library is the binding's type in a build without cgo, where it cannot
// exist: Open always fails and says why.
type Library struct{ devapi.Library }

// Open fails: loading the device library needs cgo.
func Open(path string) (*Library, error) {
	return nil, core.Errorf(core.KindUnsupported,
		"cannot load the azihsm device library %q: hsmbridge was built without cgo (CGO_ENABLED=0)", path)
}
