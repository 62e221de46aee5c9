package tokens

import (
	"encoding/base64"
	"net/url"
)

// basicAuth is client_secret_basic (RFC 6749 section 2.3.1): the client id
// and secret, each form-encoded, as HTTP Basic credentials.
type basicAuth struct {
	secret, from, id string
}

// Basic authenticates with secret in HTTP Basic; from names where the
// secret is configured, for explain (a key path, never the value).
func Basic(secret, from string) ClientAuth {
	return &basicAuth{secret: secret, from: from, id: identity("basic", digest([]byte(secret)))}
}

func (a *basicAuth) Apply(o *Outgoing) error {
	if o.ClientID == "" {
		return nil
	}
	id, secret := url.QueryEscape(o.ClientID), url.QueryEscape(a.secret)
	creds := id + ":" + secret
	o.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(creds)))
	o.redact(printable(a.secret), secret, base64.StdEncoding.EncodeToString([]byte(creds)),
		base64.StdEncoding.EncodeToString([]byte(a.secret)))
	return nil
}

// Identity holds a digest of the secret: a rotated secret starts afresh, no
// token or backed-off failure of the old one is served for the new.
func (a *basicAuth) Identity() string { return a.id }

func (a *basicAuth) String() string {
	return "basic (HTTP Basic), client secret from " + a.from + " (redacted)"
}
