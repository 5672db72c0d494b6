// Command hsmbridge-azihsm is the Azure Integrated HSM backend as an
// hsmbridge plugin: hsmhost starts it, it never runs on its own. It loads the
// device's native library (libazihsm_api_native.so; the `library` setting
// names another path) with dlopen, so it builds and starts on machines
// without the library and says at start-up and in `hsmhost doctor` that the
// library is absent and where it looked. docs/INTEGRATED_HSM.md has the
// settings.
package main

import (
	azihsmdevice "github.com/hsmbridge/hsmbridge/adapters/azihsm-device"
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/native"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

func main() {
	b := azihsmdevice.New(func(path string) (devapi.Library, error) {
		lib, err := native.Open(path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return lib, nil
	})
	b.SetLogger(sdk.Logger(azihsmdevice.Name))
	defer b.Close()
	sdk.Serve(b, sdk.WithName(azihsmdevice.Name), sdk.WithVersion(azihsmdevice.Version))
}
