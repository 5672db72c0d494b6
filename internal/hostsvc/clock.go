package hostsvc

import "time"

var epoch = time.Now()

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() uint64 { return uint64(time.Since(epoch)) }
