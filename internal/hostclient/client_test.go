package hostclient_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
)

func TestDialFailureIsUnavailable(t *testing.T) {
	_, err := hostclient.Dial("/nonexistent/hsmhost.sock")
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent/hsmhost.sock") {
		t.Fatalf("%v", err)
	}
}

// A host that dies mid-request fails the pending call promptly, and later
// calls too, with KindUnavailable.
func TestLostConnectionFailsPendingCalls(t *testing.T) {
	dir, _ := os.MkdirTemp("", "hc")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		hostframe.Read(c) // read the request, then vanish
		c.Close()
	}()
	c, err := hostclient.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.GetKey(ctx, "managedhsm:MyHSM:k")
	if !errors.Is(err, core.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("pending call: %v (ctx %v)", err, ctx.Err())
	}
	if _, err := c.Random(ctx, "", 8); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("later call: %v", err)
	}
}

// Responses are matched by id, whatever their order; a protocol error with
// id 0 fails everything with the host's kind and message.
func TestResponsesMatchedByIDAndProtocolErrors(t *testing.T) {
	dir, _ := os.MkdirTemp("", "hc")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	ln, _ := net.Listen("unix", path)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var ids []uint64
		for len(ids) < 2 {
			f, err := hostframe.Read(c)
			if err != nil {
				return
			}
			req := new(hostapi.Request)
			if protoUnmarshal(f, req) != nil {
				return
			}
			ids = append(ids, req.GetId())
		}
		// Answer in reverse order, each with its own payload.
		for i := len(ids) - 1; i >= 0; i-- {
			hostframe.Write(c, &hostapi.Response{Id: ids[i], Result: &hostapi.Response_Random{Random: &hostapi.RandomResponse{Data: []byte{byte(ids[i])}}}})
		}
		hostframe.Write(c, &hostapi.Response{Id: 0, Error: &hostapi.Error{Kind: hostapi.ErrorKind_ERROR_KIND_INVALID_INPUT, Message: "protocol error: test"}})
	}()
	c, err := hostclient.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	type res struct {
		id   uint64
		data []byte
		err  error
	}
	out := make(chan res, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := c.Do(ctx, &hostapi.Request{Op: &hostapi.Request_Random{Random: &hostapi.RandomRequest{Length: 1}}})
			out <- res{resp.GetId(), resp.GetRandom().GetData(), err}
		}()
	}
	for i := 0; i < 2; i++ {
		r := <-out
		if r.err != nil || len(r.data) != 1 || uint64(r.data[0]) != r.id {
			t.Fatalf("response %+v", r)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Random(ctx, "", 1)
		if errors.Is(err, core.ErrInvalidInput) && strings.Contains(err.Error(), "protocol error: test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("protocol error not surfaced: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
