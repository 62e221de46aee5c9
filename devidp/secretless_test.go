package devidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestActorToken(t *testing.T) {
	p := startIdP(t)
	alice, err := p.UserToken("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	workload, err := p.UserToken("spiffe://example.org/tokenauthz", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := p.UserToken("spiffe://example.org/tokenauthz", -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, actor, actorType string
		wantStatus             int
		wantAct                string
	}{
		{"jwt-actor", workload, "urn:ietf:params:oauth:token-type:jwt", 200, "spiffe://example.org/tokenauthz"},
		{"access-token-actor", workload, userToken, 200, "spiffe://example.org/tokenauthz"},
		{"no-actor-no-act-claim", "", "", 200, ""},
		{"expired-actor", expired, "urn:ietf:params:oauth:token-type:jwt", 400, ""},
		{"garbage-actor", "not-a-token", "urn:ietf:params:oauth:token-type:jwt", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {alice}, "subject_token_type": {userToken}}
			if tt.actor != "" {
				form.Set("actor_token", tt.actor)
				form.Set("actor_token_type", tt.actorType)
			}
			status, resp := postToken(t, p, auth{id: "broker", secret: "s3cret"}, form)
			if status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", status, resp.Error, tt.wantStatus)
			}
			if status != http.StatusOK {
				return
			}
			claims := verify(t, p, resp.AccessToken)
			act, _ := claims.Claims["act"].(map[string]any)
			if got, _ := act["sub"].(string); got != tt.wantAct || claims.Subject != "alice" {
				t.Errorf("sub %q act %v, want alice acted for by %q", claims.Subject, claims.Claims["act"], tt.wantAct)
			}
			if rec := p.Issued()[len(p.Issued())-1]; rec.Actor != tt.wantAct {
				t.Errorf("recorded actor %q", rec.Actor)
			}
		})
	}
}

func TestClientCertificateHeader(t *testing.T) {
	p, err := Start(t.Context(), Options{ClientCertHeader: "X-Client-Subject",
		Clients: []Client{{ID: "mtls", TLSSubject: "CN=tokenauthz"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tests := []struct {
		name, subject, secret string
		want                  int
	}{
		{"verified-subject", "CN=tokenauthz", "", 200},
		{"other-subject", "CN=mallory", "", 401},
		{"no-certificate", "", "", 401},
		{"empty-secret-is-no-certificate", "", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"mtls"}}
			if tt.name == "empty-secret-is-no-certificate" {
				form.Set("client_secret", "")
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.TokenEndpoint(), strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.subject != "" {
				req.Header.Set("X-Client-Subject", tt.subject)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
