package core

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorKindsMatchWithErrorsIs(t *testing.T) {
	err := Errorf(KindNotFound, "managedhsm:V:k: key not found")
	wrapped := fmt.Errorf("while loading: %w", err)
	if !errors.Is(wrapped, ErrNotFound) {
		t.Fatalf("errors.Is(%v, ErrNotFound) = false", wrapped)
	}
	if errors.Is(wrapped, ErrUnsupported) {
		t.Fatalf("a not-found error matched ErrUnsupported")
	}
	if got := KindOf(wrapped); got != KindNotFound {
		t.Fatalf("KindOf = %q", got)
	}
	if got := KindOf(errors.New("plain")); got != KindInternal {
		t.Fatalf("KindOf(plain) = %q, want internal", got)
	}
}

func TestErrorfKeepsCause(t *testing.T) {
	cause := errors.New("disk full")
	err := Errorf(KindInternal, "saving key: %w", cause)
	if !errors.Is(err, cause) {
		t.Fatal("cause lost")
	}
	if err.Error() != "saving key: disk full" {
		t.Fatalf("message %q", err.Error())
	}
}
