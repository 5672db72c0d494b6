package sdk

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// TrimWhenIdle hands the memory a burst of work left behind back to the
// system once the process has been idle for a while: every interval it
// reads how many objects were allocated since the last look, and after a
// busy interval followed by a quiet one it runs debug.FreeOSMemory once.
// hsmhost and every plugin served by Serve run it, so that a daemon pair
// that served a load spike goes back to its start-up size (see
// docs/ARCHITECTURE.md, "What each hop costs").
func TrimWhenIdle(interval time.Duration) {
	const quiet = 2000 // objects per interval: a few requests, or none
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
		var last uint64
		busy := false
		for range time.Tick(interval) {
			metrics.Read(sample)
			n := sample[0].Value.Uint64()
			d := n - last
			last = n
			switch {
			case d > quiet:
				busy = true
			case busy:
				busy = false
				debug.FreeOSMemory()
			}
		}
	}()
}
