package devapi

import (
	"errors"
	"fmt"

	"github.com/hsmbridge/hsmbridge/core"
)

// Status is an azihsm_status: 0 is success, errors are negative.
type Status int32

// The status values of include/azihsm_api.h.
const (
	StatusSuccess                     Status = 0
	StatusInvalidArgument             Status = -1
	StatusInvalidHandle               Status = -2
	StatusIndexOutOfRange             Status = -3
	StatusBufferTooSmall              Status = -4
	StatusInternalError               Status = -5
	StatusRNGError                    Status = -6
	StatusInvalidKeySize              Status = -7
	StatusDDICmdFailure               Status = -8
	StatusPropertyNotPresent          Status = -9
	StatusKeyClassNotSpecified        Status = -10
	StatusKeyKindNotSpecified         Status = -11
	StatusInvalidKey                  Status = -12
	StatusUnsupportedKeyKind          Status = -13
	StatusUnsupportedAlgorithm        Status = -14
	StatusInvalidSignature            Status = -15
	StatusInvalidKeyProps             Status = -16
	StatusUnsupportedProperty         Status = -17
	StatusCertChainChanged            Status = -18
	StatusInvalidTweak                Status = -19
	StatusNotFound                    Status = -20
	StatusIOAborted                   Status = -21
	StatusIOAbortInProgress           Status = -22
	StatusCredentialsNotEstablished   Status = -23
	StatusNonceMismatch               Status = -24
	StatusPartitionNotProvisioned     Status = -25
	StatusMaskedKeyDecodeFailed       Status = -26
	StatusECCVerifyFailed             Status = -27
	StatusSessionNeedsRenegotiation   Status = -29
	StatusPendingKeyGeneration        Status = -30
	StatusKeyNotFound                 Status = -31
	StatusPartitionAlreadyProvisioned Status = -33
	StatusVaultAppLimitReached        Status = -34
	StatusRetryExhausted              Status = -35
	StatusDeviceNotReady              Status = -36
	StatusCannotDeleteInternalKeys    Status = -37
	StatusUnsupportedAPIRevision      Status = -38
	StatusDeviceNotAccessible         Status = -39
	StatusInvalidContextState         Status = -40
	StatusBK3AlreadyInitialized       Status = -41
	StatusInvalidSession              Status = -42
	StatusUnsupportedKeyOperation     Status = -45
	StatusPanic                       Status = -1 << 31 // INT32_MIN
)

// statusInfo is what the binding knows about one status: its name in the
// header, the hsmbridge error kind it maps onto, whether reopening the
// session and reloading the keys may cure it, and a plain-English meaning
// (empty where the name says it all).
type statusInfo struct {
	name      string
	kind      core.ErrorKind
	transient bool
	meaning   string
}

// statuses is the one table of every status of the header. Kinds:
// caller mistakes are invalid_input; objects that are not there (a stale
// handle included: its session or partition has gone) are not_found; a key
// or session that refuses the call is operation_not_allowed; device states
// that may pass are unavailable; faults of the device or of this binding
// are internal.
var statuses = map[Status]statusInfo{
	StatusSuccess:                     {"AZIHSM_STATUS_SUCCESS", core.KindInternal, false, "success"},
	StatusInvalidArgument:             {"AZIHSM_STATUS_INVALID_ARGUMENT", core.KindInvalidInput, false, "an argument of the call is not valid"},
	StatusInvalidHandle:               {"AZIHSM_STATUS_INVALID_HANDLE", core.KindNotFound, false, "the handle names no open partition, session, key or context"},
	StatusIndexOutOfRange:             {"AZIHSM_STATUS_INDEX_OUT_OF_RANGE", core.KindInvalidInput, false, ""},
	StatusBufferTooSmall:              {"AZIHSM_STATUS_BUFFER_TOO_SMALL", core.KindInternal, false, "the output buffer is too small"},
	StatusInternalError:               {"AZIHSM_STATUS_INTERNAL_ERROR", core.KindInternal, false, "internal error of the device library"},
	StatusRNGError:                    {"AZIHSM_STATUS_RNG_ERROR", core.KindInternal, false, "the device's random number generator failed"},
	StatusInvalidKeySize:              {"AZIHSM_STATUS_INVALID_KEY_SIZE", core.KindInvalidInput, false, "the key size is not valid for this call"},
	StatusDDICmdFailure:               {"AZIHSM_STATUS_DDI_CMD_FAILURE", core.KindInternal, false, "a device command failed"},
	StatusPropertyNotPresent:          {"AZIHSM_STATUS_PROPERTY_NOT_PRESENT", core.KindNotFound, false, "the key has no such property"},
	StatusKeyClassNotSpecified:        {"AZIHSM_STATUS_KEY_CLASS_NOT_SPECIFIED", core.KindInvalidInput, false, ""},
	StatusKeyKindNotSpecified:         {"AZIHSM_STATUS_KEY_KIND_NOT_SPECIFIED", core.KindInvalidInput, false, ""},
	StatusInvalidKey:                  {"AZIHSM_STATUS_INVALID_KEY", core.KindInvalidInput, false, "the key is not valid for this call"},
	StatusUnsupportedKeyKind:          {"AZIHSM_STATUS_UNSUPPORTED_KEY_KIND", core.KindUnsupported, false, "the device does not support this kind of key"},
	StatusUnsupportedAlgorithm:        {"AZIHSM_STATUS_UNSUPPORTED_ALGORITHM", core.KindUnsupported, false, "the device does not support this algorithm here"},
	StatusInvalidSignature:            {"AZIHSM_STATUS_INVALID_SIGNATURE", core.KindInvalidInput, false, "the signature does not verify"},
	StatusInvalidKeyProps:             {"AZIHSM_STATUS_INVALID_KEY_PROPS", core.KindInvalidInput, false, "the key properties are not valid together"},
	StatusUnsupportedProperty:         {"AZIHSM_STATUS_UNSUPPORTED_PROPERTY", core.KindUnsupported, false, "the device does not support this property"},
	StatusCertChainChanged:            {"AZIHSM_STATUS_CERT_CHAIN_CHANGED", core.KindInternal, false, "the device's certificate chain changed"},
	StatusInvalidTweak:                {"AZIHSM_STATUS_INVALID_TWEAK", core.KindInvalidInput, false, ""},
	StatusNotFound:                    {"AZIHSM_STATUS_NOT_FOUND", core.KindNotFound, false, ""},
	StatusIOAborted:                   {"AZIHSM_STATUS_IO_ABORTED", core.KindUnavailable, true, "the device aborted the request (the session must be opened again)"},
	StatusIOAbortInProgress:           {"AZIHSM_STATUS_IO_ABORT_IN_PROGRESS", core.KindUnavailable, true, "the device is aborting requests (the session must be opened again)"},
	StatusCredentialsNotEstablished:   {"AZIHSM_STATUS_CREDENTIALS_NOT_ESTABLISHED", core.KindUnauthenticated, false, "the partition's credentials are not established"},
	StatusNonceMismatch:               {"AZIHSM_STATUS_NONCE_MISMATCH", core.KindUnauthenticated, false, ""},
	StatusPartitionNotProvisioned:     {"AZIHSM_STATUS_PARTITION_NOT_PROVISIONED", core.KindInternal, false, "the partition is not provisioned (azihsm_part_init)"},
	StatusMaskedKeyDecodeFailed:       {"AZIHSM_STATUS_MASKED_KEY_DECODE_FAILED", core.KindInvalidInput, false, "the masked key does not decode (damaged, or masked by another partition)"},
	StatusECCVerifyFailed:             {"AZIHSM_STATUS_ECC_VERIFY_FAILED", core.KindInvalidInput, false, "the ECDSA signature does not verify"},
	StatusSessionNeedsRenegotiation:   {"AZIHSM_STATUS_SESSION_NEEDS_RENEGOTIATION", core.KindUnavailable, true, "the session must be opened again (renegotiation)"},
	StatusPendingKeyGeneration:        {"AZIHSM_STATUS_PENDING_KEY_GENERATION", core.KindUnavailable, false, "the device is still generating a key"},
	StatusKeyNotFound:                 {"AZIHSM_STATUS_KEY_NOT_FOUND", core.KindNotFound, false, "no such key"},
	StatusPartitionAlreadyProvisioned: {"AZIHSM_STATUS_PARTITION_ALREADY_PROVISIONED", core.KindAlreadyExists, false, ""},
	StatusVaultAppLimitReached:        {"AZIHSM_STATUS_VAULT_APP_LIMIT_REACHED", core.KindUnavailable, false, "the device has as many applications as it can hold"},
	StatusRetryExhausted:              {"AZIHSM_STATUS_RETRY_EXHAUSTED", core.KindUnavailable, false, "the library gave up after its retries"},
	StatusDeviceNotReady:              {"AZIHSM_STATUS_DEVICE_NOT_READY", core.KindUnavailable, true, "the device is not ready"},
	StatusCannotDeleteInternalKeys:    {"AZIHSM_STATUS_CANNOT_DELETE_INTERNAL_KEYS", core.KindOperationNotAllowed, false, "the device's own keys cannot be deleted"},
	StatusUnsupportedAPIRevision:      {"AZIHSM_STATUS_UNSUPPORTED_API_REVISION", core.KindUnsupported, false, "the device does not support this API revision"},
	StatusDeviceNotAccessible:         {"AZIHSM_STATUS_DEVICE_NOT_ACCESSIBLE", core.KindUnavailable, false, "the device cannot be reached (driver, permissions)"},
	StatusInvalidContextState:         {"AZIHSM_STATUS_INVALID_CONTEXT_STATE", core.KindInternal, false, "the streaming context is not in a state for this call"},
	StatusBK3AlreadyInitialized:       {"AZIHSM_STATUS_BK3_ALREADY_INITIALIZED", core.KindAlreadyExists, false, ""},
	StatusInvalidSession:              {"AZIHSM_STATUS_INVALID_SESSION", core.KindOperationNotAllowed, false, "the session does not allow this call"},
	StatusUnsupportedKeyOperation:     {"AZIHSM_STATUS_UNSUPPORTED_KEY_OPERATION", core.KindOperationNotAllowed, false, "the key does not allow this operation"},
	StatusPanic:                       {"AZIHSM_STATUS_PANIC", core.KindInternal, false, "the device library panicked"},
}

// String is the status's AZIHSM_STATUS_ name, or AZIHSM_STATUS_<n> for a
// value the header does not name.
func (s Status) String() string {
	if i, ok := statuses[s]; ok {
		return i.name
	}
	return fmt.Sprintf("AZIHSM_STATUS_%d", int32(s))
}

// Kind is the hsmbridge error kind the status maps onto (internal for a
// value the header does not name).
func (s Status) Kind() core.ErrorKind {
	if i, ok := statuses[s]; ok {
		return i.kind
	}
	return core.KindInternal
}

// Transient reports whether reopening the session and reloading the keys
// may cure the fault: true exactly for IO_ABORTED, IO_ABORT_IN_PROGRESS,
// SESSION_NEEDS_RENEGOTIATION and DEVICE_NOT_READY.
func (s Status) Transient() bool { return statuses[s].transient }

// Meaning is a short plain-English explanation, or "" where there is none.
func (s Status) Meaning() string { return statuses[s].meaning }

// StatusError is a failed API call: the function's name and its status.
type StatusError struct {
	Func   string
	Status Status
}

// Error reads like "azihsm_crypt_sign: AZIHSM_STATUS_INVALID_KEY (-12): the
// key is not valid for this call".
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %s (%d)", e.Func, e.Status, int32(e.Status))
	if m := e.Status.Meaning(); m != "" {
		msg += ": " + m
	}
	return msg
}

// Is makes errors.Is(err, core.ErrNotFound) and the other kind sentinels
// hold for the status's kind, and errors.Is(err, &StatusError{Status: s})
// match any function's error with status s.
func (e *StatusError) Is(target error) bool {
	switch t := target.(type) {
	case *core.Error:
		return t.Message == "" && t.Err == nil && t.Kind == e.Status.Kind()
	case *StatusError:
		return t.Status == e.Status && (t.Func == "" || t.Func == e.Func)
	}
	return false
}

// StatusOf returns the status of the first *StatusError in err's chain.
func StatusOf(err error) (Status, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status, true
	}
	return 0, false
}
