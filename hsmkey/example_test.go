package hsmkey_test

// These examples run in `go test` against the hsmhost TestMain starts, with
// the keys made there as a user makes them:
//
//	hsmhost key create managedhsm:MyHSM:myrsakey --kty RSA --size 2048 --ops sign,decrypt
//	hsmhost key create managedhsm:MyHSM:myeckey --kty EC --curve P-256 --ops sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
)

// Open a key by its reference and sign a digest with it; the signature
// checks with Go's own crypto/ecdsa.
func ExampleOpen() {
	key, err := hsmkey.Open(context.Background(), "managedhsm:MyHSM:myeckey")
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello"))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest[:], sig))
	ref, _, _ := strings.Cut(key.Reference(), "?") // the rest pins the version
	fmt.Println(ref, "in backend", key.Backend())
	// Output:
	// verified: true
	// managedhsm:MyHSM:myeckey in backend simulator
}

// An HTTPS server whose TLS key stays in the HSM: the key goes into
// tls.Certificate as it is. Here the certificate is self-signed by the
// same key; in production it comes from a CA (see Example_certificates).
func Example_tlsServer() {
	key, err := hsmkey.Open(context.Background(), "managedhsm:MyHSM:myrsakey")
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", tls.VersionName(r.TLS.Version))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL) // trusts the server's certificate
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	fmt.Println("server certificate:", resp.TLS.PeerCertificates[0].Subject)
	// Output:
	// hello over TLS 1.3
	// server certificate: CN=localhost
}

// A CA whose key is in the HSM certifies a key that is in the HSM too,
// from its certificate request.
func Example_certificates() {
	ctx := context.Background()
	caKey, err := hsmkey.Open(ctx, "managedhsm:MyHSM:myeckey")
	if err != nil {
		log.Fatal(err)
	}
	serverKey, err := hsmkey.Open(ctx, "managedhsm:MyHSM:myrsakey")
	if err != nil {
		log.Fatal(err)
	}

	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example CA"},
		NotBefore: time.Now(), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "server.example.com"}, DNSNames: []string{"server.example.com"},
	}, serverKey)
	if err != nil {
		log.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	if err := csr.CheckSignature(); err != nil {
		log.Fatal(err)
	}

	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames,
		NotBefore: time.Now(), NotAfter: time.Now().AddDate(0, 3, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, csr.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "server.example.com"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(chains[0][0].Subject, "<-", chains[0][1].Subject, "signed with", cert.SignatureAlgorithm)
	// Output:
	// CN=server.example.com <- CN=Example CA signed with ECDSA-SHA256
}

// RSA keys decrypt: what anyone encrypts to the public key, only the HSM
// opens.
func ExampleDecrypter() {
	key, err := hsmkey.Open(context.Background(), "managedhsm:MyHSM:myrsakey")
	if err != nil {
		log.Fatal(err)
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, key.Public().(*rsa.PublicKey), []byte("a secret"), nil)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := key.(hsmkey.Decrypter).Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output: a secret
}

// A client of a host on another socket, run by a service user, with a
// shorter timeout; its keys share its connection.
func ExampleNewClient() {
	c := hsmkey.NewClient(
		hsmkey.WithSocket(os.Getenv("HSMBRIDGE_SOCKET")), // e.g. /run/hsmbridge/hsmhost.sock
		hsmkey.WithHostUIDs(999),                         // the uid hsmhost runs as, if not root or this program's
		hsmkey.WithTimeout(5*time.Second),
	)
	defer c.Close()
	key, err := c.Open(context.Background(), "akv:vault=MyHSM,name=myrsakey")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d-bit RSA key in backend %s\n", key.Public().(*rsa.PublicKey).N.BitLen(), key.Backend())
	// Output: 2048-bit RSA key in backend simulator
}

// Errors say which key, which backend and what went wrong, and errors.Is
// tells their kinds apart, e.g. a key that does not exist:
//
//	managedhsm:MyHSM:nokey: key "MyHSM/nokey" not found in backend "simulator"
func ExampleOpen_error() {
	_, err := hsmkey.Open(context.Background(), "managedhsm:MyHSM:nokey")
	fmt.Println(errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrUnavailable))
	// Output: true false
}
