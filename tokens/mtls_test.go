package tokens

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// mtlsEndpoint is a token endpoint that requires a client certificate from
// its CA and records the serial of the one presented.
type mtlsEndpoint struct {
	srv     *httptest.Server
	conns   atomic.Int64
	mu      sync.Mutex
	serials []string
	forms   []string
}

func newMTLSEndpoint(t *testing.T, ca *x509.Certificate) *mtlsEndpoint {
	t.Helper()
	ep := &mtlsEndpoint{}
	ep.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		ep.mu.Lock()
		ep.serials = append(ep.serials, r.TLS.PeerCertificates[0].SerialNumber.String())
		ep.forms = append(ep.forms, r.PostForm.Encode()+" auth="+r.Header.Get("Authorization"))
		ep.mu.Unlock()
		fmt.Fprint(w, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ep.srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ep.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ep.conns.Add(1)
		}
	}
	ep.srv.StartTLS()
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *mtlsEndpoint) last() (serial, form string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if len(ep.serials) == 0 {
		return "", ""
	}
	return ep.serials[len(ep.serials)-1], ep.forms[len(ep.forms)-1]
}

// trusting is a Client whose mTLS transports trust srv's certificate.
func trusting(srv *httptest.Server) *Client {
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return &Client{TLSTransport: func(get ClientCertificate) http.RoundTripper {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, GetClientCertificate: get}}
	}}
}

func TestTLSClientAuth(t *testing.T) {
	dir := t.TempDir()
	ca, other := testkeys.NewCA(t, "test CA"), testkeys.NewCA(t, "other CA")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	issue := func(serial int64, by *testkeys.CA) {
		testkeys.Write(t, dir, "tls.key", sec1(t, p256Key))
		testkeys.Write(t, dir, "tls.crt", by.Issue(t, p256Key, "tokenauthz", serial))
	}
	issue(11, ca)
	auth, err := TLSClientAuth(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ep := newMTLSEndpoint(t, ca.Cert)
	c := trusting(ep.srv)
	r := ccRequest()
	r.Auth = auth
	fetch := func() error { _, err := c.Fetch(context.Background(), ep.srv.URL, r); return err }

	t.Run("certificate-presented-connection-reused", func(t *testing.T) {
		for range 2 {
			if err := fetch(); err != nil {
				t.Fatal(err)
			}
		}
		serial, form := ep.last()
		if serial != "11" || ep.conns.Load() != 1 {
			t.Fatalf("serial %s over %d connections, want 11 over 1", serial, ep.conns.Load())
		}
		if !strings.Contains(form, "client_id=orders") || !strings.HasSuffix(form, "auth=") {
			t.Errorf("form %s: want client_id and no Authorization", form)
		}
	})
	id := auth.Identity()
	t.Run("rotated-files-are-presented-on-the-next-request", func(t *testing.T) {
		issue(12, ca)
		if err := fetch(); err != nil {
			t.Fatal(err)
		}
		if serial, _ := ep.last(); serial != "12" {
			t.Fatalf("serial %s after rotation, want 12", serial)
		}
		if auth.Identity() != id {
			t.Error("a renewed certificate of the same subject changed the identity")
		}
	})
	t.Run("certificate-of-another-ca-is-client-rejected", func(t *testing.T) {
		issue(13, other)
		err := fetch()
		if !errors.Is(err, ErrClientRejected) || !strings.Contains(err.Error(), "refused the client certificate") {
			t.Fatalf("err = %v, want ErrClientRejected saying the certificate was refused", err)
		}
	})
	t.Run("no-certificate-is-client-rejected", func(t *testing.T) {
		plain := ccRequest()
		plain.Auth = NoClientAuth()
		c := trusting(ep.srv)
		c.HTTP = &http.Client{Transport: c.TLSTransport(func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil })}
		_, err := c.Fetch(context.Background(), ep.srv.URL, plain)
		if !errors.Is(err, ErrClientRejected) || !strings.Contains(err.Error(), "refused the client certificate") {
			t.Fatalf("err = %v, want ErrClientRejected saying the certificate was refused", err)
		}
	})
}

func TestMTLSEndpointAlias(t *testing.T) {
	dir := t.TempDir()
	ca := testkeys.NewCA(t, "test CA")
	auth, err := TLSClientAuth(testkeys.Write(t, dir, "c.crt", ca.Issue(t, p256Key, "tokenauthz", 5)), testkeys.Write(t, dir, "c.key", sec1(t, p256Key)))
	if err != nil {
		t.Fatal(err)
	}
	mtls := newMTLSEndpoint(t, ca.Cert)
	plain, plainSrv := newEndpoint(t, 200, `{"access_token":"plain","token_type":"Bearer"}`)
	var issuer string // the server's own URL: a document is believed only for its issuer
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "token_endpoint": plainSrv.URL + "/token",
			"mtls_endpoint_aliases": map[string]string{"token_endpoint": mtls.srv.URL + "/mtls/token"},
		})
	}))
	t.Cleanup(meta.Close)
	issuer = meta.URL
	s := NewSource(Options{Fetcher: trusting(mtls.srv), Discovery: &Discovery{}})
	r := ccRequest()
	r.TokenURL, r.Issuer, r.Auth = "", meta.URL, auth
	if _, err := s.Token(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if serial, _ := mtls.last(); serial != "5" {
		t.Fatal("tls_client_auth did not use mtls_endpoint_aliases.token_endpoint")
	}
	r.Auth = Basic("s3cret", "test")
	if _, err := s.Token(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if form, _ := plain.last(); form.Get("grant_type") == "" {
		t.Fatal("basic did not use token_endpoint")
	}
}
