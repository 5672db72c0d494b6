package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/examples/grpc-direct/demopb"
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
	count := fs.Int("count", 5, "how many messages the streaming call asks for")
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
	greeter := demopb.NewGreeterClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var p peer.Peer
	reply, err := greeter.SayHello(ctx, &demopb.HelloRequest{Name: *name}, grpc.Peer(&p))
	if err != nil {
		return fmt.Errorf("SayHello: %s", status.Convert(err).Message())
	}
	state := p.AuthInfo.(credentials.TLSInfo).State
	chain := state.VerifiedChains[0]
	fmt.Printf("connected to %s over %s, %s\n", p.Addr, tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	fmt.Printf("server certificate %q, verified against %q\n", chain[0].Subject, chain[len(chain)-1].Subject)
	fmt.Printf("unary SayHello: %q; the server verified client certificate %q (CA %q)\n",
		reply.GetMessage(), reply.GetClientSubject(), reply.GetClientIssuer())

	stream, err := greeter.CountTo(ctx, &demopb.CountRequest{To: int32(*count)})
	if err != nil {
		return fmt.Errorf("CountTo: %s", status.Convert(err).Message())
	}
	var got []string
	var subject string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("CountTo: %s", status.Convert(err).Message())
		}
		got = append(got, fmt.Sprint(m.GetN()))
		subject = m.GetClientSubject()
	}
	fmt.Printf("streaming CountTo(%d): %s; the server verified client certificate %q\n", *count, strings.Join(got, " "), subject)
	return nil
}
