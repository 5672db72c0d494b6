package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certsCmd makes the demo's certificates with x509.CreateCertificate: a
// self-signed CA certificate for the CA key, and a server and a client
// certificate that the CA key signs. All three keys stay in the backend;
// only certificates are written.
func certsCmd(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ExitOnError)
	out := fs.String("out", ".", "folder to write ca.crt, server.crt and client.crt to")
	caRef := fs.String("ca", "", "reference of the CA key (required)")
	caName := fs.String("ca-name", "grpc-direct demo CA", "the CA's common name")
	serverRef := fs.String("server", "", "reference of the server's key (no server.crt when empty)")
	clientRef := fs.String("client", "", "reference of the client's key (no client.crt when empty)")
	fs.Parse(args)
	if *caRef == "" {
		return fmt.Errorf("certs: -ca is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	caKey, err := openKey(*caRef)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"hsmbridge demo"}, CommonName: *caName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	ca, err := issue(caTmpl, caTmpl, caKey.Public(), caKey, filepath.Join(*out, "ca.crt"))
	if err != nil {
		return err
	}
	for _, leaf := range []struct{ ref, file, cn string }{
		{*serverRef, "server.crt", "grpc-direct server"},
		{*clientRef, "client.crt", "grpc-direct client"},
	} {
		if leaf.ref == "" {
			continue
		}
		key, err := openKey(leaf.ref)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"hsmbridge demo"}, CommonName: leaf.cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 3, 0),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if leaf.file == "server.crt" {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		if _, err := issue(tmpl, ca, key.Public(), caKey, filepath.Join(*out, leaf.file)); err != nil {
			return err
		}
	}
	return nil
}

// issue signs tmpl with the issuer's key (in the backend), writes the
// certificate as PEM and says what it wrote.
func issue(tmpl, issuer *x509.Certificate, pub crypto.PublicKey, issuerKey crypto.Signer, file string) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, issuerKey)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", file, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	fmt.Printf("wrote %s: subject %q, issuer %q, %s, signed %s by the HSM\n",
		file, cert.Subject.CommonName, cert.Issuer.CommonName, keyDescription(pub), cert.SignatureAlgorithm)
	return cert, nil
}

func keyDescription(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d key", p.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("EC %s key", p.Curve.Params().Name)
	}
	return fmt.Sprintf("%T key", pub)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
