// Package hostframe is the framing of hsmhost's socket protocol
// (api/hostapi/host.proto), shared by the host (internal/socketserver) and
// its Go clients (hsmkey): every message is preceded by its length, 4 bytes
// big-endian, and no message is longer than MaxSize.
package hostframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// HeaderSize is the length of the prefix before each message.
const HeaderSize = 4

// MaxSize is the largest message either side accepts (host.proto).
const MaxSize = 1 << 20

// TooLargeError reports a message, announced or to be sent, over MaxSize.
type TooLargeError struct{ Size uint32 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", e.Size, MaxSize)
}

// initialChunk is all Read allocates for a body before its bytes come: a
// length prefix alone buys a peer no more memory than this. The buffer
// then doubles, never past the announced length, as bytes arrive, so what
// a stalled frame holds is at most twice what was sent.
const initialChunk = 4 << 10

// Read reads one frame and returns its body. A prefix over MaxSize is
// refused with a *TooLargeError before any of the body is read. The error
// is io.EOF only when r ends before a frame begins; a frame cut short is
// io.ErrUnexpectedEOF; r's other errors are returned as they are.
func Read(r io.Reader) ([]byte, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > MaxSize {
		return nil, &TooLargeError{Size: size}
	}
	n := int(size)
	buf := make([]byte, 0, min(n, initialChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// Encode returns m after its length prefix, in one buffer. A message over
// MaxSize is refused with a *TooLargeError before it is marshalled; an
// error from marshalling is returned as it is.
func Encode(m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	if size > MaxSize {
		return nil, &TooLargeError{Size: uint32(size)}
	}
	buf := make([]byte, HeaderSize, HeaderSize+size)
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return nil, err
	}
	// The prefix is what was marshalled, whatever the size said.
	body := len(buf) - HeaderSize
	if body > MaxSize {
		return nil, &TooLargeError{Size: uint32(body)}
	}
	binary.BigEndian.PutUint32(buf, uint32(body))
	return buf, nil
}

// Write encodes m and writes the frame in one Write, so that writers that
// share a stream under a lock never interleave parts of frames.
func Write(w io.Writer, m proto.Message) error {
	buf, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
