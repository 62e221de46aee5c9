package app

import (
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// TestTokenEndpointTLS puts a TLS front (a reverse proxy with a test
// certificate) before the real IdP: without ca_file the certificate is not
// trusted and checks get 503; with it, tokens flow.
func TestTokenEndpointTLS(t *testing.T) {
	idp := startIdP(t)
	target, _ := url.Parse(idp.Issuer())
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(front.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		caFile     string
		wantReason string
	}{
		{"untrusted-certificate-is-503", "", "token_endpoint_unavailable"},
		{"ca-file-trusts-it", "token_request: {ca_file: ca.pem}\n", "token_injected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fixture{idp: idp, path: filepath.Join(dir, tt.name+".yaml")}
			cfg := tt.caFile + fmt.Sprintf(appConfig, idp.Issuer(), "orders.read")
			// token_url on the TLS front: the token request itself crosses TLS.
			cfg += "    token_url: " + front.URL + tokenPath(t, idp.TokenEndpoint()) + "\n"
			if err := os.WriteFile(f.path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			f.serve(t, 0)
			d := f.decide(t, "orders.internal", "")
			if string(d.Reason) != tt.wantReason {
				t.Fatalf("reason %s (%s), want %s", d.Reason, d.Message, tt.wantReason)
			}
		})
	}
}

func tokenPath(t *testing.T, endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}
