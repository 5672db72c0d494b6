package socketserver_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/internal/hostframe"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// logBuffer collects a server's log lines; the server writes from many
// goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func rawDial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var hello = &hostapi.Request{Id: 1, Op: &hostapi.Request_Hello{Hello: &hostapi.HelloRequest{Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1}}}

// closedWithin reports whether the server closes c within d, reading and
// discarding whatever it sends first.
func closedWithin(c net.Conn, d time.Duration) (bool, error) {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, io.EOF) {
		return true, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	return true, err // a reset is closed too
}

func TestPartialFrameIsClosedAfterFrameTimeout(t *testing.T) {
	logs := &logBuffer{}
	e := startServer(t, socketserver.SocketConfig{}, func(s *socketserver.Server) {
		s.FrameTimeout = 300 * time.Millisecond
		s.Log = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	})

	// Idle between frames is fine, however long.
	idle := rawConn{t, rawDial(t, e.path)}
	idle.send(hello)
	if r := idle.recv(); r.GetHello() == nil {
		t.Fatalf("hello: %v", r)
	}

	// A body that stops half way, and a header that stops half way.
	body := rawDial(t, e.path)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 100)
	body.Write(append(hdr[:], make([]byte, 10)...))
	header := rawDial(t, e.path)
	header.Write(hdr[:2])

	start := time.Now()
	for name, c := range map[string]net.Conn{"partial body": body, "partial header": header} {
		closed, err := closedWithin(c, 3*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !closed {
			t.Fatalf("%s: connection still open 3 s after it stalled (frame timeout 300 ms)", name)
		}
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("closed after %s, before the frame timeout", el)
	}
	if !strings.Contains(logs.String(), "frame not completed") {
		t.Fatalf("no log line for the stalled frame:\n%s", logs)
	}

	time.Sleep(400 * time.Millisecond) // the idle connection outlives the timeout
	idle.send(hello)
	if r := idle.recv(); r.GetHello() == nil {
		t.Fatalf("hello after idling past the frame timeout: %v", r)
	}
}

func TestConnectionsBeyondPerUIDLimitAreRefused(t *testing.T) {
	logs := &logBuffer{}
	e := startServer(t, socketserver.SocketConfig{}, func(s *socketserver.Server) {
		s.MaxConnsPerUID = 3
		s.Log = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	})
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := rawDial(t, e.path)
		rawConn{t, c}.send(hello)
		if r := (rawConn{t, c}).recv(); r.GetHello() == nil {
			t.Fatalf("connection %d: %v", i, r)
		}
		held = append(held, c)
	}

	extra := rawDial(t, e.path)
	extra.SetReadDeadline(time.Now().Add(3 * time.Second))
	frame, err := hostframe.Read(extra)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a fourth connection from the same uid was served with a limit of 3")
	}
	if err == nil {
		resp := new(hostapi.Response)
		if perr := proto.Unmarshal(frame, resp); perr != nil || resp.GetError().GetKind() != hostapi.ErrorKind_ERROR_KIND_UNAVAILABLE ||
			!strings.Contains(resp.GetError().GetMessage(), "max_connections_per_uid") {
			t.Fatalf("refusal: %v %v", resp, perr)
		}
	}
	if closed, err := closedWithin(extra, time.Second); !closed || err != nil {
		t.Fatalf("refused connection not closed: %v", err)
	}
	uid := os.Getuid()
	if !strings.Contains(logs.String(), "refusing connection") || !strings.Contains(logs.String(), "uid="+strconv.Itoa(uid)) {
		t.Fatalf("no log line for the refusal:\n%s", logs)
	}

	// A closed connection frees its place.
	held[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c := rawDial(t, e.path)
		rawConn{t, c}.send(hello)
		c.SetReadDeadline(time.Now().Add(time.Second))
		frame, err := hostframe.Read(c)
		resp := new(hostapi.Response)
		if err == nil && proto.Unmarshal(frame, resp) == nil && resp.GetHello() != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one of the three closed: %v %v", err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestAnnouncedFrameSizeIsNotAllocatedUpFront: 50 connections each announce
// a 1 MiB frame and send one byte of it. The server must not hold 50 MiB for
// them: what it holds grows with what arrives.
func TestAnnouncedFrameSizeIsNotAllocatedUpFront(t *testing.T) {
	e := start(t, socketserver.SocketConfig{})
	before := heapInUse()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], hostframe.MaxSize)
	const conns = 50
	for i := 0; i < conns; i++ {
		c := rawDial(t, e.path)
		if _, err := c.Write(append(hdr[:], 0x0a)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the server read the headers
	grown := int64(heapInUse()) - int64(before)
	t.Logf("live heap grew by %d KiB for %d stalled 1 MiB frames", grown>>10, conns)
	if grown > 16<<20 {
		t.Fatalf("live heap grew by %d MiB for %d connections that sent 5 bytes each", grown>>20, conns)
	}
}

// TestUnreadResponsesCloseTheConnection: a client that sends requests and
// never reads pins their responses; once a response has waited
// FrameTimeout for the client to take it, the connection is closed.
func TestUnreadResponsesCloseTheConnection(t *testing.T) {
	logs := &logBuffer{}
	e := startServer(t, socketserver.SocketConfig{}, func(s *socketserver.Server) {
		s.FrameTimeout = 300 * time.Millisecond
		s.Log = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	})
	c := rawDial(t, e.path)
	r := rawConn{t, c}
	for i := 0; i < 40; i++ { // 2.5 MiB of answers, far over a socket's buffer
		r.send(&hostapi.Request{Id: uint64(i + 1), Op: &hostapi.Request_Random{Random: &hostapi.RandomRequest{Length: 64 << 10}}})
	}
	time.Sleep(time.Second)
	closed, err := closedWithin(c, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Fatal("connection still open though its responses went unread for over the frame timeout")
	}
	if !strings.Contains(logs.String(), "response not read within frame_timeout") {
		t.Fatalf("no log line:\n%s", logs)
	}
}
