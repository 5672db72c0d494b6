package sdk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/core"
	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
)

// dataConn is the host's side of the data path: requests are written as
// they come, each with a fresh id, and one reader goroutine hands every
// answer to the caller waiting for its id. When the connection breaks (the
// plugin died), every caller still waiting fails at once.
type dataConn struct {
	c net.Conn

	wmu  sync.Mutex
	wbuf []byte

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *pb.DataResponse
	err     error // why the connection is gone; nil while it works
}

// OpenDataPath moves the key operations onto a data connection of their
// own, if the plugin offers one; it reports whether it did. A plugin built
// without it (an older SDK) keeps every call on gRPC.
func (c *Client) OpenDataPath(ctx context.Context) (bool, error) {
	r, err := c.rpc.OpenDataPath(ctx, &pb.OpenDataPathRequest{})
	if status.Code(err) == codes.Unimplemented {
		return false, nil
	}
	if err != nil {
		return false, fromStatus(err)
	}
	dc, err := dialData(ctx, r.GetAddress(), r.GetToken())
	if err != nil {
		return false, core.Errorf(core.KindUnavailable, "backend %q: data path: %v", c.desc.Name, err)
	}
	c.data = dc
	return true, nil
}

// Close ends the data connection, if there is one; calls then use gRPC.
func (c *Client) Close() {
	if c.data != nil {
		c.data.fail(errors.New("closed by the host"))
	}
}

// DataPath is how key operations reach the plugin: "socket" or "grpc".
func (c *Client) DataPath() string {
	if c.data != nil {
		return "socket"
	}
	return "grpc"
}

func dialData(ctx context.Context, path string, token []byte) (*dataConn, error) {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if err := samePeer(c); err != nil {
		c.Close()
		return nil, err
	}
	hello, err := appendDataFrame(nil, &pb.DataHello{Token: token})
	if err == nil {
		_, err = c.Write(hello)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	dc := &dataConn{c: c, pending: map[uint64]chan *pb.DataResponse{}}
	go dc.readLoop()
	return dc, nil
}

// privateDir: the socket must be in a directory of this user that no one
// else can enter, or another user could have put their own socket there.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != uint32(os.Geteuid()) || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is not a directory of uid %d closed to others", dir, os.Geteuid())
	}
	return nil
}

func (d *dataConn) readLoop() {
	r := bufio.NewReaderSize(d.c, 64<<10)
	for {
		resp := new(pb.DataResponse)
		if err := readDataFrame(r, resp); err != nil {
			d.fail(err)
			return
		}
		d.mu.Lock()
		ch := d.pending[resp.GetId()]
		delete(d.pending, resp.GetId())
		d.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered: never blocks
		}
	}
}

// fail ends the connection and every call waiting on it.
func (d *dataConn) fail(why error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return
	}
	d.err = &core.Error{Kind: core.KindUnavailable, Message: "backend plugin unavailable: data connection lost: " + why.Error(),
		Err: fmt.Errorf("%w: %w", ErrTransport, why)}
	for id, ch := range d.pending {
		close(ch)
		delete(d.pending, id)
	}
	d.c.Close()
}

var chanPool = sync.Pool{New: func() any { return make(chan *pb.DataResponse, 1) }}

func (d *dataConn) call(ctx context.Context, req *pb.DataRequest) (*pb.DataResponse, error) {
	ch := chanPool.Get().(chan *pb.DataResponse)
	d.mu.Lock()
	if d.err != nil {
		err := d.err
		d.mu.Unlock()
		return nil, err
	}
	d.next++
	id := d.next
	d.pending[id] = ch
	d.mu.Unlock()

	req.Id = id
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutNs = uint64(max(time.Until(dl), 1))
	}
	if err := d.write(req); err != nil {
		d.fail(err)
		return nil, d.gone()
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, d.gone()
		}
		chanPool.Put(ch)
		return resp, nil
	case <-ctx.Done():
		d.mu.Lock()
		_, waiting := d.pending[id]
		delete(d.pending, id)
		d.mu.Unlock()
		if waiting {
			chanPool.Put(ch) // no answer can come into it now
		}
		return nil, &core.Error{Kind: core.KindUnavailable, Message: "backend plugin unavailable: " + ctx.Err().Error(), Err: ctx.Err()}
	}
}

func (d *dataConn) gone() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *dataConn) write(req *pb.DataRequest) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	var err error
	if d.wbuf, err = appendDataFrame(d.wbuf[:0], req); err != nil {
		return err
	}
	_, err = d.c.Write(d.wbuf)
	if cap(d.wbuf) > 1<<20 {
		d.wbuf = nil
	}
	return err
}

// invoke runs one key operation over the data path when there is one, and
// as its gRPC call otherwise; errors come back as *core.Error either way.
func invoke[Req, Resp any](c *Client, ctx context.Context, req Req,
	asData func(Req) *pb.DataRequest, result func(*pb.DataResponse) Resp,
	rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	if c.data == nil {
		r, err := rpc(ctx, req)
		if err != nil {
			return zero, fromStatus(err)
		}
		return r, nil
	}
	resp, err := c.data.call(ctx, asData(req))
	if err != nil {
		return zero, err
	}
	if e := resp.GetError(); e != nil {
		return zero, &core.Error{Kind: core.ErrorKind(e.GetKind()), Message: e.GetMessage()}
	}
	if resp.Result == nil {
		return zero, core.Errorf(core.KindInternal, "backend plugin answered with neither a result nor an error")
	}
	return result(resp), nil
}
