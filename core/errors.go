package core

import (
	"errors"
	"fmt"
)

// ErrorKind classifies a failure so that callers on either side of a process
// boundary can react to it without parsing messages.
type ErrorKind string

const (
	KindInternal            ErrorKind = "internal"
	KindInvalidReference    ErrorKind = "invalid_reference"
	KindNotFound            ErrorKind = "not_found"
	KindOperationNotAllowed ErrorKind = "operation_not_allowed"
	KindUnsupported         ErrorKind = "unsupported"
	KindInvalidInput        ErrorKind = "invalid_input"
	KindUnavailable         ErrorKind = "unavailable"
	KindPermissionDenied    ErrorKind = "permission_denied"
	KindUnauthenticated     ErrorKind = "unauthenticated"
	KindAlreadyExists       ErrorKind = "already_exists"
	KindNoRoute             ErrorKind = "no_route"
)

// Sentinels for errors.Is: errors.Is(err, core.ErrNotFound) holds for every
// *Error of that kind, whatever its message.
var (
	ErrInternal            = &Error{Kind: KindInternal}
	ErrInvalidReference    = &Error{Kind: KindInvalidReference}
	ErrNotFound            = &Error{Kind: KindNotFound}
	ErrOperationNotAllowed = &Error{Kind: KindOperationNotAllowed}
	ErrUnsupported         = &Error{Kind: KindUnsupported}
	ErrInvalidInput        = &Error{Kind: KindInvalidInput}
	ErrUnavailable         = &Error{Kind: KindUnavailable}
	ErrPermissionDenied    = &Error{Kind: KindPermissionDenied}
	ErrUnauthenticated     = &Error{Kind: KindUnauthenticated}
	ErrAlreadyExists       = &Error{Kind: KindAlreadyExists}
	ErrNoRoute             = &Error{Kind: KindNoRoute}
)

// Error is the error type of the domain. Message is complete on its own (it
// already includes Err's text when Errorf built it); Err, when set, is the
// underlying cause and is unwrapped by errors.Is/As.
type Error struct {
	Kind    ErrorKind
	Message string
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	}
	return string(e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error of the same kind, so the sentinels work as classes.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Kind == e.Kind
}

// Errorf builds an *Error of the given kind; a %w verb sets Err.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Message: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf returns the kind of the first *Error in err's chain, or
// KindInternal for an error that carries none.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
