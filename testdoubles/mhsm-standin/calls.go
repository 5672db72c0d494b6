package mhsmstandin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A client call is every request that carries one x-ms-client-request-id:
// the Azure SDKs' correlation header, set once per call and kept on each
// retry. What the stand-in saw of each call tells a test how often a client
// retried, and whether it retried an operation it should not have.

// headerClientRequestID is the Azure SDKs' per-call correlation header.
const headerClientRequestID = "x-ms-client-request-id"

// maxCalls bounds the calls remembered; the oldest are forgotten first (the
// counters in Stats keep counting).
const maxCalls = 1 << 17

// Call is what the stand-in saw of one client call.
type Call struct {
	ID string `json:"id"`
	// Op names the operation: sign, verify, encrypt, decrypt, wrapkey,
	// unwrapkey, create, import, get, update, delete, list, versions, rng,
	// deleted (the /deletedkeys routes).
	Op string `json:"op"`
	// Answers has one entry per request: the status code, "cut" for a
	// Drop, "late" for a Late answer, "none" when the client left before
	// an answer (during an outage or the latency), "pending" while the
	// stand-in holds it.
	Answers []string `json:"answers"`
	// At is when each request arrived.
	At []time.Time `json:"at"`
	// Tries counts the requests that were not the re-send azkeys makes
	// after a 401 challenge (authentication, not a retry).
	Tries int `json:"tries"`
	// Executed counts the times the operation itself ran.
	Executed int `json:"executed"`
}

// opName names the operation of a key API request.
func opName(method string, segs []string) string {
	if len(segs) == 0 {
		return "other"
	}
	switch strings.ToLower(segs[0]) {
	case "rng":
		return "rng"
	case "deletedkeys":
		return "deleted"
	case "keys":
	default:
		return "other"
	}
	switch {
	case len(segs) == 1 || (len(segs) == 2 && segs[1] == ""):
		return "list"
	case len(segs) == 2:
		switch method {
		case http.MethodPut:
			return "import"
		case http.MethodPatch:
			return "update"
		case http.MethodDelete:
			return "delete"
		}
		return "get"
	}
	last := strings.ToLower(segs[len(segs)-1])
	if _, ok := keyOps[last]; ok || last == "create" || last == "versions" {
		return last
	}
	if method == http.MethodPatch {
		return "update"
	}
	return "get"
}

// beginCall counts a request of a call as it arrives, so that a try shows
// while the stand-in still holds it; endCall fills its answer in.
func (s *Server) beginCall(id, op string) int {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	c := s.calls[id]
	if c == nil {
		if len(s.callOrder) >= maxCalls {
			delete(s.calls, s.callOrder[0])
			s.callOrder = s.callOrder[1:]
		}
		c = &Call{ID: id, Op: op}
		s.calls[id] = c
		s.callOrder = append(s.callOrder, id)
		s.callCount++
	}
	// A request right after a 401 is azkeys authenticating the same try.
	if n := len(c.Answers); n == 0 || c.Answers[n-1] != strconv.Itoa(http.StatusUnauthorized) {
		c.Tries++
		if c.Tries > 1 {
			s.retries++
		}
		s.maxTries = max(s.maxTries, c.Tries)
	}
	c.Answers = append(c.Answers, "pending")
	c.At = append(c.At, time.Now())
	return len(c.Answers) - 1
}

func (s *Server) endCall(id string, i int, answer string, executed bool) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	c := s.calls[id]
	if c == nil || i >= len(c.Answers) {
		return // forgotten meanwhile
	}
	c.Answers[i] = answer
	if executed {
		c.Executed++
		if c.Executed == 2 {
			s.repeated[c.Op]++
		}
	}
}

// Calls returns the calls seen (the latest maxCalls), oldest first.
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	out := make([]Call, 0, len(s.callOrder))
	for _, id := range s.callOrder {
		c := *s.calls[id]
		c.Answers = slices.Clone(c.Answers)
		c.At = slices.Clone(c.At)
		out = append(out, c)
	}
	return out
}
