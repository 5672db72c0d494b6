package hsmkey_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
)

// selfSigned is a certificate for key, signed by key itself.
func selfSigned(t testing.TB, key crypto.Signer, cn string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{cn},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// handshake runs a Go TLS server whose certificate key is srvKey and a Go
// TLS client whose certificate key is cliKey (mutual TLS), both keys in the
// backend, and returns the client's view of the connection. tweak adjusts
// both configs.
func handshake(t *testing.T, srvKey, cliKey hsmkey.Key, tweak func(srv, cli *tls.Config, sc, cc *tls.Certificate)) tls.ConnectionState {
	t.Helper()
	srvCert, cliCert := selfSigned(t, srvKey, "server.test"), selfSigned(t, cliKey, "client.test")
	roots, clientCAs := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(srvCert)
	clientCAs.AddCert(cliCert)
	sc := tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}
	cc := tls.Certificate{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}
	srv := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	cli := &tls.Config{RootCAs: roots, ServerName: "server.test"}
	if tweak != nil {
		tweak(srv, cli, &sc, &cc)
	}
	srv.Certificates, cli.Certificates = []tls.Certificate{sc}, []tls.Certificate{cc}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			served <- fmt.Errorf("server handshake: %w", err)
			return
		}
		if peers := tc.ConnectionState().PeerCertificates; len(peers) == 0 || peers[0].Subject.CommonName != "client.test" {
			served <- fmt.Errorf("server saw client certificates %v", peers)
			return
		}
		_, err = io.Copy(c, io.LimitReader(c, 5))
		served <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		t.Fatalf("client handshake: %v (server: %v)", err, <-served)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q: %v", buf, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	return conn.ConnectionState()
}

// The keys go straight into tls.Certificate: a Go server and a Go client,
// each with a certificate key in the backend, complete mutual TLS 1.2 and
// 1.3 handshakes with RSA (PSS and PKCS #1 v1.5) and ECDSA; the peer checks
// each signature against the certificate, so a wrong scheme or salt fails.
func TestTLSHandshakesWithKeysInTheBackend(t *testing.T) {
	t.Parallel()
	rsaKey, p256, p384 := newKey(t, rsa2048), newKey(t, ecP256), newKey(t, ecP384)
	only := func(s tls.SignatureScheme) func(srv, cli *tls.Config, sc, cc *tls.Certificate) {
		return func(srv, cli *tls.Config, sc, cc *tls.Certificate) {
			sc.SupportedSignatureAlgorithms = []tls.SignatureScheme{s}
			cc.SupportedSignatureAlgorithms = []tls.SignatureScheme{s}
		}
	}
	for _, c := range []struct {
		name     string
		srv, cli hsmkey.Key
		version  uint16
		scheme   tls.SignatureScheme // 0: whatever Go negotiates
	}{
		{"TLS1.3/RSA-PSS", rsaKey, rsaKey, tls.VersionTLS13, tls.PSSWithSHA256},
		{"TLS1.3/RSA-PSS-SHA512", rsaKey, rsaKey, tls.VersionTLS13, tls.PSSWithSHA512},
		{"TLS1.3/ECDSA-P256", p256, p256, tls.VersionTLS13, tls.ECDSAWithP256AndSHA256},
		{"TLS1.3/ECDSA-P384", p384, p256, tls.VersionTLS13, 0},
		{"TLS1.2/RSA-PKCS1v15", rsaKey, rsaKey, tls.VersionTLS12, tls.PKCS1WithSHA256},
		{"TLS1.2/RSA-PKCS1v15-SHA384", rsaKey, rsaKey, tls.VersionTLS12, tls.PKCS1WithSHA384},
		{"TLS1.2/RSA-PSS", rsaKey, rsaKey, tls.VersionTLS12, tls.PSSWithSHA256},
		{"TLS1.2/ECDSA-P256", p256, p256, tls.VersionTLS12, tls.ECDSAWithP256AndSHA256},
		{"TLS1.2/ECDSA-P256+RSA-client", p256, rsaKey, tls.VersionTLS12, 0},
		{"TLS1.2/ECDSA-P384", p384, p384, tls.VersionTLS12, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tweak := func(srv, cli *tls.Config, sc, cc *tls.Certificate) {
				srv.MinVersion, srv.MaxVersion = c.version, c.version
				if c.scheme != 0 {
					only(c.scheme)(srv, cli, sc, cc)
				}
			}
			st := handshake(t, c.srv, c.cli, tweak)
			if st.Version != c.version {
				t.Fatalf("negotiated %s", tls.VersionName(st.Version))
			}
		})
	}
}

// TLS 1.2's RSA key exchange (off by default in Go, on when the suites are
// named) decrypts the client's premaster secret with the key's Decrypt.
func TestTLS12RSAKeyExchangeDecryptsInTheBackend(t *testing.T) {
	t.Parallel()
	rsaKey := newKey(t, rsa2048)
	st := handshake(t, rsaKey, newKey(t, ecP256), func(srv, cli *tls.Config, sc, cc *tls.Certificate) {
		srv.MaxVersion = tls.VersionTLS12
		srv.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
		cli.CipherSuites = srv.CipherSuites
	})
	if st.CipherSuite != tls.TLS_RSA_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
	}
}

// A server whose key cannot sign (the host refuses) fails its handshake
// with the host's reason, not a hang.
func TestTLSHandshakeFailsWithTheHostsReason(t *testing.T) {
	t.Parallel()
	decOnly := newKey(t, core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
	signer := newKey(t, rsa2048)
	cert := selfSigned(t, signer, "server.test") // any certificate: the key is what fails
	srv := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: decOnly}}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).HandshakeContext(context.Background())
			c.Close()
		}
		served <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
	}
	err = <-served
	if err == nil || !contains(err.Error(), "does not allow sign") {
		t.Fatalf("server handshake: %v", err)
	}
}
