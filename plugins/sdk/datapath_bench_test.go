package sdk

import (
	"context"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// BenchmarkDataPathRoundTrip is one key operation over the data path, host
// and plugin sides in this one process, with a backend that does no work:
// the transport's own cost (compare bench/pingpong's hop floor).
func BenchmarkDataPathRoundTrip(b *testing.B) {
	s := newServer()
	c := openData(b, s)
	ctx := context.Background()
	digest := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.SignTimed(ctx, core.KeyID{Name: "k"}, digest, ecdsaSHA256); err != nil {
			b.Fatal(err)
		}
	}
}
