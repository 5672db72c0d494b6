package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
)

var kindCodes = map[core.ErrorKind]codes.Code{
	core.KindInternal:            codes.Internal,
	core.KindInvalidReference:    codes.InvalidArgument,
	core.KindNotFound:            codes.NotFound,
	core.KindOperationNotAllowed: codes.FailedPrecondition,
	core.KindUnsupported:         codes.Unimplemented,
	core.KindInvalidInput:        codes.InvalidArgument,
	core.KindUnavailable:         codes.Unavailable,
	core.KindPermissionDenied:    codes.PermissionDenied,
	core.KindUnauthenticated:     codes.Unauthenticated,
	core.KindAlreadyExists:       codes.AlreadyExists,
	core.KindNoRoute:             codes.NotFound,
}

// ErrTransport is in the chain of an error that says the connection to the
// plugin broke (the plugin may have died), as opposed to an error the
// plugin answered with: errors.Is(err, sdk.ErrTransport).
var ErrTransport = errors.New("connection to the backend plugin broke")

// toStatus turns a backend's error into a gRPC status that keeps its kind.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	kind := core.KindOf(err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		kind = core.KindUnavailable
	}
	st := status.New(kindCodes[kind], err.Error())
	if withDetail, derr := st.WithDetails(&backendpb.BackendError{Kind: string(kind), Message: err.Error()}); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// fromStatus turns an RPC error back into a *core.Error. Transport failures
// (the plugin died, the call timed out) become KindUnavailable.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &core.Error{Kind: core.KindUnavailable, Message: "backend plugin: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrTransport, err)}
	}
	for _, d := range st.Details() {
		if be, ok := d.(*backendpb.BackendError); ok {
			return &core.Error{Kind: core.ErrorKind(be.Kind), Message: be.Message}
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		// Without a BackendError detail: gRPC's own, the connection broke.
		return &core.Error{Kind: core.KindUnavailable, Message: "backend plugin unavailable: " + st.Message(), Err: ErrTransport}
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		return &core.Error{Kind: core.KindUnavailable, Message: "backend plugin unavailable: " + st.Message()}
	case codes.Unimplemented:
		return &core.Error{Kind: core.KindUnsupported, Message: "backend plugin: " + st.Message()}
	}
	return &core.Error{Kind: core.KindInternal, Message: "backend plugin: " + st.Message()}
}
