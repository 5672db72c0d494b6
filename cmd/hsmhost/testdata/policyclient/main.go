// Command policyclient is a test client of hsmhost for the access-policy
// tests: the tests run it as other users (and its path is what an
// executable rule names).
//
//	policyclient SOCKET sign|decrypt|get REF
//
// It prints "ok" or the host's error message and exits 0 or 1.
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: policyclient SOCKET sign|decrypt|get REF")
		os.Exit(2)
	}
	sock, op, ref := os.Args[1], os.Args[2], os.Args[3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := hostclient.Dial(sock)
	if err == nil {
		defer c.Close()
		_, err = c.Hello(ctx, "policyclient")
	}
	if err == nil {
		switch op {
		case "sign":
			d := sha256.Sum256([]byte("policy"))
			_, _, err = c.Sign(ctx, ref, "", d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		case "decrypt":
			_, err = c.Decrypt(ctx, ref, "", make([]byte, 256), core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
		case "get":
			_, err = c.GetKey(ctx, ref)
		default:
			err = fmt.Errorf("unknown operation %q", op)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", core.KindOf(err), err)
		os.Exit(1)
	}
	fmt.Println("ok")
}
