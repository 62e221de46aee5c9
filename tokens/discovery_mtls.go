package tokens

import (
	"context"
	"net/url"
)

// MTLSEndpoint is the token endpoint for requests that present a TLS client
// certificate: the metadata's mtls_endpoint_aliases.token_endpoint when it
// names one (RFC 8705 section 5), else the token_endpoint. It discovers as
// Endpoint does.
func (d *Discovery) MTLSEndpoint(ctx context.Context, issuer string) (string, error) {
	u, err := d.Endpoint(ctx, issuer)
	if err != nil {
		return "", err
	}
	if alias, ok := d.mtls.Load(issuer); ok {
		return alias.(string), nil
	}
	return u, nil
}

// usableEndpoint accepts an mTLS alias: an absolute https URL.
func usableEndpoint(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}
