package mhsmstandin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tokens with a lifetime, and where they come from. A real HSM accepts a
// token until the expiry written in it and refuses it with 401 from then on;
// the client's credential must notice (azcore asks for a new token at the
// expiry it was told, or at once after a 401) and fetch another. The
// identity endpoint below hands out such tokens the way App Service's
// managed identity endpoint does, so that the real azidentity credential,
// inside the real backend, is what fetches them.

// DefaultTokenLifetime is the lifetime of issued tokens when
// Options.TokenLifetime is 0 (Entra access tokens last 60 to 90 minutes).
const DefaultTokenLifetime = time.Hour

// IdentityAPIVersion is the App Service managed identity API version
// azidentity (MSAL's managedidentity package) sends.
const IdentityAPIVersion = "2019-08-01"

// IssueToken makes a new token for the stand-in's resource, accepted until
// it expires (lifetime from now, in whole seconds as a token's exp claim
// is). It is shaped like an Entra access token (a JWT with aud, exp, oid,
// appid and tid; its signature is random bytes: the stand-in checks tokens
// by value).
func (s *Server) IssueToken(lifetime time.Duration) (string, time.Time) {
	if lifetime <= 0 {
		lifetime = DefaultTokenLifetime
	}
	now := time.Now()
	exp := now.Add(lifetime).Truncate(time.Second)
	var id, sig [16]byte
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(sig[:])
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"aud":   s.resource,
		"iss":   "https://sts.windows.net/" + s.tenant + "/",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   exp.Unix(),
		"oid":   "11111111-1111-1111-1111-111111111111",
		"appid": "22222222-2222-2222-2222-222222222222",
		"tid":   s.tenant,
		"jti":   hex.EncodeToString(id[:]),
	})
	tok := header + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig[:])
	s.tokMu.Lock()
	for t, e := range s.tokens { // forget the expired ones: unknown is refused alike
		if !e.IsZero() && !now.Before(e) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = exp
	s.tokMu.Unlock()
	return tok, exp
}

// IdentityHandler serves a managed identity token endpoint as App Service
// offers one to its apps (IDENTITY_ENDPOINT with the secret IDENTITY_HEADER):
//
//	GET <endpoint>?api-version=2019-08-01&resource=https://managedhsm.azure.net
//	X-IDENTITY-HEADER: <secret>
//
// answered with {"access_token", "expires_on" (Unix seconds, a string),
// "resource", "token_type": "Bearer"}. Each answer is a new token from
// IssueToken(Options.TokenLifetime). A wrong secret is answered 401, a
// resource other than the stand-in's 400 (a token for another audience would
// be refused by the HSM anyway). Outages do not reach it: it is another
// service.
func (s *Server) IdentityHandler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(status int, code, desc string) {
			writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
		}
		q := r.URL.Query()
		switch {
		case r.Method != http.MethodGet:
			fail(http.StatusMethodNotAllowed, "invalid_request", "GET only")
		case subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(secret)) != 1:
			fail(http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER is missing or wrong")
		case q.Get("api-version") != IdentityAPIVersion:
			fail(http.StatusBadRequest, "invalid_request", "api-version must be "+IdentityAPIVersion)
		case strings.TrimSuffix(strings.TrimSuffix(q.Get("resource"), "/.default"), "/") != strings.TrimSuffix(s.resource, "/"):
			fail(http.StatusBadRequest, "invalid_resource", "this identity endpoint issues tokens for "+s.resource+" only")
		default:
			s.statMu.Lock()
			s.issued++
			s.statMu.Unlock()
			tok, exp := s.IssueToken(s.opts.TokenLifetime)
			writeJSON(w, http.StatusOK, map[string]string{
				"access_token": tok,
				"expires_on":   strconv.FormatInt(exp.Unix(), 10),
				"resource":     s.resource,
				"token_type":   "Bearer",
			})
		}
	})
}
