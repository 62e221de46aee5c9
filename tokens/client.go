package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBody bounds a response body when Client.MaxBody or
// Discovery.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// maxExpiresIn caps expires_in so that expiry arithmetic cannot overflow.
const maxExpiresIn = math.MaxInt32 // seconds, about 68 years

// Client sends token requests to a token endpoint (RFC 6749 section 4.4,
// RFC 8693). It does not cache; see Source. The zero value is ready to use.
type Client struct {
	// HTTP sends the requests; nil means http.DefaultClient, whose shared
	// transport reuses connections. Bound each call with its context.
	HTTP *http.Client
	// MaxBody bounds how much of a response is read; 0 means DefaultMaxBody.
	// A larger response is an ErrUnavailable failure.
	MaxBody int64
	// Now is the clock Token.Expiry and assertions are computed with; nil
	// means time.Now.
	Now func() time.Time
	// TLSTransport makes the transport of requests that present a TLS
	// client certificate (tls_client_auth): one per certificate, kept for
	// connection reuse. It must use clientCert as its
	// tls.Config.GetClientCertificate and should otherwise be built like
	// HTTP's transport (trusted roots, timeouts, tracing). Nil means a clone
	// of http.DefaultTransport.
	TLSTransport func(clientCert ClientCertificate) http.RoundTripper

	mtls sync.Map // certificate files -> *http.Client, see mtlsClient
}

var _ Fetcher = (*Client)(nil)

// Form returns the body parameters of the token request r describes,
// without client credentials (ClientAuth adds them) or the actor token (read
// from its file at each fetch): grant_type, scope (space-separated),
// audience, resource, the token exchange parameters or the jwt-bearer
// assertion, and Params. It includes the caller's token: redact it before
// printing.
func (r Request) Form() url.Values {
	v := url.Values{"grant_type": {r.GrantType}}
	for _, p := range r.Params {
		v.Set(p.Name, p.Value)
	}
	if len(r.Scope) > 0 {
		v.Set("scope", strings.Join(r.Scope, " "))
	}
	if r.Audience != "" {
		v.Set("audience", r.Audience)
	}
	if r.Resource != "" {
		v.Set("resource", r.Resource)
	}
	switch r.GrantType {
	case GrantTokenExchange:
		v.Set("subject_token", r.SubjectToken)
		v.Set("subject_token_type", r.SubjectTokenType)
		if r.RequestedTokenType != "" {
			v.Set("requested_token_type", r.RequestedTokenType)
		}
	case GrantJWTBearer:
		v.Set("assertion", r.SubjectToken)
	}
	return v
}

// Fetch requests one token from tokenURL. A failure is an *Error of one of
// the three classes, except that a canceled ctx gives an error wrapping
// context.Canceled.
func (c *Client) Fetch(ctx context.Context, tokenURL string, r Request) (Token, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	o, err := outgoing(tokenURL, r, now())
	if err != nil {
		return Token{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(o.Form.Encode()))
	if err != nil {
		return Token{}, &Error{Class: ErrClientRejected, Description: "invalid token URL"}
	}
	for k, v := range o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if o.Certificate != nil {
		hc = c.mtlsClient(o.Certificate)
	}
	ans, err := do(ctx, hc, req, c.MaxBody)
	if err != nil {
		return Token{}, err
	}
	if ans.status != http.StatusOK {
		e := statusError(ans.status, ans.body, r.GrantType, o.secrets)
		e.RetryAfter = retryAfter(ans.header.Get("Retry-After"), now())
		return Token{}, e
	}
	return parseToken(ans.body, r.GrantType, o.secrets, now())
}

// answer is a response as do read it.
type answer struct {
	status int
	header http.Header
	body   []byte // at most the maxBody given to do
}

// do sends req and reads at most maxBody bytes of the answer: a body
// declared or found longer is not read further (closing it drops the
// connection). A redirect is never followed: following one would re-send
// the form (client secret, subject token) or the Basic credentials to
// wherever Location names, and inject whatever token it answers. Errors are
// classified: transport failures, redirects and over-size bodies are
// ErrUnavailable, a canceled ctx wraps context.Canceled.
func do(ctx context.Context, hc *http.Client, req *http.Request, maxBody int64) (answer, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	resp, err := withoutRedirects(hc).Do(req)
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return answer{}, redirectError(req.URL, resp)
	}
	tooLarge := &Error{Class: ErrUnavailable, Status: resp.StatusCode,
		Description: fmt.Sprintf("response larger than %d bytes", maxBody)}
	if resp.ContentLength > maxBody {
		return answer{}, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	if int64(len(body)) > maxBody {
		return answer{}, tooLarge
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// withoutRedirects is hc, or http.DefaultClient, made to return a 3xx
// answer as it is instead of following it.
func withoutRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// redirectError names a refused redirect by its status and the target's
// scheme and host; its path and query (which may carry anything) are left out.
func redirectError(from *url.URL, resp *http.Response) *Error {
	target := "no Location"
	if loc, err := from.Parse(resp.Header.Get("Location")); err == nil && resp.Header.Get("Location") != "" {
		target = loc.Scheme + "://" + clipText(printable(loc.Host))
	}
	return &Error{Class: ErrUnavailable, Status: resp.StatusCode,
		Description: "redirect to " + target + " refused: token endpoints and discovery are never redirected"}
}

func transportError(ctx context.Context, err error) error {
	if e, ok := certificateError(err); ok { // our client certificate, unusable or refused
		return e
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("tokens: request canceled: %w", context.Canceled)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Class: ErrUnavailable, Description: "timeout"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return &Error{Class: ErrUnavailable, Description: "timeout"}
		}
		err = ue.Err // the URL is the caller's; keep the message short
	}
	return &Error{Class: ErrUnavailable, Description: err.Error()}
}

// maxRetryAfter bounds a Retry-After value so that time arithmetic cannot
// overflow; Source waits at most its backoff cap anyway.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header (RFC 9110 section 10.2.3): a number
// of seconds or an HTTP date, taken relative to now. It is 0 when the header
// is absent, unparsable or not in the future.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if errors.Is(err, strconv.ErrRange) {
		d = maxRetryAfter
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// oauthError is the error body of RFC 6749 section 5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// statusError classifies a non-200 answer; creds are redacted from its text.
func statusError(status int, body []byte, grant string, creds []string) *Error {
	e := &Error{Status: status}
	var oe oauthError
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		e.Code = sanitize(oe.Error, creds)
		e.Description = sanitize(oe.Description, creds)
	}
	switch {
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		e.Class = ErrUnavailable
	case status >= 400:
		e.Class = codeClass(oe.Error, grant)
		if oe.Error == "" {
			e.Description = notOAuth(body, creds)
		}
	default:
		e.Class = ErrUnavailable
		e.Description = "unexpected status"
	}
	return e
}

// codeClass maps an OAuth2 error code of a 4xx answer to a failure class:
// only invalid_grant on a grant that sends the caller's token (token
// exchange, jwt-bearer) blames that token, everything else blames our
// client configuration.
func codeClass(code, grant string) error {
	if code == "invalid_grant" && (grant == GrantTokenExchange || grant == GrantJWTBearer) {
		return ErrSubjectRejected
	}
	return ErrClientRejected
}

// tokenJSON is a successful answer (RFC 6749 section 5.1, RFC 8693 section 2.2.1).
type tokenJSON struct {
	AccessToken     string          `json:"access_token"`
	TokenType       string          `json:"token_type"`
	ExpiresIn       expiresIn       `json:"expires_in"`
	Scope           json.RawMessage `json:"scope"`
	IssuedTokenType string          `json:"issued_token_type"`
	Error           string          `json:"error"`
	Description     string          `json:"error_description"`
}

func parseToken(body []byte, grant string, creds []string, now time.Time) (Token, error) {
	var tj tokenJSON
	if err := json.Unmarshal(body, &tj); err != nil {
		desc := "response is not a JSON object"
		if _, ok := errors.AsType[*expiresInError](err); ok {
			desc = "invalid expires_in"
		}
		return Token{}, &Error{Class: ErrUnavailable, Status: http.StatusOK, Description: desc}
	}
	if tj.AccessToken == "" {
		if tj.Error != "" { // some endpoints answer errors with 200
			return Token{}, &Error{Class: codeClass(tj.Error, grant), Status: http.StatusOK,
				Code: sanitize(tj.Error, creds), Description: sanitize(tj.Description, creds)}
		}
		return Token{}, &Error{Class: ErrUnavailable, Status: http.StatusOK, Description: "response has no access_token"}
	}
	if !isVSChars(tj.AccessToken) {
		// It becomes a header value: CR, LF or any other control byte
		// would let the endpoint add headers or split the request.
		return Token{}, &Error{Class: ErrUnavailable, Status: http.StatusOK, Description: "malformed access_token (not RFC 6749 A.12 VSCHARs)"}
	}
	if !strings.EqualFold(tj.TokenType, "bearer") &&
		(grant != GrantTokenExchange || !strings.EqualFold(tj.TokenType, "N_A")) {
		return Token{}, &Error{Class: ErrUnavailable, Status: http.StatusOK,
			Description: fmt.Sprintf("unsupported token_type %q", sanitize(tj.TokenType, creds))}
	}
	// One string serves both: AccessToken is a slice of the Bearer value.
	bearer := "Bearer " + tj.AccessToken
	t := Token{AccessToken: bearer[len("Bearer "):], TokenType: tj.TokenType, Scope: scopeString(tj.Scope), bearer: bearer}
	if tj.ExpiresIn.set {
		t.Expiry = now.Add(time.Duration(tj.ExpiresIn.secs) * time.Second)
	}
	return t, nil
}

// scopeString accepts scope as a string or, as some endpoints send it, an
// array of strings; anything else is ignored.
func scopeString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		return strings.Join(ss, " ")
	}
	return ""
}

// expiresIn is a lifetime in seconds sent as a JSON number or a numeric
// string. Zero or negative values are kept as 0 (already expired).
type expiresIn struct {
	set  bool
	secs int64
}

type expiresInError struct{}

func (*expiresInError) Error() string { return "invalid expires_in" }

func (e *expiresIn) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return &expiresInError{}
	}
	e.set = true
	e.secs = int64(max(0, min(f, maxExpiresIn)))
	return nil
}

// isVSChars reports whether s is 1*VSCHAR (%x20-7E), the syntax of an
// access token (RFC 6749 appendix A.12).
func isVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}
