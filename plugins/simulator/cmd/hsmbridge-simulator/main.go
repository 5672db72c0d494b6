// Command hsmbridge-simulator is the simulator backend as an hsmbridge
// plugin: hsmhost starts it, it never runs on its own. Keys live under the
// state_dir setting, else $HSMBRIDGE_STATE_DIR, else the default state
// directory (see simulator.DefaultStateDir).
package main

import (
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
	"github.com/hsmbridge/hsmbridge/plugins/simulator"
)

func main() {
	sdk.Serve(simulator.NewDefault(), sdk.WithName(simulator.Name), sdk.WithVersion(simulator.Version))
}
