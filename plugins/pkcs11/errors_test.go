package pkcs11backend

import (
	"errors"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// Each CKR_* code keeps its name in the message and maps to the kind a
// caller acts on; the session and login losses are the recoverable ones.
func TestCKRCodesKeepTheirNameAndMapToKinds(t *testing.T) {
	for _, c := range []struct {
		rv          uint
		name        string
		kind        core.ErrorKind
		recoverable bool
	}{
		{pkcs11.CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", core.KindUnauthenticated, false},
		{pkcs11.CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", core.KindUnauthenticated, true},
		{pkcs11.CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", core.KindUnavailable, true},
		{pkcs11.CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", core.KindUnavailable, true},
		{pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED", core.KindOperationNotAllowed, false},
		{pkcs11.CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID", core.KindUnsupported, false},
		{pkcs11.CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", core.KindInvalidInput, false},
		{pkcs11.CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", core.KindNotFound, false},
		{pkcs11.CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", core.KindPermissionDenied, false},
		{pkcs11.CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", core.KindInternal, false},
	} {
		err := p11err("C_Sign", `key "tok:k"`, pkcs11.Error(c.rv))
		if core.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), `C_Sign on key "tok:k"`) {
			t.Errorf("%s: %v (kind %s), want kind %s", c.name, err, core.KindOf(err), c.kind)
		}
		if recoverable(err) != c.recoverable {
			t.Errorf("%s: recoverable %v, want %v", c.name, recoverable(err), c.recoverable)
		}
	}
	if p11err("C_Sign", "", nil) != nil {
		t.Error("no error became one")
	}
	mine := core.Errorf(core.KindNotFound, "already ours")
	if err := p11err("C_FindObjects", "", mine); !errors.Is(err, core.ErrNotFound) || err.Error() != mine.Error() {
		t.Errorf("an hsmbridge error was rewrapped: %v", err)
	}
}
