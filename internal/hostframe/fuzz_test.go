package hostframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
)

// chunkReader serves data at most chunk bytes per Read, as a socket may, and
// records the capacity of the largest buffer it was handed: what Read reads
// a body into is what a length prefix made it allocate.
type chunkReader struct {
	data   []byte
	pos    int
	chunk  int
	maxBuf int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.maxBuf = max(r.maxBuf, cap(p))
	if r.pos == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data[r.pos:])
	r.pos += n
	return n, nil
}

// allocated is the bytes this process has allocated so far.
// runtime.ReadMemStats flushes every P's cached spans before it counts, so
// the figure is exact; runtime/metrics does not, and there a small object
// is counted only when its span is next refilled or flushed, which can be
// in a later call (a collection during one Read once counted 400 KB
// allocated by earlier inputs against it).
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// allocSlack covers Read's small objects and the fuzzing engine's own
// goroutines, which may allocate while Read runs.
const allocSlack = 64 << 10

// FuzzReadFrame reads frames from an arbitrary byte stream, delivered in
// chunks of a fuzzed size, until Read fails. It checks each frame
// against the stream: the body is exactly the prefix's length of bytes
// after it; no buffer over MaxSize is handed to the reader, and one call
// allocates at most twice MaxSize in all (room for a growing buffer's
// copies); a prefix over MaxSize is refused with its size, allocating
// nothing for a body and reading none of it; the stream ends cleanly
// (io.EOF) only at a frame boundary, and otherwise with
// io.ErrUnexpectedEOF. A body that is a Request survives Write and Read
// unchanged.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		r := &chunkReader{data: stream, chunk: int(chunk)%64 + 1}
		for frames := 0; ; frames++ {
			off := r.pos
			before := allocated()
			frame, err := Read(r)
			alloc := allocated() - before
			if r.maxBuf > MaxSize {
				t.Fatalf("frame %d: Read read into a %d-byte buffer; the limit is %d", frames, r.maxBuf, MaxSize)
			}
			if alloc > 2*MaxSize+allocSlack {
				t.Fatalf("frame %d: Read allocated %d bytes, over twice the %d-byte cap", frames, alloc, MaxSize)
			}
			left := stream[off:]
			var big *TooLargeError
			switch {
			case err == nil:
				if len(left) < 4 {
					t.Fatalf("frame %d: read from %d bytes, shorter than a length prefix", frames, len(left))
				}
				n := binary.BigEndian.Uint32(left)
				if n > MaxSize || 4+int(n) > len(left) || uint32(len(frame)) != n || !bytes.Equal(frame, left[4:4+n]) || r.pos != off+4+int(n) {
					t.Fatalf("frame %d: prefix %d, got %d bytes, consumed %d", frames, n, len(frame), r.pos-off)
				}
				checkRequestRoundTrip(t, frame)
				continue
			case errors.As(err, &big):
				if len(left) < 4 {
					t.Fatalf("frame %d: %v from %d bytes", frames, err, len(left))
				}
				if n := binary.BigEndian.Uint32(left); n <= MaxSize || big.Size != n {
					t.Fatalf("frame %d: prefix %d refused as %d bytes", frames, n, big.Size)
				}
				if r.pos != off+4 {
					t.Fatalf("frame %d: %d bytes of an oversize frame's body were read", frames, r.pos-off-4)
				}
				if alloc > allocSlack {
					t.Fatalf("frame %d: refusing an oversize frame allocated %d bytes", frames, alloc)
				}
			case err == io.EOF:
				if len(left) != 0 {
					t.Fatalf("frame %d: clean EOF with %d bytes left", frames, len(left))
				}
			case err == io.ErrUnexpectedEOF:
				if len(left) == 0 {
					t.Fatalf("frame %d: unexpected EOF at a frame boundary", frames)
				}
				if len(left) >= 4 && 4+int(binary.BigEndian.Uint32(left)) <= len(left) {
					t.Fatalf("frame %d: unexpected EOF with the whole frame present", frames)
				}
			default:
				t.Fatalf("frame %d: unexpected error %v", frames, err)
			}
			if frame != nil {
				t.Fatalf("frame %d: error %v with a %d-byte frame", frames, err, len(frame))
			}
			return
		}
	})
}

// checkRequestRoundTrip: a frame that decodes as a Request, written again
// by Write, reads back as an equal Request.
func checkRequestRoundTrip(t *testing.T, frame []byte) {
	t.Helper()
	req := new(hostapi.Request)
	if proto.Unmarshal(frame, req) != nil {
		return
	}
	var buf bytes.Buffer
	if err := Write(&buf, req); err != nil {
		var big *TooLargeError
		if errors.As(err, &big) {
			return // re-encoding may grow a frame near the limit
		}
		t.Fatalf("Write of a decoded Request: %v", err)
	}
	body, err := Read(&buf)
	if err != nil || buf.Len() != 0 {
		t.Fatalf("Read of Write: %v, %d bytes left", err, buf.Len())
	}
	again := new(hostapi.Request)
	if err := proto.Unmarshal(body, again); err != nil || !proto.Equal(req, again) {
		t.Fatalf("Request changed through Write and Read: %v\n%v\n%v", err, req, again)
	}
}
