package sdk

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/protobuf/proto"
)

// The data path's framing (see backend.proto): each message is its length
// as 4 bytes big-endian, then the message. maxDataFrame matches gRPC's
// default limit on a received message, so an operation that fits one fits
// the other.
const maxDataFrame = 4 << 20

// writeDataFrame appends one framed message to buf and returns it.
func appendDataFrame(buf []byte, m proto.Message) ([]byte, error) {
	at := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return nil, err
	}
	n := len(buf) - at - 4
	if n > maxDataFrame {
		return nil, fmt.Errorf("message of %d bytes is over the data path's %d-byte limit", n, maxDataFrame)
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(n))
	return buf, nil
}

// readDataFrame reads one framed message into m.
func readDataFrame(r *bufio.Reader, m proto.Message) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxDataFrame {
		return fmt.Errorf("data path frame of %d bytes is over the %d-byte limit", n, maxDataFrame)
	}
	// Peek avoids a copy when the frame is already buffered.
	if int(n) <= r.Size() {
		b, err := r.Peek(int(n))
		if err != nil {
			return noEOF(err)
		}
		err = proto.Unmarshal(b, m)
		r.Discard(int(n))
		return err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return noEOF(err)
	}
	return proto.Unmarshal(b, m)
}

// noEOF: a stream that ends inside a frame was cut, not closed.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// samePeer refuses a connection from (or to) a process of another user.
func samePeer(c net.Conn) error {
	uid, err := peerUID(c)
	if err != nil {
		return fmt.Errorf("reading the peer's credentials: %w", err)
	}
	if want := uint32(os.Geteuid()); uid != want {
		return fmt.Errorf("peer runs as uid %d, not %d", uid, want)
	}
	return nil
}
