// Command grpc-direct is a grpc-go server and client that authenticate
// each other with mutual TLS while every private key involved — the
// server's, the client's and the CA's that certified both — stays in the
// HSM backend behind hsmhost. The keys reach Go's crypto/tls and
// crypto/x509 as hsmkey.Keys (crypto.Signer); there is no sidecar and no
// OpenSSL. The scripts beside it run the whole demo (README.md).
//
//	grpc-direct certs  -out DIR -ca REF [-server REF] [-client REF] [-ca-name CN]
//	grpc-direct server -addr HOST:PORT -key REF -cert FILE -ca FILE
//	grpc-direct client -addr HOST:PORT -ca FILE [-key REF -cert FILE] [-name NAME] [-count N]
//
// hsmhost's socket is found as every hsmbridge client finds it
// ($HSMBRIDGE_SOCKET, else the per-user default).
package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/hsmbridge/hsmbridge/hsmkey"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "certs":
		err = certsCmd(os.Args[2:])
	case "server":
		err = serverCmd(os.Args[2:])
	case "client":
		err = clientCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-direct:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: grpc-direct certs|server|client [flags]   (grpc-direct <command> -h for its flags)")
	os.Exit(2)
}

// openKey opens a key held by the backend, with a bound on the wait.
func openKey(ref string) (hsmkey.Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return hsmkey.Open(ctx, ref)
}

// certificate is a tls.Certificate whose private key is the HSM key ref and
// whose chain is the PEM file certFile; it checks that they belong
// together.
func certificate(ref, certFile string) (tls.Certificate, error) {
	key, err := openKey(ref)
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := readCerts(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("%s does not certify the key %s", certFile, ref)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, cert := range certs {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c, nil
}

func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", file)
	}
	return certs, nil
}

func certPool(file string) (*x509.CertPool, error) {
	certs, err := readCerts(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}
