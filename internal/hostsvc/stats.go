package hostsvc

import (
	"context"

	"github.com/hsmbridge/hsmbridge/core"
)

// StatsReader is a backend that can report counters of its own work
// (pluginhost's backends ask their plugin).
type StatsReader interface {
	Stats(ctx context.Context) ([]core.Counter, error)
}

// BackendStats are the counters each current backend reports, by backend
// name; a backend that fails to answer is left out.
func (s *Service) BackendStats(ctx context.Context) map[string][]core.Counter {
	t, done, err := s.acquire()
	if err != nil {
		return nil
	}
	defer done()
	out := map[string][]core.Counter{}
	for _, b := range t.order {
		r, ok := b.(StatsReader)
		if !ok {
			continue
		}
		if c, err := r.Stats(ctx); err == nil && len(c) > 0 {
			out[b.Name()] = c
		}
	}
	return out
}
