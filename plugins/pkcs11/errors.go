package pkcs11backend

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// kindOf maps a CKR_* code to the error kind hsmbridge reports.
func kindOf(rv uint) core.ErrorKind {
	switch rv {
	case pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID:
		return core.KindNotFound
	case pkcs11.CKR_ARGUMENTS_BAD, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE,
		pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE, pkcs11.CKR_KEY_SIZE_RANGE,
		pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT,
		pkcs11.CKR_TEMPLATE_INCOMPLETE, pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_DOMAIN_PARAMS_INVALID,
		pkcs11.CKR_CURVE_NOT_SUPPORTED:
		return core.KindInvalidInput
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_FUNCTION_NOT_SUPPORTED, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID,
		pkcs11.CKR_KEY_NOT_WRAPPABLE, pkcs11.CKR_KEY_UNEXTRACTABLE:
		return core.KindUnsupported
	case pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_ACTION_PROHIBITED, pkcs11.CKR_ATTRIBUTE_SENSITIVE,
		pkcs11.CKR_ATTRIBUTE_READ_ONLY:
		return core.KindOperationNotAllowed
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_INVALID,
		pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return core.KindUnauthenticated
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_SESSION_COUNT, pkcs11.CKR_SLOT_ID_INVALID, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_FUNCTION_CANCELED, pkcs11.CKR_OPERATION_ACTIVE:
		return core.KindUnavailable
	case pkcs11.CKR_TOKEN_WRITE_PROTECTED, pkcs11.CKR_SESSION_READ_ONLY, pkcs11.CKR_USER_TYPE_INVALID:
		return core.KindPermissionDenied
	}
	return core.KindInternal
}

// p11err wraps a PKCS#11 error: `pkcs11: C_Sign on key "tok/k@ab12": CKR_...`.
func p11err(fn, what string, err error) error {
	if err == nil {
		return nil
	}
	var e *core.Error
	if errors.As(err, &e) {
		return err
	}
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		on := ""
		if what != "" {
			on = " on " + what
		}
		return &core.Error{Kind: kindOf(uint(rv)), Message: fmt.Sprintf("pkcs11: %s%s: %s", fn, on, ckrName(rv)), Err: err}
	}
	return core.Errorf(core.KindInternal, "pkcs11: %s %s: %v", fn, what, err)
}

// recoverable says whether a fresh session (and login) may cure err.
func recoverable(err error) bool {
	var rv pkcs11.Error
	if !errors.As(err, &rv) {
		return false
	}
	switch uint(rv) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_USER_NOT_LOGGED_IN:
		return true
	}
	return false
}

// ckrName is the CKR_* name of rv (miekg/pkcs11 prints "pkcs11: 0x7: CKR_...").
func ckrName(rv pkcs11.Error) string {
	s := rv.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
