package tokens

import (
	"strconv"
	"strings"
	"time"
)

// Error is a failed token or discovery request. It wraps exactly one of
// ErrSubjectRejected, ErrClientRejected or ErrUnavailable (its Class), so
// callers branch with errors.Is. Its text carries the HTTP status and the
// OAuth2 error code and description, never a token or a client secret.
type Error struct {
	Class       error  // ErrSubjectRejected, ErrClientRejected or ErrUnavailable
	Code        string // OAuth2 "error" (RFC 6749 section 5.2), if the endpoint sent one
	Description string // OAuth2 "error_description" or what went wrong locally
	Status      int    // HTTP status, 0 when no response was received
	// RetryAfter is how long the endpoint asked us to wait (its
	// Retry-After header, on a 429 or 503 typically); 0 when it did not.
	// Source backs off at least this long, up to its backoff cap.
	RetryAfter time.Duration
	// Backoff is how long Source answers this failure from its cache
	// before asking again: the window that applies, which is what the text
	// states (RetryAfter may ask for longer than the cap allows). 0 until
	// Source records the failure.
	Backoff time.Duration
}

func (e *Error) Error() string {
	class := "token request failed"
	if e.Class != nil {
		class = e.Class.Error()
	}
	if d := e.detail(); d != "" {
		return "tokens: " + class + ": " + d
	}
	return "tokens: " + class
}

// detail is the text of e after its class: status, code, description and
// the backoff in effect.
func (e *Error) detail() string {
	var parts []string
	if e.Status != 0 {
		parts = append(parts, "HTTP "+strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		parts = append(parts, e.Code)
	}
	if e.Description != "" {
		parts = append(parts, e.Description)
	}
	if e.Backoff > 0 {
		parts = append(parts, "not asked again for "+e.Backoff.String())
	}
	return strings.Join(parts, ": ")
}

// Unwrap returns the failure class.
func (e *Error) Unwrap() error { return e.Class }

// maxTextLen bounds text taken from a response into an Error.
const maxTextLen = 200

// sanitize makes text sent by an endpoint safe to put in an Error: printable,
// bounded, and with the request's own credentials (creds: each as sent, raw,
// form-encoded or as the Basic credentials, see Outgoing.redact) redacted in
// case the endpoint echoes them. Control characters become spaces first, so
// an echo with a tab for a space is still found. Redaction repeats, so
// removing one credential cannot assemble another; text still holding one
// after a few rounds (a credential so short it is everywhere) is withheld
// whole.
func sanitize(s string, creds []string) string {
	s = printable(s)
	for range 3 {
		for _, c := range creds {
			s = strings.ReplaceAll(s, c, "[redacted]")
		}
	}
	for _, c := range creds {
		if strings.Contains(s, c) {
			return "[withheld: it echoes a credential]"
		}
	}
	return clipText(s)
}

// clipText bounds text an endpoint sent to maxTextLen bytes.
func clipText(s string) string {
	if len(s) > maxTextLen {
		s = strings.ToValidUTF8(s[:maxTextLen], "") + "..."
	}
	return s
}

func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, s)
}

// notOAuth describes a 4xx answer that holds no OAuth2 error, typically
// from a proxy before the token endpoint: its HTML title or first line,
// sanitized. nginx refusing a client certificate answers such a 400 ("400
// No required SSL certificate was sent", "400 The SSL certificate error"),
// which the description then names as the cause.
func notOAuth(body []byte, creds []string) string {
	text := string(body)
	lower := strings.ToLower(text)
	if i := strings.Index(lower, "<title>"); i >= 0 {
		text, lower = text[i+len("<title>"):], lower[i+len("<title>"):]
		if j := strings.Index(lower, "</title>"); j >= 0 {
			text = text[:j]
		}
	} else if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	text = strings.TrimSpace(sanitize(text, creds))
	switch {
	case text == "":
		return "no OAuth2 error in the answer"
	case strings.Contains(strings.ToLower(text), "certificate"):
		return "the client certificate was refused or not sent (by the token endpoint or a TLS proxy before it): " + strconv.Quote(text)
	}
	return "no OAuth2 error in the answer: " + strconv.Quote(text)
}
