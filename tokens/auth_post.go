package tokens

import (
	"encoding/base64"
	"net/url"
)

// postAuth is client_secret_post (RFC 6749 section 2.3.1): client_id and
// client_secret in the form.
type postAuth struct {
	secret, from, id string
}

// Post authenticates with secret in the form; from names where the secret
// is configured, for explain.
func Post(secret, from string) ClientAuth {
	return &postAuth{secret: secret, from: from, id: identity("post", digest([]byte(secret)))}
}

func (a *postAuth) Apply(o *Outgoing) error {
	o.setClientID()
	if a.secret != "" {
		o.Form.Set("client_secret", a.secret)
		o.redact(printable(a.secret), url.QueryEscape(a.secret), base64.StdEncoding.EncodeToString([]byte(a.secret)))
	}
	return nil
}

func (a *postAuth) Identity() string { return a.id }

func (a *postAuth) String() string {
	return "post (in the form), client secret from " + a.from + " (redacted)"
}
