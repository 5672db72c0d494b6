package sdk

import (
	"os"
	"time"
)

// parentCheckEvery is how often a plugin looks for its host.
const parentCheckEvery = 250 * time.Millisecond

// exitWithParent ends the plugin once the process that started it is gone,
// which shows as getppid changing: the orphan is re-parented to init or to
// a subreaper. On Linux the host also starts plugins with a parent-death
// signal (internal/pluginhost), which ends them at once; this check covers
// the rest: other systems, or a host that did not set the signal. Nothing
// is logged on the way out, since stderr is a pipe to the host that died.
func exitWithParent() {
	parent := os.Getppid()
	go func() {
		for range time.Tick(parentCheckEvery) {
			if os.Getppid() != parent {
				os.Exit(0)
			}
		}
	}()
}
