package tokens

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
)

// ClientCertificate is the tls.Config.GetClientCertificate callback of a
// transport for tls_client_auth.
type ClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

// mtlsTransport is the client of one certificate's requests, and the
// version of the certificate its connections were made with.
type mtlsTransport struct {
	hc   *http.Client
	seen atomic.Uint64
}

// mtlsClient is the *http.Client for requests that present cf: TLS client
// certificates belong to a transport, so there is one per pair of files,
// made on first use by Client.TLSTransport and kept so that its
// connections are reused. It follows Client.HTTP in everything else. When
// the files changed since its last request, its idle connections are
// closed, so the next request handshakes with the new certificate.
func (c *Client) mtlsClient(cf *CertFiles) *http.Client {
	m := c.mtlsFor(cf)
	if _, v, err := cf.pair.getVersion(); err == nil && m.seen.Swap(v) != v {
		m.hc.CloseIdleConnections()
	}
	return m.hc
}

func (c *Client) mtlsFor(cf *CertFiles) *mtlsTransport {
	key := identity(cf.CertFile, cf.KeyFile)
	if m, ok := c.mtls.Load(key); ok {
		return m.(*mtlsTransport)
	}
	var rt http.RoundTripper
	if c.TLSTransport != nil {
		rt = c.TLSTransport(cf.GetClientCertificate)
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetClientCertificate: cf.GetClientCertificate}
		rt = t
	}
	m := &mtlsTransport{hc: &http.Client{Transport: rt}}
	if base := c.HTTP; base != nil {
		m.hc.CheckRedirect, m.hc.Jar, m.hc.Timeout = base.CheckRedirect, base.Jar, base.Timeout
	}
	actual, _ := c.mtls.LoadOrStore(key, m)
	return actual.(*mtlsTransport)
}

// certificateAlerts are the TLS alerts (RFC 8446 section 6.2) by which a
// server refuses the client's certificate, or the lack of one.
var certificateAlerts = map[tls.AlertError]bool{
	42: true, 43: true, 44: true, 45: true, 46: true, 48: true, 49: true, // bad, unsupported, revoked, expired, unknown, unknown CA, access denied
	116: true, // certificate_required
}

// certificateError classifies a transport error about client certificates:
// ours unreadable, or refused by the server in the handshake. Both are our
// configuration failing, not the endpoint being unavailable.
func certificateError(err error) (*Error, bool) {
	if fe, ok := errors.AsType[*certFileError](err); ok {
		return materialError("tls_client_auth: %v", fe.err), true
	}
	// A received alert is a *net.OpError "remote error" around crypto/tls's
	// unexported alert type, whose text is that of the AlertError of the
	// same number.
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" && oe.Err != nil {
		for a := range certificateAlerts {
			if oe.Err.Error() == a.Error() {
				return materialError("the token endpoint refused the client certificate in the TLS handshake: %v", a), true
			}
		}
	}
	return nil, false
}
