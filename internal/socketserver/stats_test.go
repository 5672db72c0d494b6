package socketserver_test

import (
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// Stats counts open connections, the application sessions among them and
// the connections refused over the per-uid limit (what /metrics shows).
func TestStatsCountConnectionsSessionsAndRefusals(t *testing.T) {
	e := startServer(t, socketserver.SocketConfig{}, func(s *socketserver.Server) { s.MaxConnsPerUID = 3 })
	waitStats := func(want socketserver.Stats) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for e.srv.Stats() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Stats() = %+v, want %+v", e.srv.Stats(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitStats(socketserver.Stats{})
	a, b := dial(t, e.path), dial(t, e.path)
	if _, err := a.HelloSession(ctx, "test", "app-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Hello(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.path)
	if _, err := c.HelloSession(ctx, "test", "app-1"); err != nil { // the same process again
		t.Fatal(err)
	}
	waitStats(socketserver.Stats{Connections: 3, Sessions: 1})
	extra := rawDial(t, e.path) // the fourth of one uid
	defer extra.Close()
	waitStats(socketserver.Stats{Connections: 3, Sessions: 1, Refused: 1})
	a.Close()
	waitStats(socketserver.Stats{Connections: 2, Sessions: 1, Refused: 1})
	c.Close()
	waitStats(socketserver.Stats{Connections: 1, Sessions: 0, Refused: 1})
}
