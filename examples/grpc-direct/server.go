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

	"github.com/hsmbridge/hsmbridge/examples/grpc-sidecar/greeter"
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
	greeter.RegisterGreeterServer(srv, greeterServer{})
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

// greeterServer implements the Greeter of the grpc-sidecar example. There
// the server's nginx sidecar fills each reply's Peer from the TLS session
// it terminated; here the server terminates TLS itself and fills Peer from
// its own handshake.
type greeterServer struct {
	greeter.UnimplementedGreeterServer
}

// client is the client certificate the TLS handshake verified, as a Peer.
func client(ctx context.Context) (*greeter.Peer, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	chain := info.State.VerifiedChains[0]
	fmt.Printf("  from %s: client certificate %q, verified against %q, %s\n",
		p.Addr, chain[0].Subject, chain[len(chain)-1].Subject, tls.VersionName(info.State.Version))
	return &greeter.Peer{
		ClientSubject: chain[0].Subject.String(),
		ClientIssuer:  chain[0].Issuer.String(),
		ClientVerify:  "SUCCESS",
		TlsProtocol:   tls.VersionName(info.State.Version),
	}, nil
}

func (greeterServer) SayHello(ctx context.Context, req *greeter.HelloRequest) (*greeter.HelloReply, error) {
	fmt.Printf("SayHello(%q)\n", req.GetName())
	p, err := client(ctx)
	if err != nil {
		return nil, err
	}
	return &greeter.HelloReply{Message: "Hello, " + req.GetName(), Peer: p}, nil
}

// SayHelloStream sends count replies, as greeter.proto says: 1 to 100, and
// 3 when count is 0.
func (greeterServer) SayHelloStream(req *greeter.HelloRequest, stream grpc.ServerStreamingServer[greeter.HelloReply]) error {
	fmt.Printf("SayHelloStream(%q, count %d)\n", req.GetName(), req.GetCount())
	p, err := client(stream.Context())
	if err != nil {
		return err
	}
	n := req.GetCount()
	if n == 0 {
		n = 3
	}
	if n < 1 || n > 100 {
		return status.Errorf(codes.InvalidArgument, "count %d is not between 1 and 100", n)
	}
	for i := int32(1); i <= n; i++ {
		msg := &greeter.HelloReply{Message: fmt.Sprintf("Hello #%d of %d, %s", i, n, req.GetName()), Peer: p}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}
