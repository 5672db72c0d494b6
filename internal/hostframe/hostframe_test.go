package hostframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
)

func header(size uint32) []byte {
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], size)
	return hdr[:]
}

// A request written by Write reads back whole, and its prefix is its
// length, big-endian.
func TestRoundTrip(t *testing.T) {
	reqs := []*hostapi.Request{
		{Id: 1, Op: &hostapi.Request_Hello{Hello: &hostapi.HelloRequest{Version: hostapi.ProtocolVersion_PROTOCOL_VERSION_1, Session: "s"}}},
		{Id: 2, Op: &hostapi.Request_Sign{Sign: &hostapi.SignRequest{Reference: "managedhsm:MyHSM:k", Digest: bytes.Repeat([]byte{7}, 32)}}},
		{}, // an empty message is a frame of length 0
	}
	var stream bytes.Buffer
	for _, req := range reqs {
		if err := Write(&stream, req); err != nil {
			t.Fatal(err)
		}
	}
	raw := stream.Bytes()
	if got, want := binary.BigEndian.Uint32(raw), uint32(proto.Size(reqs[0])); got != want {
		t.Fatalf("prefix %d, message of %d bytes", got, want)
	}
	for i, req := range reqs {
		body, err := Read(&stream)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		again := new(hostapi.Request)
		if err := proto.Unmarshal(body, again); err != nil || !proto.Equal(req, again) {
			t.Fatalf("frame %d: %v\n%v\n%v", i, err, req, again)
		}
	}
	if _, err := Read(&stream); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// A prefix over MaxSize is refused with its size before anything is
// allocated for the body or any of it is read; one of exactly MaxSize is
// read.
func TestOversizeFrameIsRefusedWithoutAllocating(t *testing.T) {
	for _, size := range []uint32{MaxSize + 1, 1<<32 - 1} {
		r := &chunkReader{data: append(header(size), make([]byte, 64)...), chunk: 64}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		body, err := Read(r)
		runtime.ReadMemStats(&m1)
		var big *TooLargeError
		if !errors.As(err, &big) || big.Size != size || body != nil {
			t.Fatalf("prefix %d: %d bytes, %v", size, len(body), err)
		}
		if !strings.Contains(err.Error(), "exceeds the 1048576-byte limit") {
			t.Errorf("message: %v", err)
		}
		if r.pos != HeaderSize {
			t.Errorf("prefix %d: %d bytes of the body read", size, r.pos-HeaderSize)
		}
		if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 4<<10 {
			t.Errorf("prefix %d: refusing it allocated %d bytes", size, alloc)
		}
	}
	body := bytes.Repeat([]byte{0x5a}, MaxSize)
	got, err := Read(bytes.NewReader(append(header(MaxSize), body...)))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("frame of exactly MaxSize: %d bytes, %v", len(got), err)
	}
}

// A stream that ends inside a frame, in its prefix or its body, is
// io.ErrUnexpectedEOF; one that ends before a frame begins is io.EOF.
func TestShortRead(t *testing.T) {
	for name, stream := range map[string][]byte{
		"empty":          nil,
		"partial prefix": {0, 0},
		"partial body":   append(header(10), 1, 2, 3),
		"no body":        header(1),
	} {
		want := io.ErrUnexpectedEOF
		if len(stream) == 0 {
			want = io.EOF
		}
		body, err := Read(iotest.OneByteReader(bytes.NewReader(stream)))
		if err != want || body != nil {
			t.Errorf("%s: %d bytes, %v; want %v", name, len(body), err, want)
		}
	}
	// Another error from the reader is returned as it is.
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(append(header(10), 1, 2)), iotest.ErrReader(boom))
	if _, err := Read(r); err != boom {
		t.Errorf("reader error mid-body: %v", err)
	}
}

// A prefix announcing MaxSize followed by a few bytes allocates little;
// frames arriving in pieces are read whole.
func TestReadGrowsWithTheBytesThatArrive(t *testing.T) {
	stalled := append(header(MaxSize), make([]byte, 1000)...)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := Read(bytes.NewReader(stalled))
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 256<<10 {
		t.Fatalf("reading 1000 bytes of an announced 1 MiB frame allocated %d KiB", alloc>>10)
	}

	for _, size := range []int{0, 1, initialChunk - 1, initialChunk, 70000, MaxSize} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i * 7)
		}
		got, err := Read(iotest.HalfReader(bytes.NewReader(append(header(uint32(size)), body...))))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("frame of %d bytes read in pieces: %d bytes, %v", size, len(got), err)
		}
	}
}

// A message over MaxSize is refused by Encode and Write, and Write then
// writes nothing; one that fits is one Write of prefix and body.
func TestEncodeRefusesOversizeMessages(t *testing.T) {
	big := &hostapi.Request{Id: 1, Op: &hostapi.Request_Decrypt{Decrypt: &hostapi.DecryptRequest{Ciphertext: make([]byte, MaxSize)}}}
	var tooLarge *TooLargeError
	if _, err := Encode(big); !errors.As(err, &tooLarge) || int(tooLarge.Size) != proto.Size(big) {
		t.Fatalf("Encode of a %d-byte message: %v", proto.Size(big), err)
	}
	w := &countingWriter{}
	if err := Write(w, big); !errors.As(err, &tooLarge) || w.writes != 0 {
		t.Fatalf("Write of a %d-byte message: %v, %d writes", proto.Size(big), err, w.writes)
	}
	small := &hostapi.Request{Id: 2, Op: &hostapi.Request_Random{Random: &hostapi.RandomRequest{Length: 16}}}
	if err := Write(w, small); err != nil || w.writes != 1 || w.n != HeaderSize+proto.Size(small) {
		t.Fatalf("Write of a small message: %v, %d writes, %d bytes", err, w.writes, w.n)
	}
}

type countingWriter struct{ writes, n int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	w.n += len(p)
	return len(p), nil
}
