package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/examples/grpc-direct/demopb"
)

// serverCmd serves the Greeter over mutual TLS: its certificate key is in
// the backend, and a client must present a certificate that chains to the
// CA file.
func serverCmd(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:50051", "address to listen on")
	keyRef := fs.String("key", "", "reference of the server's key (required)")
	certFile := fs.String("cert", "server.crt", "the server's certificate (PEM)")
	caFile := fs.String("ca", "ca.crt", "the CA that client certificates must chain to (PEM)")
	fs.Parse(args)
	if *keyRef == "" {
		return fmt.Errorf("server: -key is required")
	}
	cert, err := certificate(*keyRef, *certFile)
	if err != nil {
		return err
	}
	clientCAs, err := certPool(*caFile)
	if err != nil {
		return err
	}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	})
	srv := grpc.NewServer(grpc.Creds(loggedCreds{creds}))
	demopb.RegisterGreeterServer(srv, greeter{})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Printf("%v: stopping\n", s)
		srv.GracefulStop()
	}()
	fmt.Printf("listening on %s: certificate %q, key %s; clients need a certificate from %s\n",
		ln.Addr(), cert.Leaf.Subject, cert.PrivateKey, *caFile)
	return srv.Serve(ln)
}

// loggedCreds prints each TLS handshake the server refused, and why (a
// client whose certificate does not chain to the CA, or none): grpc-go
// itself only logs them at its warning level.
type loggedCreds struct {
	credentials.TransportCredentials
}

func (c loggedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		fmt.Printf("refused %s: %v\n", raw.RemoteAddr(), err)
	}
	return conn, info, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{c.TransportCredentials.Clone()}
}

type greeter struct {
	demopb.UnimplementedGreeterServer
}

// client is the client certificate the TLS handshake verified.
func client(ctx context.Context) (subject, issuer string, err error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 {
		return "", "", status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	chain := info.State.VerifiedChains[0]
	subject, issuer = chain[0].Subject.String(), chain[len(chain)-1].Subject.String()
	fmt.Printf("  from %s: client certificate %q, verified against %q, %s\n",
		p.Addr, subject, issuer, tls.VersionName(info.State.Version))
	return subject, issuer, nil
}

func (greeter) SayHello(ctx context.Context, req *demopb.HelloRequest) (*demopb.HelloReply, error) {
	fmt.Printf("SayHello(%q)\n", req.GetName())
	subject, issuer, err := client(ctx)
	if err != nil {
		return nil, err
	}
	return &demopb.HelloReply{Message: "Hello, " + req.GetName(), ClientSubject: subject, ClientIssuer: issuer}, nil
}

func (greeter) CountTo(req *demopb.CountRequest, stream grpc.ServerStreamingServer[demopb.CountReply]) error {
	fmt.Printf("CountTo(%d)\n", req.GetTo())
	subject, _, err := client(stream.Context())
	if err != nil {
		return err
	}
	if req.GetTo() < 0 || req.GetTo() > 1000 {
		return status.Error(codes.InvalidArgument, "to must be 0 to 1000")
	}
	for n := int32(1); n <= req.GetTo(); n++ {
		if err := stream.Send(&demopb.CountReply{N: n, ClientSubject: subject}); err != nil {
			return err
		}
	}
	return nil
}
