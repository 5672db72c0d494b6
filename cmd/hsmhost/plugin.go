package main

import (
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
	"github.com/hsmbridge/hsmbridge/plugins/simulator"
)

// pluginCommand runs a built-in plugin. hsmhost launches itself this way for
// "builtin:" backends, so one binary carries the simulator.
func pluginCommand(args []string) error {
	if len(args) != 1 {
		return usagef("usage: hsmhost plugin simulator (started by hsmhost serve, not by hand)")
	}
	switch args[0] {
	case "simulator":
		sdk.Serve(simulator.NewDefault(), sdk.WithName(simulator.Name), sdk.WithVersion(simulator.Version))
		return nil
	}
	return usagef("unknown built-in plugin %q", args[0])
}
