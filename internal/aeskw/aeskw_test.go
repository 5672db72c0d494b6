package aeskw

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The published test vectors of RFC 3394 section 4 and RFC 5649 section 6.
func TestAESKeyWrapRFCVectors(t *testing.T) {
	kw := []struct{ kek, key, wrapped string }{
		{"000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
			"96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, v := range kw {
		kek, key, want := unhex(t, v.kek), unhex(t, v.key), unhex(t, v.wrapped)
		got, err := Wrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("wrap with %d-bit KEK: %x, %v; want %x", len(kek)*8, got, err, want)
		}
		back, err := Unwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("unwrap with %d-bit KEK: %x, %v", len(kek)*8, back, err)
		}
		tampered := bytes.Clone(want)
		tampered[len(tampered)-1] ^= 1
		if _, err := Unwrap(kek, tampered); err == nil {
			t.Errorf("a tampered wrap unwrapped")
		}
	}
	kwp := []struct{ kek, key, wrapped string }{
		{"5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "c37b7e6492584340 bed1220780894115 5068f738",
			"138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	}
	for _, v := range kwp {
		kek, key, want := unhex(t, v.kek), unhex(t, v.key), unhex(t, v.wrapped)
		got, err := WrapPad(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("wrap-pad %d bytes: %x, %v; want %x", len(key), got, err, want)
		}
		back, err := UnwrapPad(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("unwrap-pad %d bytes: %x, %v", len(key), back, err)
		}
		tampered := bytes.Clone(want)
		tampered[0] ^= 1
		if _, err := UnwrapPad(kek, tampered); err == nil {
			t.Errorf("a tampered padded wrap unwrapped")
		}
	}
}
