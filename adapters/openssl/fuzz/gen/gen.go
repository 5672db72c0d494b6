//go:build ignore

// Writes the seed corpora of the C fuzz harnesses (adapters/openssl/fuzz/):
//
//	go run adapters/openssl/fuzz/gen/gen.go
//
// corpus/decoder/: key-reference files as core.EncodeRefPEM and
// core.EncodeRefPKCS8PEM write them, their DER, and the ways one goes wrong
// (truncated, other version, empty or NUL in the reference, BER, too large,
// after a certificate; for the PKCS#8 form another PKCS#8 version,
// parameters, attributes, trailing bytes, a real key of another algorithm). corpus/frame/: what
// hsmhost sends back: a 4-byte big-endian length, then a packed Response
// (id 1, the harness's request id), plus frames over the cap and cut short.
// The files are checked in; run this again only to change them.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
)

type keyref struct {
	Version   string `asn1:"utf8"`
	Reference string `asn1:"utf8"`
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func write(dir, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		panic(err)
	}
}

func der(version, ref string) []byte {
	return must(asn1.Marshal(keyref{version, ref}))
}

func pemOf(b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: core.RefPEMType, Bytes: b})
}

func frame(r *hostapi.Response) []byte {
	b := must(proto.Marshal(r))
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func main() {
	root := filepath.Join("adapters", "openssl", "fuzz", "corpus")
	dec, frm := filepath.Join(root, "decoder"), filepath.Join(root, "frame")
	for _, d := range []string{dec, frm} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			panic(err)
		}
	}

	// ---- decoder ----
	v := core.RefPEMVersion
	refs := map[string]string{
		"mhsm":      "managedhsm:MyHSM:mykey",
		"mhsm-ver":  "managedhsm:MyHSM:mykey?version=0123456789abcdef0123456789abcdef",
		"akv":       "akv:vault=myvault,name=mykey",
		"hsmbridge": "hsmbridge:default:signing",
		"azihsm":    "azihsm://./ec_p384.bin;type=ec",
	}
	for name, ref := range refs {
		kr := must(core.ParseKeyRef(ref))
		write(dec, name+".pem", must(core.EncodeRefPEM(kr)))
		write(dec, name+".der", der(v, ref))
	}
	good := der(v, "managedhsm:MyHSM:mykey")
	write(dec, "trunc-der-1.der", good[:1])
	write(dec, "trunc-der-half.der", good[:len(good)/2])
	write(dec, "trunc-der-last.der", good[:len(good)-1])
	goodPEM := pemOf(good)
	write(dec, "trunc-pem.pem", goodPEM[:len(goodPEM)-20])
	write(dec, "no-end.pem", []byte(strings.Split(string(goodPEM), "-----END")[0]))
	write(dec, "trailing.der", append(append([]byte{}, good...), 0))
	write(dec, "version2.pem", pemOf(der("hsmbridge-keyref-v2", "managedhsm:MyHSM:mykey")))
	write(dec, "version-prefix.der", der("hsmbridge-keyref-v", "managedhsm:MyHSM:mykey"))
	write(dec, "empty-ref.pem", pemOf(der(v, "")))
	write(dec, "nul-in-ref.der", der(v, "managedhsm:MyHSM:my\x00key"))
	write(dec, "printable-not-utf8.der", must(asn1.Marshal(struct {
		Version   string `asn1:"printable"`
		Reference string `asn1:"utf8"`
	}{v, "managedhsm:MyHSM:mykey"})))
	// BER: the SEQUENCE with indefinite length, then end-of-contents.
	ber := append([]byte{0x30, 0x80}, good[2:]...)
	write(dec, "ber-indefinite.der", append(ber, 0, 0))
	write(dec, "other-label.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: good}))
	write(dec, "version-longer.der", der(v+"0", "managedhsm:MyHSM:mykey"))
	// One byte over HB_REF_MAX_DER (64 KiB) but starting as ours: refused,
	// naming the size.
	for n := 65400; ; n++ {
		if b := der(v, "managedhsm:MyHSM:"+strings.Repeat("k", n)); len(b) == 65536+1 {
			write(dec, "too-large.der", b)
			break
		}
	}
	// A certificate first, then the reference (HAProxy's layout).
	ek := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
	cert := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek))
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})
	write(dec, "cert-then-ref.pem", append(chain, goodPEM...))
	pkcs8Seeds(dec, chain)

	// ---- frame ----
	spki := func(pub any) []byte { return must(x509.MarshalPKIXPublicKey(pub)) }
	rk := must(rsa.GenerateKey(rand.Reader, 2048))
	info := func(kt hostapi.KeyType, pub []byte) *hostapi.KeyInfo {
		return &hostapi.KeyInfo{Reference: "managedhsm:MyHSM:mykey?version=1", Version: "1",
			KeyType: kt, Bits: 256, Curve: "P-256", AllowedOps: []string{"sign", "verify"},
			PublicKeyDer: pub, Backend: "simulator", Enabled: true, CreatedUnix: 1700000000}
	}
	resps := map[string]*hostapi.Response{
		"hello": {Id: 1, Result: &hostapi.Response_Hello{Hello: &hostapi.HelloResponse{
			Version: 1, HostVersion: "hsmhost 1.0"}}},
		"key-ec": {Id: 1, Timing: &hostapi.Timing{HostNs: 1, BackendNs: 2, PluginNs: 3},
			Result: &hostapi.Response_Key{Key: info(hostapi.KeyType_KEY_TYPE_EC, spki(&ek.PublicKey))}},
		"key-rsa":      {Id: 1, Result: &hostapi.Response_Key{Key: info(hostapi.KeyType_KEY_TYPE_RSA, spki(&rk.PublicKey))}},
		"key-mismatch": {Id: 1, Result: &hostapi.Response_Key{Key: info(hostapi.KeyType_KEY_TYPE_RSA, spki(&ek.PublicKey))}},
		"key-oct":      {Id: 1, Result: &hostapi.Response_Key{Key: info(hostapi.KeyType_KEY_TYPE_OCT, nil)}},
		"sign": {Id: 1, Result: &hostapi.Response_Sign{Sign: &hostapi.SignResponse{
			Signature: make([]byte, 256)}}},
		"random":    {Id: 1, Result: &hostapi.Response_Random{Random: &hostapi.RandomResponse{Data: make([]byte, 32)}}},
		"key-list":  {Id: 1, Result: &hostapi.Response_KeyList{KeyList: &hostapi.KeyList{Keys: []*hostapi.KeyInfo{info(hostapi.KeyType_KEY_TYPE_EC, spki(&ek.PublicKey)), info(hostapi.KeyType_KEY_TYPE_OCT, nil)}}}},
		"masked":    {Id: 1, Result: &hostapi.Response_Masked{Masked: &hostapi.MaskedKeyResponse{Blob: []byte("HSMBMASK...."), Key: info(hostapi.KeyType_KEY_TYPE_EC, spki(&ek.PublicKey))}}},
		"error":     {Id: 1, Error: &hostapi.Error{Kind: hostapi.ErrorKind_ERROR_KIND_NOT_FOUND, Message: `managedhsm:MyHSM:nokey: key "MyHSM/nokey" not found`, Backend: "simulator"}},
		"error-id0": {Id: 0, Error: &hostapi.Error{Kind: hostapi.ErrorKind_ERROR_KIND_INVALID_INPUT, Message: "frame too large"}},
		"wrong-id":  {Id: 2, Result: &hostapi.Response_Hello{Hello: &hostapi.HelloResponse{Version: 1}}},
	}
	for name, r := range resps {
		full := frame(r)
		write(frm, name+".bin", full)
		if name == "key-ec" {
			write(frm, "short-body.bin", full[:len(full)-1])
			write(frm, "short-header.bin", full[:3])
		}
	}
	write(frm, "empty-frame.bin", []byte{0, 0, 0, 0})
	write(frm, "at-cap-header.bin", []byte{0x00, 0x10, 0x00, 0x00}) // 1 MiB, body missing
	write(frm, "over-cap.bin", []byte{0x00, 0x10, 0x00, 0x01, 0x08, 0x01})
	write(frm, "max-len.bin", []byte{0xff, 0xff, 0xff, 0xff})
	write(frm, "garbage.bin", []byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
	// Field number 0 with its key in two bytes (0x81 0x00), then a fixed64:
	// protobuf-c 1.4.1 accepts it as an unknown field (found by fuzz_frame).
	write(frm, "field0-long-key.bin", []byte{0, 0, 0, 12, 0x08, 0x01, 0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8})
}

// pkcs8Seeds writes the PKCS#8 form's seeds (p8-*): as core writes it (PEM
// and DER) and broken, each changed in one place.
func pkcs8Seeds(dec string, chain []byte) {
	type p8 struct {
		Version    int
		Algorithm  asn1.RawValue
		PrivateKey []byte
		Rest       asn1.RawValue `asn1:"optional"`
	}
	kr := must(core.ParseKeyRef("managedhsm:MyHSM:mykey"))
	good := must(core.RefPKCS8DER(kr))
	var parsed p8
	must(asn1.Unmarshal(good, &parsed))
	alg := parsed.Algorithm.FullBytes
	pemOf := func(b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b}) }
	variant := func(f func(*p8)) []byte {
		v := parsed
		f(&v)
		return must(asn1.Marshal(v))
	}
	write(dec, "p8-mhsm.pem", must(core.EncodeRefPKCS8PEM(kr)))
	write(dec, "p8-mhsm.der", good)
	write(dec, "p8-akv.pem", must(core.EncodeRefPKCS8PEM(must(core.ParseKeyRef("akv:vault=myvault,name=mykey")))))
	write(dec, "p8-version1.der", variant(func(v *p8) { v.Version = 1 }))
	// AlgorithmIdentifier with NULL parameters: another algorithm identifier.
	withNull := append([]byte{0x30, alg[1] + 2}, append(append([]byte{}, alg[2:]...), 0x05, 0x00)...)
	write(dec, "p8-params.der", variant(func(v *p8) { v.Algorithm = asn1.RawValue{FullBytes: withNull} }))
	write(dec, "p8-attrs.pem", pemOf(variant(func(v *p8) { v.Rest = asn1.RawValue{FullBytes: []byte{0xa0, 0x00}} })))
	write(dec, "p8-trailing.der", append(append([]byte{}, good...), 0))
	write(dec, "p8-trunc.der", good[:len(good)-1])
	write(dec, "p8-inner-v2.pem", pemOf(variant(func(v *p8) { v.PrivateKey = der("hsmbridge-keyref-v2", "managedhsm:MyHSM:mykey") })))
	write(dec, "p8-inner-empty.der", variant(func(v *p8) { v.PrivateKey = der(core.RefPEMVersion, "") }))
	write(dec, "p8-inner-junk.pem", pemOf(variant(func(v *p8) { v.PrivateKey = []byte("not a key reference") })))
	ek := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	write(dec, "p8-real-ec-key.pem", pemOf(must(x509.MarshalPKCS8PrivateKey(ek))))
	write(dec, "cert-then-p8.pem", append(append([]byte{}, chain...), must(core.EncodeRefPKCS8PEM(kr))...))
}
