package azihsmdevice

import (
	"context"
	"fmt"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// Diagnose checks the library, the partition, the credential and the
// session; on an emulated device it also counts the device's open handles
// against the ones this backend holds, so a leak shows.
func (b *Backend) Diagnose(ctx context.Context, namespace string) ([]core.Check, error) {
	err := b.ready()
	b.mu.RLock()
	defer b.mu.RUnlock()
	lib := core.Check{Name: "native library", OK: b.lib != nil}
	if b.lib != nil {
		lib.Detail = "loaded " + b.lib.Path()
	} else {
		lib.Detail = fmt.Sprint(err)
		lib.Fix = fmt.Sprintf("install the Integrated HSM's native library, or set %s in the backend's settings to its path", SettingLibrary)
		if b.cfg.library != DefaultLibrary || !b.cfg.hasCredentials() {
			lib.Name = "device"
			lib.Fix = "see the detail: the library, the partition and the credential are opened in that order"
		}
		return []core.Check{lib}, nil
	}
	checks := []core.Check{lib,
		{Name: "partition", OK: true, Detail: fmt.Sprintf("%s opened with API revision %s", b.partPath, b.rev)},
		{Name: "credential", OK: true, Detail: "accepted (from " + b.cfg.credsSource + ")"},
	}
	if v, err := b.lib.PartitionProperty(b.part, devapi.PartPropFirmwareVersion); err == nil {
		checks[1].Detail += ", firmware " + string(trimNUL(v))
	}
	if _, err := b.lib.SessionAPIRev(b.main.h); err != nil {
		checks = append(checks, core.Check{Name: "session", OK: false, Detail: err.Error(), Fix: "the next operation opens a new session"})
	} else {
		checks = append(checks, core.Check{Name: "session", OK: true, Detail: fmt.Sprintf("main session open, %d application session(s)", len(b.apps))})
	}
	if hc, ok := devapi.CounterOf(b.lib); ok {
		if n, err := hc.OpenHandles(); err == nil {
			want := b.heldHandlesLocked()
			c := core.Check{Name: "device handles", OK: n.Contexts == 0 && n.Keys == want.Keys && n.Sessions == want.Sessions,
				Detail: fmt.Sprintf("device has %d session(s), %d key handle(s), %d streaming context(s); this backend holds %d, %d, 0",
					n.Sessions, n.Keys, n.Contexts, want.Sessions, want.Keys)}
			if !c.OK {
				c.Fix = "a handle is open that the backend does not track: a leak (report it)"
			}
			checks = append(checks, c)
		}
	}
	return checks, nil
}

// heldHandlesLocked counts the sessions and key handles this backend
// keeps open.
func (b *Backend) heldHandlesLocked() devapi.HandleCounts {
	n := devapi.HandleCounts{Partitions: 1, Sessions: 1 + len(b.apps)}
	count := func(k *openKey) {
		if k.lost {
			return
		}
		n.Keys++
		if k.pub != 0 {
			n.Keys++
		}
	}
	for _, k := range b.keys {
		count(k)
	}
	if b.unwrap != nil {
		count(b.unwrap)
	}
	return n
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
