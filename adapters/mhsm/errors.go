package mhsm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/hsmbridge/hsmbridge/core"
)

// Roles named in permission errors. Per Managed HSM's local RBAC, Crypto
// User may create, import, read, delete and use keys; purging and
// recovering deleted keys needs Crypto Officer.
const (
	roleCryptoUser    = "Managed HSM Crypto User"
	roleCryptoOfficer = "Managed HSM Crypto Officer"
)

// serviceError is the body of a Key Vault error response.
type serviceError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

func parseServiceError(re *azcore.ResponseError) (code, msg, inner string) {
	code = re.ErrorCode
	if re.RawResponse == nil {
		return code, "", ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return code, "", ""
	}
	var se serviceError
	if json.Unmarshal(body, &se) != nil {
		return code, "", ""
	}
	if se.Error.Code != "" {
		code = se.Error.Code
	}
	if se.Error.InnerError != nil {
		inner = se.Error.InnerError.Code
	}
	// Messages may span lines (RBAC denials do); an error string is one line.
	return code, strings.Join(strings.Fields(se.Error.Message), " "), inner
}

// keyDesc names a key for messages.
func keyDesc(id core.KeyID) string {
	if id.Name == "" {
		return ""
	}
	s := fmt.Sprintf("key %q", id.Name)
	if id.Version != "" {
		s += " version " + id.Version
	}
	return s
}

// mapErr turns an azkeys error into a core.Error whose message says what
// failed, where, and what to do. op is what was attempted ("sign", "get",
// "create", ...); id may have an empty Name for HSM-wide calls.
func (b *Backend) mapErr(c *hsmClient, op string, id core.KeyID, err error) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	subject := keyDesc(id)
	where := fmt.Sprintf("Managed HSM %q (%s)", c.hsm, c.endpoint)
	doing := op
	if subject != "" {
		doing = op + " " + subject
	}
	b.mu.RLock()
	retries := int(b.cfg.retry.MaxRetries)
	tryTimeout := b.cfg.retry.TryTimeout
	maxDelay := b.cfg.retry.MaxRetryDelay
	b.mu.RUnlock()
	if retries < 0 {
		retries = 0
	}
	// What was tried: the tries counted (0 when the call never started),
	// and whether the change it asked for may have been made, so was not
	// retried.
	tries, callerGone := 0, false
	var call *callError
	if errors.As(err, &call) {
		tries, callerGone = call.tries, call.callerGone
		if tries > 0 {
			retries = tries - 1
		}
	}
	var nr *notRetried
	notRetriedNote := ""
	if errors.As(err, &nr) {
		notRetriedNote = fmt.Sprintf("; not retried, since the HSM may have carried it out: see whether it did (az keyvault key list-versions --hsm-name %s --name %s) before trying again",
			c.hsm, id.Name)
		if id.Name == "" {
			notRetriedNote = "; not retried, since the HSM may have carried it out"
		}
	}
	afterRetries := ""
	if retries > 0 {
		afterRetries = fmt.Sprintf(" after %d retries", retries)
	}

	var qb *queuedBehind
	if errors.As(err, &qb) {
		// Said of the call that went first, without its key.
		first := b.mapErr(c, "the call before it", core.KeyID{}, qb.err)
		return core.Errorf(core.KindOf(first), "mhsm: %s: not tried, as %s", doing, strings.TrimPrefix(first.Error(), "mhsm: "))
	}
	var te *tokenError
	if errors.As(err, &te) {
		// azidentity lists each credential's failure on its own line.
		why := strings.Join(strings.Fields(te.err.Error()), " ")
		return core.Errorf(core.KindUnauthenticated, "mhsm: %s: could not get a token for %s from %s: %s; %s",
			doing, where, te.cred.name, why, te.cred.fix)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code, msg, inner := parseServiceError(re)
		detail := fmt.Sprintf("%d %s", re.StatusCode, code)
		if msg != "" {
			detail += ": " + msg
		}
		switch status := re.StatusCode; {
		case status == http.StatusNotFound:
			if subject == "" || (code != "KeyNotFound" && code != "") {
				return core.Errorf(core.KindNotFound, "mhsm: %s: %s answered %s; check the endpoint setting and the HSM name", doing, where, detail)
			}
			return core.Errorf(core.KindNotFound, "mhsm: %s not found in %s; list the HSM's keys with az keyvault key list --hsm-name %s", subject, where, c.hsm)
		case status == http.StatusForbidden:
			if keyRefusal(code, msg, inner) {
				return core.Errorf(core.KindOperationNotAllowed, "mhsm: %s: %s refused: %s; check the key's allowed operations and attributes with az keyvault key show --hsm-name %s --name %s",
					doing, where, detail, c.hsm, id.Name)
			}
			role := roleCryptoUser
			if op == "purge" || op == "recover" {
				role = roleCryptoOfficer
			}
			who := c.cred.name
			if ident := c.cred.Identity(); ident != "" {
				who += ", " + ident
			}
			scope := "/keys"
			if id.Name != "" {
				scope = "/keys/" + id.Name
			}
			return core.Errorf(core.KindPermissionDenied,
				"mhsm: %s: %s denied access (%s); the identity (%s) needs the role %q on the HSM: az keyvault role assignment create --hsm-name %s --role %q --scope %s --assignee-object-id <object id>",
				doing, where, detail, who, role, c.hsm, role, scope)
		case status == http.StatusUnauthorized:
			who := c.cred.name
			if ident := c.cred.Identity(); ident != "" {
				who += " (" + ident + ")"
			}
			return core.Errorf(core.KindUnauthenticated, "mhsm: %s: %s refused the token from %s (%s): it is expired, revoked or for another tenant; %s",
				doing, where, who, detail, c.cred.fix)
		case status == http.StatusConflict:
			return core.Errorf(core.KindAlreadyExists, "mhsm: %s: %s answered %s; a deleted key keeps its name until purged: recover it (az keyvault key recover --hsm-name %s --name %s) or purge it (az keyvault key purge, role %q)",
				doing, where, detail, c.hsm, id.Name, roleCryptoOfficer)
		case status == http.StatusTooManyRequests:
			after := ""
			if ra := re.RawResponse.Header.Get("Retry-After"); ra != "" {
				if secs, err := strconv.Atoi(ra); err == nil && maxDelay > 0 && time.Duration(secs)*time.Second > maxDelay {
					return core.Errorf(core.KindUnavailable, "mhsm: %s: %s is throttling requests (%s) and asked to wait %s s, longer than max_retry_delay %s, so it was not retried; lower the request rate, or raise max_retry_delay",
						doing, where, detail, ra, maxDelay)
				}
				after = " (it last asked to wait " + ra + " s)"
			}
			return core.Errorf(core.KindUnavailable, "mhsm: %s: %s is throttling requests (%s) and still was after %d retries%s; lower the request rate, or raise max_retries/max_retry_delay",
				doing, where, detail, retries, after)
		case (status >= 500 || status == http.StatusRequestTimeout) && notRetriedNote != "":
			return core.Errorf(core.KindUnavailable, "mhsm: %s: %s answered %s%s", doing, where, detail, notRetriedNote)
		case status >= 500 || status == http.StatusRequestTimeout:
			return core.Errorf(core.KindUnavailable, "mhsm: %s: %s answered %s after %d retries; try again later", doing, where, detail, retries)
		case status == http.StatusBadRequest:
			return core.Errorf(core.KindInvalidInput, "mhsm: %s: %s refused the request (%s)", doing, where, detail)
		}
		return core.Errorf(core.KindInternal, "mhsm: %s: %s answered %s", doing, where, detail)
	}
	if strings.Contains(err.Error(), "challenge resource") {
		return core.Errorf(core.KindUnauthenticated, "mhsm: %s: %s: %v; use an https://<name>.managedhsm.azure.net endpoint (with connect_to for a stand-in) or set %s = true",
			doing, where, err, SettingDisableChallengeResourceVerification)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		limit := "the caller's deadline"
		switch {
		case call == nil && tryTimeout > 0:
			limit += fmt.Sprintf(" or try_timeout %s", tryTimeout)
		case !callerGone && tryTimeout > 0:
			limit = fmt.Sprintf("try_timeout %s", tryTimeout)
		}
		switch {
		case tries == 1:
			limit += " (1 try)"
		case tries > 1:
			limit += fmt.Sprintf(" (%d tries)", tries)
		}
		return core.Errorf(core.KindUnavailable, "mhsm: %s: no answer from %s within %s%s", doing, where, limit, notRetriedNote)
	}
	if errors.Is(err, context.Canceled) {
		return core.Errorf(core.KindUnavailable, "mhsm: %s: canceled before %s answered%s", doing, where, notRetriedNote)
	}
	var cut *cutOff
	if errors.As(err, &cut) {
		if notRetriedNote != "" {
			return core.Errorf(core.KindUnavailable, "mhsm: %s: the answer of %s was cut off (%v)%s", doing, where, cut.err, notRetriedNote)
		}
		return core.Errorf(core.KindUnavailable, "mhsm: %s: the answer of %s was cut off (%v)%s; try again later", doing, where, cut.err, afterRetries)
	}
	var ua x509.UnknownAuthorityError
	var hv x509.HostnameError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &hv) || errors.As(err, &cv) {
		return core.Errorf(core.KindUnavailable, "mhsm: %s: the TLS certificate of %s is not trusted (%v); if it is a private CA, name it with the %s setting",
			doing, where, err, SettingCAFile)
	}
	if !neverSent(err) {
		// Connected, then lost before the answer.
		if notRetriedNote != "" {
			return core.Errorf(core.KindUnavailable, "mhsm: %s: the connection to %s broke before it answered (%v)%s", doing, where, err, notRetriedNote)
		}
		return core.Errorf(core.KindUnavailable, "mhsm: %s: the connection to %s broke before it answered (%v)%s; try again later", doing, where, err, afterRetries)
	}
	return core.Errorf(core.KindUnavailable, "mhsm: %s: cannot reach %s: %v; check the HSM name, the %s setting, DNS, proxy and firewall",
		doing, where, err, SettingEndpoint)
}

// keyRefusal tells a 403 about the key itself (its key_ops, enabled, nbf,
// exp) from one about the caller's role.
func keyRefusal(code, msg, inner string) bool {
	if inner == "KeyOperationForbidden" || code == "KeyDisabled" || code == "KeyOperationForbidden" {
		return true
	}
	m := strings.ToLower(msg)
	for _, s := range []string{"not permitted on this key", "is not allowed on", "disabled", "expired", "not yet valid", "key_ops", "operation is not allowed"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
