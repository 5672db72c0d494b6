package hsmkey_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A CA whose key is in the backend signs a CSR whose key is in the
// backend too; Go's x509 checks the CSR, the CA and the chain. The CA
// signs with ECDSA, RSA PKCS #1 v1.5 and RSA-PSS.
func TestCertificatesAndRequestsSignedInTheBackend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		caAlg   x509.SignatureAlgorithm
		csrAlg  x509.SignatureAlgorithm
		caRSA   bool
		leafRSA bool
	}{
		{"ECDSA CA, RSA leaf", x509.ECDSAWithSHA384, x509.SHA256WithRSA, false, true},
		{"RSA CA, EC leaf", x509.SHA256WithRSA, x509.ECDSAWithSHA256, true, false},
		{"RSA-PSS CA, RSA-PSS CSR", x509.SHA384WithRSAPSS, x509.SHA256WithRSAPSS, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			caSpec, leafSpec := ecP384, ecP256
			if c.caRSA {
				caSpec = rsa3072
			}
			if c.leafRSA {
				leafSpec = rsa2048
			}
			caKey, leafKey := newKey(t, caSpec), newKey(t, leafSpec)

			caTmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hsmkey test CA"},
				NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
				KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
				SignatureAlgorithm: c.caAlg,
			}
			caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
			if err != nil {
				t.Fatalf("CA: %v", err)
			}
			ca, err := x509.ParseCertificate(caDER)
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.CheckSignatureFrom(ca); err != nil || ca.SignatureAlgorithm != c.caAlg {
				t.Fatalf("CA self-signature (%v): %v", ca.SignatureAlgorithm, err)
			}

			csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
				Subject: pkix.Name{CommonName: "leaf.test"}, DNSNames: []string{"leaf.test"}, SignatureAlgorithm: c.csrAlg,
			}, leafKey)
			if err != nil {
				t.Fatalf("CSR: %v", err)
			}
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil || csr.SignatureAlgorithm != c.csrAlg {
				t.Fatalf("CSR signature (%v): %v", csr.SignatureAlgorithm, err)
			}

			leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
				SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames,
				NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}, ca, csr.PublicKey, caKey)
			if err != nil {
				t.Fatalf("leaf: %v", err)
			}
			leaf, err := x509.ParseCertificate(leafDER)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "leaf.test"}); err != nil {
				t.Fatalf("chain: %v", err)
			}
			if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(leafKey.Public()) {
				t.Fatal("the leaf certifies another key")
			}
		})
	}
}
