// Command greeter-client is the gRPC client of the sidecar example: it
// speaks plaintext gRPC to its nginx sidecar over a Unix socket; the sidecar
// opens the mutual-TLS connection to the server's sidecar with the client
// certificate, whose key is held by the HSM backend. It makes one unary and
// one server-streaming call and prints what the server's sidecar verified
// about it.
//
//	greeter-client -socket PATH [-name NAME] [-count N]
//
// It exits 1 if a call fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hsmbridge/hsmbridge/examples/grpc-sidecar/greeter"
)

func main() {
	socket := flag.String("socket", "", "the client sidecar's Unix socket (required)")
	name := flag.String("name", "hsmbridge", "the name to greet")
	count := flag.Int("count", 3, "replies to ask of the streaming call")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "greeter-client: -socket is required")
		os.Exit(2)
	}
	if err := run(*socket, *name, int32(*count)); err != nil {
		fmt.Fprintln(os.Stderr, "greeter-client:", err)
		os.Exit(1)
	}
}

func run(socket, name string, count int32) error {
	// Plaintext to the sidecar: the socket is in a folder only this user
	// may enter; the TLS is the sidecar's.
	abs, err := filepath.Abs(socket)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+abs, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := greeter.NewGreeterClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fmt.Printf("--- Unary call: SayHello(%q) ---\n", name)
	r, err := c.SayHello(ctx, &greeter.HelloRequest{Name: name})
	if err != nil {
		return fmt.Errorf("SayHello: %w", err)
	}
	fmt.Printf("reply: %s\n", r.GetMessage())
	printPeer(r.GetPeer())

	fmt.Printf("\n--- Server-streaming call: SayHelloStream(%q, count=%d) ---\n", name, count)
	stream, err := c.SayHelloStream(ctx, &greeter.HelloRequest{Name: name, Count: count})
	if err != nil {
		return fmt.Errorf("SayHelloStream: %w", err)
	}
	var last *greeter.Peer
	n := 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("SayHelloStream: %w", err)
		}
		n++
		fmt.Printf("reply %d: %s\n", n, r.GetMessage())
		last = r.GetPeer()
	}
	if n != int(count) {
		return fmt.Errorf("SayHelloStream: %d replies, asked for %d", n, count)
	}
	printPeer(last)
	return nil
}

func printPeer(p *greeter.Peer) {
	fmt.Printf("the server's sidecar verified this client's certificate (%s, %s):\n", p.GetClientVerify(), p.GetTlsProtocol())
	fmt.Printf("  subject: %s\n  issuer:  %s\n", p.GetClientSubject(), p.GetClientIssuer())
}
