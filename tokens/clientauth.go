package tokens

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ClientAuth authenticates tokenauthz to a token endpoint (RFC 6749 section
// 2.3). There is one implementation per method, each in its own file, and
// one value per configured level, built when the configuration is loaded:
// the per-check path never chooses a method.
type ClientAuth interface {
	// Apply adds the client's credentials to a token request about to be
	// sent. An error is our own material failing (a missing assertion file,
	// an unreadable key): an *Error of class ErrClientRejected.
	Apply(o *Outgoing) error
	// Identity names the credential in the cache key: the method and what
	// identifies the credential (a key's thumbprint, a certificate's
	// subject, an assertion file's path and subject), never a secret, key
	// or assertion in clear. Rotated material of the same identity keeps
	// it, so cached tokens survive the rotation. It is called on every
	// check: it returns a string built beforehand.
	Identity() string
	// String describes the method and where its material comes from, for
	// `explain`: file names, key id, certificate subject, never a secret.
	String() string
}

// Outgoing is a token request as a ClientAuth completes it.
type Outgoing struct {
	TokenURL string // where it goes: the default audience of assertions
	ClientID string
	Form     url.Values
	Header   http.Header
	Now      time.Time // for the iat and exp of assertions, and expiry checks
	// Certificate, when set, is presented in the TLS handshake
	// (tls_client_auth): the request goes through a transport of its own.
	Certificate *CertFiles

	secrets []string // credentials put in the request, redacted from error text
}

// outgoing builds the request's form and headers: the grant's parameters,
// the actor token of an exchange and the client's credentials.
func outgoing(tokenURL string, r Request, now time.Time) (*Outgoing, error) {
	o := &Outgoing{TokenURL: tokenURL, ClientID: r.ClientID, Form: r.Form(), Header: http.Header{}, Now: now}
	if r.sendsSubject() {
		o.redact(printable(r.SubjectToken), url.QueryEscape(r.SubjectToken))
	}
	if r.Actor != nil && r.GrantType == GrantTokenExchange {
		tok, err := r.Actor.Read(now)
		if err != nil {
			return nil, err
		}
		o.Form.Set("actor_token", tok)
		o.Form.Set("actor_token_type", r.ActorTokenType)
		o.redact(tok, url.QueryEscape(tok))
	}
	auth := r.Auth
	if auth == nil {
		auth = noAuth{}
	}
	if err := auth.Apply(o); err != nil {
		return nil, err
	}
	return o, nil
}

// redact marks credentials Apply put in the request, so that an endpoint
// echoing them in an error does not carry them into our errors.
func (o *Outgoing) redact(creds ...string) {
	for _, c := range creds {
		if c != "" {
			o.secrets = append(o.secrets, c)
		}
	}
}

// setClientID puts client_id in the form when it is set: every method but
// basic sends it there (RFC 6749 2.3.1, RFC 7523 3, RFC 8705 2).
func (o *Outgoing) setClientID() {
	if o.ClientID != "" {
		o.Form.Set("client_id", o.ClientID)
	}
}

// identity builds an Identity value: each part length-prefixed, so no two
// lists of parts share one.
func identity(parts ...string) string {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return string(b)
}

// digest is a short, printable SHA-256 of s, for identities built from a
// secret and for descriptions.
func digest(s []byte) string {
	sum := sha256.Sum256(s)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// materialError is our own credential failing at run time: the IdP never
// saw the request, so it is ErrClientRejected, like a rejection would be.
func materialError(format string, args ...any) *Error {
	return &Error{Class: ErrClientRejected, Description: fmt.Sprintf(format, args...)}
}
