package sdk

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
	"github.com/hsmbridge/hsmbridge/plugins/sdk/workpool"
)

// The plugin's side of the data path (backend.proto): a socket that takes
// one connection from the host, which must come from the plugin's own user
// and start with the token handed out over the mTLS gRPC channel. Requests
// run at once, each on a worker of a pool (workpool), through the same
// server methods as the gRPC calls, so both paths answer alike.

const (
	// How long the host has to connect after OpenDataPath, and to send its
	// DataHello once connected.
	dataAcceptTime = 10 * time.Second
	// Requests of one connection running at once; reading waits beyond it.
	dataInflight = 1024
	// How long a worker that has grown its stack waits for the next request.
	workerIdle = 30 * time.Second
)

func (s *server) OpenDataPath(context.Context, *pb.OpenDataPathRequest) (*pb.OpenDataPathResponse, error) {
	if !dataPathOffered {
		return nil, status.Error(codes.Unimplemented, "no data path on this system")
	}
	dir, err := dataDir()
	if err != nil {
		return nil, toStatus(core.Errorf(core.KindInternal, "data path: %v", err))
	}
	path := filepath.Join(dir, "data.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, toStatus(core.Errorf(core.KindInternal, "data path: %v", err))
	}
	token := make([]byte, 32)
	rand.Read(token)
	go s.acceptData(ln, dir, token)
	return &pb.OpenDataPathResponse{Address: path, Token: token}, nil
}

// dataDir makes a directory only this user can enter (MkdirTemp's 0700),
// in TMPDIR unless its path is too long for a socket address.
func dataDir() (string, error) {
	const maxSocketPath = 100 // sun_path is 108 bytes with its NUL
	base := os.TempDir()
	if len(base)+len("/hsmbridge-data-0123456789/data.sock") > maxSocketPath {
		base = "/tmp"
	}
	return os.MkdirTemp(base, "hsmbridge-data-")
}

// acceptData waits for the host's connection, refuses any other, and
// serves the first one that passes; the socket and its directory go as
// soon as one does, or when the wait ends.
func (s *server) acceptData(ln *net.UnixListener, dir string, token []byte) {
	defer os.RemoveAll(dir)
	ln.SetDeadline(time.Now().Add(dataAcceptTime))
	for {
		c, err := ln.Accept()
		if err != nil {
			ln.Close()
			s.log.Warn("data path: the host did not connect; serving over gRPC only", "error", err)
			return
		}
		// One reader for the hello and what follows: the first request may
		// arrive in the same read.
		r := bufio.NewReaderSize(c, 64<<10)
		if err := admitData(c, r, token); err != nil {
			c.Close()
			s.log.Warn("data path: connection refused", "error", err)
			continue
		}
		ln.Close()
		os.RemoveAll(dir)
		s.serveData(c, r)
		return
	}
}

func admitData(c net.Conn, r *bufio.Reader, token []byte) error {
	if err := samePeer(c); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(dataAcceptTime))
	var hello pb.DataHello
	if err := readDataFrame(r, &hello); err != nil {
		return fmt.Errorf("reading DataHello: %w", err)
	}
	if subtle.ConstantTimeCompare(hello.GetToken(), token) != 1 {
		return errors.New("wrong token")
	}
	return c.SetReadDeadline(time.Time{})
}

// serveData answers requests until the host closes the connection.
func (s *server) serveData(c net.Conn, r *bufio.Reader) {
	defer c.Close()
	var (
		wmu  sync.Mutex
		wbuf []byte
		pool = workpool.New(dataInflight, workerIdle)
	)
	write := func(resp *pb.DataResponse) {
		wmu.Lock()
		defer wmu.Unlock()
		var err error
		if wbuf, err = appendDataFrame(wbuf[:0], resp); err != nil {
			// Too large to send: say so instead.
			wbuf, _ = appendDataFrame(wbuf[:0], &pb.DataResponse{Id: resp.GetId(),
				Error: backendError(core.Errorf(core.KindInternal, "answer not sent: %v", err))})
		}
		if _, err := c.Write(wbuf); err != nil {
			c.Close() // the reader sees it and stops
		}
		if cap(wbuf) > 1<<20 {
			wbuf = nil // one big answer should not pin its buffer
		}
	}
	for {
		req := new(pb.DataRequest)
		if err := readDataFrame(r, req); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("data path: closing the connection", "error", err)
			}
			return
		}
		pool.Go(func() { write(s.dispatch(req)) })
	}
}

// dispatch runs one DataRequest through the gRPC method of its op.
func (s *server) dispatch(req *pb.DataRequest) *pb.DataResponse {
	ctx := context.Background()
	if t := req.GetTimeoutNs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		defer cancel()
	}
	resp := &pb.DataResponse{Id: req.GetId()}
	var err error
	switch op := req.Op.(type) {
	case *pb.DataRequest_GetKey:
		var r *pb.KeyInfo
		r, err = s.GetKey(ctx, op.GetKey)
		resp.Result = &pb.DataResponse_Key{Key: r}
	case *pb.DataRequest_Sign:
		var r *pb.SignResponse
		r, err = s.Sign(ctx, op.Sign)
		resp.Result = &pb.DataResponse_Sign{Sign: r}
	case *pb.DataRequest_Decrypt:
		var r *pb.DecryptResponse
		r, err = s.Decrypt(ctx, op.Decrypt)
		resp.Result = &pb.DataResponse_Decrypt{Decrypt: r}
	case *pb.DataRequest_Agree:
		var r *pb.MaskedKey
		r, err = s.Agree(ctx, op.Agree)
		resp.Result = &pb.DataResponse_Masked{Masked: r}
	case *pb.DataRequest_Derive:
		var r *pb.MaskedKey
		r, err = s.Derive(ctx, op.Derive)
		resp.Result = &pb.DataResponse_Masked{Masked: r}
	case *pb.DataRequest_Mask:
		var r *pb.MaskedKey
		r, err = s.Mask(ctx, op.Mask)
		resp.Result = &pb.DataResponse_Masked{Masked: r}
	case *pb.DataRequest_Unmask:
		var r *pb.KeyInfo
		r, err = s.Unmask(ctx, op.Unmask)
		resp.Result = &pb.DataResponse_Key{Key: r}
	case *pb.DataRequest_Random:
		var r *pb.RandomResponse
		r, err = s.Random(ctx, op.Random)
		resp.Result = &pb.DataResponse_Random{Random: r}
	case *pb.DataRequest_WrapKey:
		var r *pb.WrapResponse
		r, err = s.WrapKey(ctx, op.WrapKey)
		resp.Result = &pb.DataResponse_Wrap{Wrap: r}
	case *pb.DataRequest_UnwrapKey:
		var r *pb.WrapResponse
		r, err = s.UnwrapKey(ctx, op.UnwrapKey)
		resp.Result = &pb.DataResponse_Wrap{Wrap: r}
	case *pb.DataRequest_Mac:
		var r *pb.MACResponse
		r, err = s.MAC(ctx, op.Mac)
		resp.Result = &pb.DataResponse_Mac{Mac: r}
	case *pb.DataRequest_GenerateMasked:
		var r *pb.MaskedKeyInfo
		r, err = s.GenerateMasked(ctx, op.GenerateMasked)
		resp.Result = &pb.DataResponse_MaskedKeyInfo{MaskedKeyInfo: r}
	case *pb.DataRequest_ImportWrappingKey:
		var r *pb.WrappingKey
		r, err = s.ImportWrappingKey(ctx, op.ImportWrappingKey)
		resp.Result = &pb.DataResponse_WrappingKey{WrappingKey: r}
	case *pb.DataRequest_ImportMasked:
		var r *pb.MaskedKeyInfo
		r, err = s.ImportMasked(ctx, op.ImportMasked)
		resp.Result = &pb.DataResponse_MaskedKeyInfo{MaskedKeyInfo: r}
	case *pb.DataRequest_EndSession:
		var r *pb.EndSessionResponse
		r, err = s.EndSession(ctx, op.EndSession)
		resp.Result = &pb.DataResponse_EndSession{EndSession: r}
	default:
		resp.Error = backendError(core.Errorf(core.KindUnsupported,
			"this plugin's data path does not carry the operation asked for (is the plugin older than hsmhost?)"))
		return resp
	}
	if err != nil {
		resp.Result = nil
		resp.Error = backendError(fromStatus(err))
	}
	return resp
}

// backendError is err as it crosses the data path.
func backendError(err error) *pb.BackendError {
	return &pb.BackendError{Kind: string(core.KindOf(err)), Message: err.Error()}
}
