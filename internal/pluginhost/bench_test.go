package pluginhost

import (
	"context"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// BenchmarkPluginRoundTrip is one GetKey through go-plugin's gRPC with
// AutoMTLS: the floor of what the plugin boundary adds to every operation.
func BenchmarkPluginRoundTrip(b *testing.B) {
	be, err := Start(context.Background(), Spec{Name: "bench", Command: testPlugin})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	id := core.KeyID{Namespace: "n", Name: "k"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.GetKey(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
