package devapi

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// headerStatuses reads the status values from the C header, so the table
// cannot silently miss one the header names.
func headerStatuses(t *testing.T) map[string]Status {
	t.Helper()
	src, err := os.ReadFile("../include/azihsm_api.h")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^#define (AZIHSM_STATUS_\w+)\s+(-?\d+|INT32_MIN)\b`)
	out := map[string]Status{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		v := int64(-1 << 31)
		if m[2] != "INT32_MIN" {
			if v, err = strconv.ParseInt(m[2], 10, 32); err != nil {
				t.Fatal(err)
			}
		}
		out[m[1]] = Status(v)
	}
	if len(out) < 40 {
		t.Fatalf("read only %d statuses from the header", len(out))
	}
	return out
}

func TestEveryHeaderStatusHasANameAndAKind(t *testing.T) {
	hdr := headerStatuses(t)
	for name, s := range hdr {
		if got := s.String(); got != name {
			t.Errorf("Status(%d).String() = %q, want %q", int32(s), got, name)
		}
		if s.Kind() == "" {
			t.Errorf("%s has no kind", name)
		}
	}
	if len(statuses) != len(hdr) {
		t.Errorf("the table has %d statuses, the header %d", len(statuses), len(hdr))
	}
}

func TestUnknownStatus(t *testing.T) {
	s := Status(-99)
	if s.String() != "AZIHSM_STATUS_-99" || s.Kind() != core.KindInternal || s.Transient() {
		t.Errorf("unknown status: %q %q %v", s, s.Kind(), s.Transient())
	}
}

func TestTransientSetIsExact(t *testing.T) {
	want := map[Status]bool{
		StatusIOAborted: true, StatusIOAbortInProgress: true,
		StatusSessionNeedsRenegotiation: true, StatusDeviceNotReady: true,
	}
	for s := range statuses {
		if s.Transient() != want[s] {
			t.Errorf("%s: Transient() = %v", s, s.Transient())
		}
	}
}

func TestKinds(t *testing.T) {
	cases := map[Status]*core.Error{
		StatusInvalidArgument:           core.ErrInvalidInput,
		StatusInvalidKey:                core.ErrInvalidInput,
		StatusInvalidKeySize:            core.ErrInvalidInput,
		StatusInvalidKeyProps:           core.ErrInvalidInput,
		StatusMaskedKeyDecodeFailed:     core.ErrInvalidInput,
		StatusInvalidSignature:          core.ErrInvalidInput,
		StatusNotFound:                  core.ErrNotFound,
		StatusKeyNotFound:               core.ErrNotFound,
		StatusPropertyNotPresent:        core.ErrNotFound,
		StatusUnsupportedKeyOperation:   core.ErrOperationNotAllowed,
		StatusInvalidSession:            core.ErrOperationNotAllowed,
		StatusUnsupportedAlgorithm:      core.ErrUnsupported,
		StatusUnsupportedKeyKind:        core.ErrUnsupported,
		StatusUnsupportedProperty:       core.ErrUnsupported,
		StatusUnsupportedAPIRevision:    core.ErrUnsupported,
		StatusIOAborted:                 core.ErrUnavailable,
		StatusIOAbortInProgress:         core.ErrUnavailable,
		StatusSessionNeedsRenegotiation: core.ErrUnavailable,
		StatusDeviceNotReady:            core.ErrUnavailable,
		StatusDeviceNotAccessible:       core.ErrUnavailable,
		StatusRetryExhausted:            core.ErrUnavailable,
		StatusCredentialsNotEstablished: core.ErrUnauthenticated,
		StatusNonceMismatch:             core.ErrUnauthenticated,
		StatusInternalError:             core.ErrInternal,
		StatusPanic:                     core.ErrInternal,
	}
	for s, want := range cases {
		var err error = fmt.Errorf("wrapped: %w", &StatusError{Func: "azihsm_crypt_sign", Status: s})
		if !errors.Is(err, want) {
			t.Errorf("%s: errors.Is(err, %s) is false", s, want.Kind)
		}
		if errors.Is(err, core.ErrAlreadyExists) {
			t.Errorf("%s matches already_exists", s)
		}
		if core.KindOf(err) != core.KindInternal {
			// StatusError is not a *core.Error; KindOf sees none.
			t.Errorf("%s: KindOf = %s", s, core.KindOf(err))
		}
	}
}

func TestStatusErrorMessageAndMatching(t *testing.T) {
	err := error(&StatusError{Func: "azihsm_crypt_sign", Status: StatusInvalidKey})
	if got := err.Error(); !strings.HasPrefix(got, "azihsm_crypt_sign: AZIHSM_STATUS_INVALID_KEY (-12): ") {
		t.Errorf("Error() = %q", got)
	}
	if got := (&StatusError{Func: "f", Status: StatusNonceMismatch}).Error(); got != "f: AZIHSM_STATUS_NONCE_MISMATCH (-24)" {
		t.Errorf("Error() without a meaning = %q", got)
	}
	wrapped := fmt.Errorf("loading key: %w", err)
	if !errors.Is(wrapped, &StatusError{Status: StatusInvalidKey}) {
		t.Error("errors.Is with a status-only StatusError failed")
	}
	if errors.Is(wrapped, &StatusError{Func: "azihsm_crypt_decrypt", Status: StatusInvalidKey}) {
		t.Error("errors.Is matched another function")
	}
	if s, ok := StatusOf(wrapped); !ok || s != StatusInvalidKey {
		t.Errorf("StatusOf = %v, %v", s, ok)
	}
	if _, ok := StatusOf(errors.New("x")); ok {
		t.Error("StatusOf found a status in a plain error")
	}
}
