package simulator

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hsmbridge/hsmbridge/core"
)

// Diagnose reports where the simulator keeps its keys and whether it can
// write there; the namespace does not matter to it.
func (b *Backend) Diagnose(ctx context.Context, namespace string) ([]core.Check, error) {
	dir := b.StateDir()
	probe, err := os.CreateTemp(dir, ".doctor-*")
	if err == nil {
		probe.Close()
		os.Remove(probe.Name())
		return []core.Check{{Name: "state directory", OK: true, Detail: dir}}, nil
	}
	if os.IsNotExist(err) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			return []core.Check{{Name: "state directory", OK: true, Detail: dir + " (created)"}}, nil
		}
	}
	return []core.Check{{Name: "state directory", Detail: err.Error(),
		Fix: "make " + filepath.Clean(dir) + " writable by the user hsmhost runs as, or set the backend's state_dir"}}, nil
}
