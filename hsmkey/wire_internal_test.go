package hsmkey

import (
	"crypto"
	"testing"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// This package reads the host's error kinds and names hashes without the
// host's code; it must agree with what the host sends (socketserver's
// mapping) for every value the schema has.
func TestWireMappingsAgreeWithTheHost(t *testing.T) {
	for v := range hostapi.ErrorKind_name {
		p := hostapi.ErrorKind(v)
		got := hostError(&hostapi.Error{Kind: p, Message: "m"}).(*core.Error).Kind
		if want := socketserver.KindFromProto(p); got != want {
			t.Errorf("%v: kind %q, the host means %q", p, got, want)
		}
	}
	if k := hostError(&hostapi.Error{Kind: 999}).(*core.Error).Kind; k != core.KindInternal {
		t.Errorf("an unknown kind is %q", k)
	}
	k := &key{ref: "r"}
	for _, h := range []core.Hash{core.SHA1, core.SHA224, core.SHA256, core.SHA384, core.SHA512} {
		got, err := k.hash(h.Crypto(), "test")
		if want := socketserver.HashToProto(h); err != nil || got != want {
			t.Errorf("%v: %v, %v; the host reads %v", h, got, err, want)
		}
	}
	if _, err := k.hash(crypto.SHA3_256, "test"); err == nil {
		t.Error("SHA3-256 mapped")
	}
}
