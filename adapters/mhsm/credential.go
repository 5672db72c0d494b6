package mhsm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/hsmbridge/hsmbridge/core"
)

const (
	staticName  = "the static bearer token in " + EnvStaticToken
	staticFix   = "put a fresh token in " + EnvStaticToken + " (az account get-access-token --resource https://managedhsm.azure.net --query accessToken -o tsv) and restart hsmhost, or unset it to use DefaultAzureCredential"
	defaultName = "DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell)"
	defaultFix  = "sign in with az login as the user hsmhost runs as, or set AZURE_TENANT_ID/AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE (and list them in the backend's pass_env)"
)

// namedCredential wraps the credential in use: it knows how to describe
// it in error messages, counts token requests and remembers whose token
// the last one was (from its claims, unverified: for messages only).
type namedCredential struct {
	cred     azcore.TokenCredential
	name     string
	fix      string
	requests atomic.Int64
	identity atomic.Value // string
}

// tokenError marks a failure to obtain a token, as opposed to a token the
// service refused.
type tokenError struct {
	cred *namedCredential
	err  error
}

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func (n *namedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n.requests.Add(1)
	tk, err := n.cred.GetToken(ctx, opts)
	if err != nil {
		return tk, &tokenError{cred: n, err: err}
	}
	if c, ok := jwtClaims(tk.Token); ok {
		n.identity.Store(c.identity())
	}
	return tk, nil
}

// Identity describes the principal of the last token, or "".
func (n *namedCredential) Identity() string {
	s, _ := n.identity.Load().(string)
	return s
}

// credentialLocked picks the credential on first need: a static token
// from the environment, else DefaultAzureCredential.
func (b *Backend) credentialLocked() (*namedCredential, error) {
	if b.cred != nil {
		return b.cred, nil
	}
	if b.credErr != nil {
		return nil, b.credErr
	}
	if tok := strings.TrimSpace(os.Getenv(EnvStaticToken)); tok != "" {
		b.cred = &namedCredential{cred: newStaticToken(tok), name: staticName, fix: staticFix}
		return b.cred, nil
	}
	dac, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		b.credErr = core.Errorf(core.KindUnauthenticated,
			"mhsm: no credential: %s is not set and DefaultAzureCredential cannot be made (%v); %s", EnvStaticToken, err, defaultFix)
		return nil, b.credErr
	}
	b.cred = &namedCredential{cred: dac, name: defaultName, fix: defaultFix}
	return b.cred, nil
}

// Stats implements ports.StatsReporter: retries, throttled answers and
// token requests since the backend started.
func (b *Backend) Stats() []core.Counter {
	return []core.Counter{
		{Name: "retries", Value: b.counts.retries.Load()},
		{Name: "throttled", Value: b.counts.throttled.Load()},
		{Name: "token_requests", Value: uint64(b.TokenRequests())},
	}
}

// TokenRequests is how many tokens the backend's credential has been asked
// for so far (for diagnostics and tests).
func (b *Backend) TokenRequests() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.cred == nil {
		return 0
	}
	return b.cred.requests.Load()
}

// staticToken returns one token given by the user. Its expiry is read from
// the token (a JWT's exp claim) when possible, so that an expired token is
// reported as such rather than as a refusal by the HSM.
type staticToken struct {
	token   string
	expires time.Time // zero when unknown

	mu sync.Mutex
}

func newStaticToken(tok string) *staticToken {
	s := &staticToken{token: tok}
	if c, ok := jwtClaims(tok); ok && c.Exp > 0 {
		s.expires = time.Unix(c.Exp, 0)
	}
	return s
}

func (s *staticToken) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.expires.IsZero() {
		if time.Now().After(s.expires) {
			return azcore.AccessToken{}, fmt.Errorf("the token in %s expired at %s", EnvStaticToken, s.expires.UTC().Format(time.RFC3339))
		}
		return azcore.AccessToken{Token: s.token, ExpiresOn: s.expires}, nil
	}
	// Unknown expiry: the policy asks again in an hour and gets the same
	// token; a refusal by the service expires it at once anyway.
	return azcore.AccessToken{Token: s.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type claims struct {
	Exp        int64  `json:"exp"`
	OID        string `json:"oid"`
	UPN        string `json:"upn"`
	UniqueName string `json:"unique_name"`
	AppID      string `json:"appid"`
	AZP        string `json:"azp"`
	TID        string `json:"tid"`
}

func (c claims) identity() string {
	var parts []string
	for _, p := range []struct{ k, v string }{
		{"upn", c.UPN}, {"name", c.UniqueName}, {"appid", c.AppID}, {"oid", c.OID}, {"tenant", c.TID},
	} {
		if p.v != "" && !(p.k == "name" && p.v == c.UPN) {
			parts = append(parts, p.k+"="+p.v)
		}
	}
	if c.AppID == "" && c.AZP != "" {
		parts = append(parts, "azp="+c.AZP)
	}
	return strings.Join(parts, " ")
}

// jwtClaims reads a JWT's payload without checking it: the HSM checks
// tokens, this only names them in messages.
func jwtClaims(tok string) (claims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, false
	}
	var c claims
	if json.Unmarshal(raw, &c) != nil {
		return claims{}, false
	}
	return c, true
}
