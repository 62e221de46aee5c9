package tokens

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// tlsClientAuth is tls_client_auth (RFC 8705 section 2): the client
// presents its certificate in the TLS handshake with the token endpoint
// (its mtls_endpoint_aliases.token_endpoint when discovery names one) and
// sends client_id in the form.
type tlsClientAuth struct {
	certs *CertFiles
	id    string
	desc  string
}

// TLSClientAuth reads the certificate (chain) and key files and returns the
// method. Errors wrap ErrCertFile, ErrKeyFile or ErrCertKeyPair.
func TLSClientAuth(certFile, keyFile string) (ClientAuth, error) {
	cf, err := LoadCertFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	leaf := cf.Leaf()
	return &tlsClientAuth{
		certs: cf,
		id:    identity("tls_client_auth", leaf.Subject.String(), leaf.Issuer.String(), strings.Join(names(leaf), " ")),
		desc: fmt.Sprintf("tls_client_auth, certificate %s (subject %s, issuer %s, serial %s, until %s), key %s",
			certFile, leaf.Subject, leaf.Issuer, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339), keyFile),
	}, nil
}

// names are the certificate's subject alternative names, which RFC 8705
// section 2.1.2 registers clients by besides the subject DN.
func names(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

func (a *tlsClientAuth) Apply(o *Outgoing) error {
	o.setClientID()
	o.Certificate = a.certs
	return nil
}

// Identity is the certificate's subject, issuer and alternative names as
// loaded, not its fingerprint: a renewed certificate of the same identity
// keeps the cached tokens.
func (a *tlsClientAuth) Identity() string { return a.id }

func (a *tlsClientAuth) String() string { return a.desc }

// Usable reports why the certificate cannot be presented now.
func (a *tlsClientAuth) Usable(now time.Time) error { return a.certs.Usable(now) }

// CertFiles is a TLS client certificate (chain) and its key, read from
// files and read again when either changes (cert-manager renews them in
// place): the next TLS handshake presents the new certificate.
type CertFiles struct {
	CertFile, KeyFile string
	pair              *watched[*tls.Certificate]
}

// LoadCertFiles reads the pair once; errors wrap ErrCertFile, ErrKeyFile or
// ErrCertKeyPair.
func LoadCertFiles(certFile, keyFile string) (*CertFiles, error) {
	cf := &CertFiles{CertFile: certFile, KeyFile: keyFile}
	var err error
	cf.pair, err = newWatched(func() (*tls.Certificate, error) { return loadPair(certFile, keyFile) }, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return cf, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	chain, err := ReadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	data, err := readMaterial(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %T cannot sign", ErrKeyFile, keyFile, key)
	}
	if err := matchCertKey(chain[0], signer); err != nil {
		return nil, err
	}
	pair := &tls.Certificate{PrivateKey: signer, Leaf: chain[0]}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}

// Leaf is the certificate as last read.
func (cf *CertFiles) Leaf() *x509.Certificate {
	pair, _ := cf.pair.get()
	return pair.Leaf
}

// GetClientCertificate is the tls.Config callback: the pair now on disk,
// whatever the server asks for (a server that wants another CA refuses it,
// and the error says so).
func (cf *CertFiles) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	pair, err := cf.pair.get()
	if err != nil {
		return nil, &certFileError{err}
	}
	return pair, nil
}

// Usable reports why the pair cannot be presented now: unreadable files,
// or a certificate out of its validity (a renewal that did not happen).
func (cf *CertFiles) Usable(now time.Time) error {
	pair, err := cf.pair.get()
	if err != nil {
		return err
	}
	if why := certExpired(pair.Leaf, now); why != "" {
		return fmt.Errorf("%w: %s: %s", ErrCertFile, cf.CertFile, why)
	}
	return nil
}

// certFileError is a client certificate we could not present: it comes
// back from the handshake, through the transport, to Fetch.
type certFileError struct{ err error }

func (e *certFileError) Error() string { return "client certificate: " + e.err.Error() }
func (e *certFileError) Unwrap() error { return e.err }
