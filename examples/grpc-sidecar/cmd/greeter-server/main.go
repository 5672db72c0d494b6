// Command greeter-server is the gRPC server of the sidecar example: it
// listens in plaintext on a Unix socket that only its nginx sidecar may
// reach, and knows nothing of TLS. The sidecar terminates mutual TLS, checks
// the client's certificate against the CA, and passes what it verified in
// request headers (x-client-cert-subject, x-client-cert-issuer,
// x-client-cert-verify, x-tls-protocol), which the server logs and returns.
//
//	greeter-server -socket PATH [-group GROUP]
//
// With -group, the socket gets mode 0660 and that group, so that sidecar
// workers running as another user (www-data) can connect; otherwise 0600.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hsmbridge/hsmbridge/examples/grpc-sidecar/greeter"
)

type server struct {
	greeter.UnimplementedGreeterServer
}

// peer reads what the sidecar verified from the request's headers; a
// request without them did not come through the sidecar and is refused.
func peer(ctx context.Context, method string) (*greeter.Peer, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p := &greeter.Peer{
		ClientSubject: get("x-client-cert-subject"),
		ClientIssuer:  get("x-client-cert-issuer"),
		ClientVerify:  get("x-client-cert-verify"),
		TlsProtocol:   get("x-tls-protocol"),
	}
	if p.ClientVerify != "SUCCESS" {
		log.Printf("%s refused: no verified client certificate (x-client-cert-verify=%q)", method, p.ClientVerify)
		return nil, errors.New("no verified client certificate: call through the sidecar")
	}
	log.Printf("%s: client certificate subject=%q issuer=%q verify=%s over %s", method,
		p.ClientSubject, p.ClientIssuer, p.ClientVerify, p.TlsProtocol)
	return p, nil
}

func (server) SayHello(ctx context.Context, req *greeter.HelloRequest) (*greeter.HelloReply, error) {
	p, err := peer(ctx, "SayHello")
	if err != nil {
		return nil, err
	}
	return &greeter.HelloReply{Message: fmt.Sprintf("Hello, %s!", req.GetName()), Peer: p}, nil
}

func (server) SayHelloStream(req *greeter.HelloRequest, stream grpc.ServerStreamingServer[greeter.HelloReply]) error {
	p, err := peer(stream.Context(), "SayHelloStream")
	if err != nil {
		return err
	}
	n := int(req.GetCount())
	if n == 0 {
		n = 3
	}
	if n < 0 || n > 100 {
		return fmt.Errorf("count %d is not between 1 and 100", n)
	}
	for i := 1; i <= n; i++ {
		msg := &greeter.HelloReply{Message: fmt.Sprintf("Hello #%d of %d, %s!", i, n, req.GetName()), Peer: p}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	socket := flag.String("socket", "", "Unix socket to listen on (required)")
	group := flag.String("group", "", "give the socket this group and mode 0660 (default: mode 0600)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if *socket == "" {
		log.Fatal("-socket is required")
	}
	if err := os.Remove(*socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Fatal(err)
	}
	// Created 0600 (umask), then opened to the group if asked: never
	// reachable by others, not even for a moment.
	old := syscall.Umask(0o177)
	lis, err := net.Listen("unix", *socket)
	syscall.Umask(old)
	if err != nil {
		log.Fatal(err)
	}
	if *group != "" {
		g, err := user.LookupGroup(*group)
		if err != nil {
			log.Fatal(err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(*socket, -1, gid); err != nil {
			log.Fatal(err)
		}
		if err := os.Chmod(*socket, 0o660); err != nil {
			log.Fatal(err)
		}
	}

	s := grpc.NewServer()
	greeter.RegisterGreeterServer(s, server{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.GracefulStop()
	}()
	log.Printf("greeter-server listening on unix:%s (plaintext; TLS is the sidecar's)", *socket)
	if err := s.Serve(lis); err != nil {
		log.Fatal(err)
	}
	os.Remove(*socket)
	log.Print("greeter-server stopped")
}
