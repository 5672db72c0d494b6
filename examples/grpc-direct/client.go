package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/examples/grpc-sidecar/greeter"
)

// clientCmd makes a unary and a streaming call over mutual TLS and prints
// the server certificate it verified and the client certificate the
// server says it verified.
func clientCmd(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:50051", "the server's address")
	keyRef := fs.String("key", "", "reference of the client's key (no client certificate when empty)")
	certFile := fs.String("cert", "client.crt", "the client's certificate (PEM), with -key")
	caFile := fs.String("ca", "ca.crt", "the CA that the server's certificate must chain to (PEM)")
	name := fs.String("name", "world", "the name to greet")
	count := fs.Int("count", 5, "how many replies the streaming call asks for (1 to 100; 0 means 3)")
	fs.Parse(args)

	roots, err := certPool(*caFile)
	if err != nil {
		return err
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if *keyRef != "" {
		cert, err := certificate(*keyRef, *certFile)
		if err != nil {
			return err
		}
		// Present the certificate whatever CAs the server names as
		// acceptable (with Certificates, Go's client sends none that does
		// not chain to one of them), so that the server's own verification
		// is what accepts or refuses it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		fmt.Printf("client certificate %q, key %s\n", cert.Leaf.Subject, cert.PrivateKey)
	} else {
		fmt.Println("no client certificate")
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := greeter.NewGreeterClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var p peer.Peer
	reply, err := c.SayHello(ctx, &greeter.HelloRequest{Name: *name}, grpc.Peer(&p))
	if err != nil {
		return fmt.Errorf("SayHello: %s", status.Convert(err).Message())
	}
	state := p.AuthInfo.(credentials.TLSInfo).State
	chain := state.VerifiedChains[0]
	fmt.Printf("connected to %s over %s, %s\n", p.Addr, tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	fmt.Printf("server certificate %q, verified against %q\n", chain[0].Subject, chain[len(chain)-1].Subject)
	seen := reply.GetPeer()
	fmt.Printf("unary SayHello: %q; the server verified client certificate %q (CA %q): %s, %s\n",
		reply.GetMessage(), seen.GetClientSubject(), seen.GetClientIssuer(), seen.GetClientVerify(), seen.GetTlsProtocol())

	stream, err := c.SayHelloStream(ctx, &greeter.HelloRequest{Name: *name, Count: int32(*count)})
	if err != nil {
		return fmt.Errorf("SayHelloStream: %s", status.Convert(err).Message())
	}
	var got []string
	var subject string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("SayHelloStream: %s", status.Convert(err).Message())
		}
		got = append(got, fmt.Sprintf("%q", m.GetMessage()))
		subject = m.GetPeer().GetClientSubject()
	}
	if len(got) == 0 {
		return fmt.Errorf("SayHelloStream: no reply")
	}
	replies := "1 reply, " + got[0]
	if len(got) > 1 {
		replies = fmt.Sprintf("%d replies, %s … %s", len(got), got[0], got[len(got)-1])
	}
	fmt.Printf("streaming SayHelloStream(count %d): %s; the server verified client certificate %q\n",
		*count, replies, subject)
	return nil
}
