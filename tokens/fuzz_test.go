package tokens

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// roundTrip answers every request with one canned response, so a fuzz
// iteration exercises Client.Fetch end to end without a socket.
type roundTrip struct {
	status int
	body   []byte
}

func (rt roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{
		StatusCode:    rt.status,
		Header:        http.Header{"Content-Type": {"application/json"}},
		ContentLength: -1,
		Body:          io.NopCloser(strings.NewReader(string(rt.body))),
		Request:       r,
	}, nil
}

// fuzzNow is the clock of every fuzzed fetch.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// credential reports whether s looks like a credential worth checking for in
// an error: printable ASCII of at least 8 bytes that no fixed error text of
// the package could hold by chance ("unavailable" is no secret to redact).
func credential(s string) bool {
	if len(s) < 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	fixed := strings.Join([]string{
		(&Error{Class: ErrSubjectRejected}).Error(), (&Error{Class: ErrClientRejected}).Error(),
		(&Error{Class: ErrUnavailable}).Error(), "[redacted]...",
		"response is not a JSON object", "invalid expires_in", "response has no access_token",
		"unsupported token_type", "unexpected status", "response larger than",
		"malformed access_token (not RFC 6749 A.12 VSCHARs)", "refused: token endpoints and discovery are never redirected",
	}, "\n")
	return !strings.Contains(fixed, s)
}

// FuzzParseToken feeds Client.Fetch arbitrary token endpoint answers (status
// and body) for a client credentials or token exchange request whose client
// secret and subject token are fuzzed too. A success must be a 200 with an
// access token of VSCHARs only (no CR, LF or other byte that could split a
// header), of a usable type and with a sane expiry; a failure must be an
// *Error of exactly one class, carrying the status, whose text is printable,
// bounded and never holds the secret or the subject token.
func FuzzParseToken(f *testing.F) {
	const secret, subject = "s3cret-Value+/=", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	for _, s := range []struct {
		status   int
		body     string
		exchange bool
	}{
		{200, `{"access_token":"at","token_type":"Bearer","expires_in":3600,"scope":"a b"}`, false},
		{200, `{"access_token":"at","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":"300"}`, true},
		{200, `{"access_token":"at","token_type":"bearer","expires_in":1e400,"scope":["a","b"]}`, false},
		{200, `{"access_token":"at","token_type":"mac","expires_in":-5}`, false},
		{200, `{"error":"invalid_grant","error_description":"subject ` + subject + ` expired"}`, true},
		{200, `{"access_token":"","token_type":"bearer"}`, false},
		{200, `<html>login</html>`, false},
		{400, `{"error":"invalid_grant","error_description":"bad token ` + subject + ` for ` + secret + `"}`, true},
		{401, `{"error":"invalid_client","error_description":"client secret ` + secret + ` is wrong\u0000\n"}`, false},
		{429, `{"error":"slow_down"}`, false},
		{503, `oops`, true},
		{302, ``, false},
		{200, `{"access_token":"abc\r\nx-injected: yes","token_type":"Bearer"}`, false},
		{200, `{"access_token":"a\u0000b","token_type":"Bearer"}`, true},
		{200, `{"access_token":"caf\u00e9","token_type":"Bearer"}`, false},
		{307, `{"access_token":"redirected","token_type":"Bearer"}`, false},
	} {
		f.Add(s.status, []byte(s.body), s.exchange, secret, subject)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, exchange bool, secret, subject string) {
		if status < 100 || status > 999 {
			return // not an HTTP status; net/http rejects it
		}
		r := Request{TokenURL: "http://idp.test/token", ClientID: "orders", Auth: Post(secret, "fuzz"),
			GrantType: GrantClientCredentials, Scope: []string{"read"}}
		if exchange {
			r.GrantType, r.SubjectToken, r.SubjectTokenType = GrantTokenExchange, subject, "urn:ietf:params:oauth:token-type:access_token"
		}
		c := &Client{HTTP: &http.Client{Transport: roundTrip{status, body}}, Now: func() time.Time { return fuzzNow }}
		tok, err := c.Fetch(context.Background(), r.TokenURL, r)
		if err == nil {
			if status != http.StatusOK || tok.AccessToken == "" {
				t.Fatalf("HTTP %d gave token %+v, want an error", status, tok)
			}
			// It becomes a header value: RFC 6749 A.12 VSCHARs only.
			for i := 0; i < len(tok.Bearer()); i++ {
				if c := tok.Bearer()[i]; c < 0x20 || c > 0x7e {
					t.Fatalf("header value %q holds byte %#x", tok.Bearer(), c)
				}
			}
			if !strings.EqualFold(tok.TokenType, "bearer") && !(exchange && strings.EqualFold(tok.TokenType, "N_A")) {
				t.Fatalf("token_type %q accepted (exchange %v)", tok.TokenType, exchange)
			}
			if !tok.Expiry.IsZero() && (tok.Expiry.Before(fuzzNow) || tok.Expiry.After(fuzzNow.Add(math.MaxInt32*time.Second))) {
				t.Fatalf("expiry %v out of [now, now+MaxInt32 s]", tok.Expiry)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not an *Error", err, err)
		}
		n := 0
		for _, class := range []error{ErrSubjectRejected, ErrClientRejected, ErrUnavailable} {
			if errors.Is(err, class) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v wraps %d classes, want exactly one", err, n)
		}
		if errors.Is(err, ErrSubjectRejected) && !exchange {
			t.Fatalf("error %v blames a subject token on a client credentials request", err)
		}
		if e.Status != status {
			t.Fatalf("error %v has status %d, want %d", err, e.Status, status)
		}
		text := err.Error()
		if strings.ContainsFunc(text, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			t.Fatalf("error text %q is not printable", text)
		}
		// Redacting a credential that is not UTF-8 may cut a rune of the
		// text (see docs/fuzzing.md); every sink re-encodes, so only UTF-8
		// credentials must leave the text valid.
		if utf8.ValidString(secret) && utf8.ValidString(r.SubjectToken) && !utf8.ValidString(text) {
			t.Fatalf("error text %q is not UTF-8", text)
		}
		// Code and Description hold at most maxTextLen bytes of the answer
		// plus "..."; a description may quote them (%q: 4 bytes a byte at most).
		if len(e.Code) > maxTextLen+3 || len(e.Description) > 64+4*(maxTextLen+3) {
			t.Fatalf("error text %q is not bounded", text)
		}
		for _, cred := range []string{secret, r.SubjectToken} {
			if credential(cred) && (strings.Contains(e.Code, cred) || strings.Contains(e.Description, cred)) {
				t.Fatalf("error %q reveals credential %q", text, cred)
			}
		}
	})
}
