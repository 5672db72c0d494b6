package mhsmstandin

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v compactly, with the Content-Length the service sends.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"InternalServerError","message":"encoding failed"}}`)
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type wireError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror,omitempty"`
	} `json:"error"`
}

// writeError writes the service's error body. inner, when set, is the
// "innererror" code Key Vault adds to some 403s (KeyDisabled, ...).
func writeError(w http.ResponseWriter, status int, code, msg, inner string) {
	var e wireError
	e.Error.Code, e.Error.Message = code, msg
	if inner != "" {
		e.Error.InnerError = &struct {
			Code string `json:"code"`
		}{inner}
	}
	writeJSON(w, status, e)
}

// b64 encodes bytes as the service does: base64url without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// unb64 decodes base64url, tolerating padding and the standard alphabet
// (other clients than azkeys send both).
func unb64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	return base64.RawURLEncoding.DecodeString(s)
}

// bytesField is a JSON string holding base64url bytes.
type bytesField []byte

func (b *bytesField) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := unb64(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b bytesField) MarshalJSON() ([]byte, error) { return json.Marshal(b64(b)) }

// wireAttributes are a key's attributes as the service returns them; the
// field order follows the recordings.
type wireAttributes struct {
	Created         int64  `json:"created"`
	Enabled         bool   `json:"enabled"`
	Exp             *int64 `json:"exp,omitempty"`
	Exportable      bool   `json:"exportable"`
	Nbf             *int64 `json:"nbf,omitempty"`
	RecoverableDays int    `json:"recoverableDays"`
	RecoveryLevel   string `json:"recoveryLevel"`
	Updated         int64  `json:"updated"`
}

// wireJWK is the public JSON Web Key the service returns (never private
// parts, and nothing at all of an oct key's material).
type wireJWK struct {
	Crv    string   `json:"crv,omitempty"`
	E      string   `json:"e,omitempty"`
	KeyOps []string `json:"key_ops"`
	Kid    string   `json:"kid"`
	Kty    string   `json:"kty"`
	N      string   `json:"n,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

type wireBundle struct {
	Attributes         wireAttributes    `json:"attributes"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	Key                wireJWK           `json:"key"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// wireItem is one entry of a key or version listing.
type wireItem struct {
	Attributes         wireAttributes    `json:"attributes"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	Kid                string            `json:"kid"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

type wirePage struct {
	NextLink *string    `json:"nextLink,omitempty"`
	Value    []wireItem `json:"value"`
}

// reqAttributes are the settable attributes in create/import/update bodies.
type reqAttributes struct {
	Enabled    *bool  `json:"enabled"`
	Nbf        *int64 `json:"nbf"`
	Exp        *int64 `json:"exp"`
	Exportable *bool  `json:"exportable"`
}

type createRequest struct {
	Kty            string            `json:"kty"`
	KeySize        *int              `json:"key_size"`
	PublicExponent *int              `json:"public_exponent"`
	Crv            string            `json:"crv"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *reqAttributes    `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	ReleasePolicy  json.RawMessage   `json:"release_policy"`
}

// reqJWK is a JSON Web Key as import sends it (with private parts).
type reqJWK struct {
	Kty    string     `json:"kty"`
	KeyOps []string   `json:"key_ops"`
	Crv    string     `json:"crv"`
	N      bytesField `json:"n"`
	E      bytesField `json:"e"`
	D      bytesField `json:"d"`
	P      bytesField `json:"p"`
	Q      bytesField `json:"q"`
	DP     bytesField `json:"dp"`
	DQ     bytesField `json:"dq"`
	QI     bytesField `json:"qi"`
	X      bytesField `json:"x"`
	Y      bytesField `json:"y"`
	K      bytesField `json:"k"`
	KeyHSM bytesField `json:"key_hsm"`
}

type importRequest struct {
	Key           *reqJWK           `json:"key"`
	HSM           *bool             `json:"hsm"`
	Attributes    *reqAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

type updateRequest struct {
	KeyOps        []string          `json:"key_ops"`
	Attributes    *reqAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

// opRequest covers sign, verify, encrypt, decrypt, wrapkey and unwrapkey.
type opRequest struct {
	Alg    string     `json:"alg"`
	Value  bytesField `json:"value"`
	Digest bytesField `json:"digest"`
	IV     bytesField `json:"iv"`
	AAD    bytesField `json:"aad"`
	Tag    bytesField `json:"tag"`
}

type opResult struct {
	Alg   string     `json:"alg,omitempty"`
	Kid   string     `json:"kid"`
	Value bytesField `json:"value"`
}

type verifyResult struct {
	Alg   string `json:"alg,omitempty"`
	Kid   string `json:"kid"`
	Value bool   `json:"value"`
}
