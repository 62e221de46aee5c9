package tokens

// Regression tests for the hardening review (issue 7): what a hostile or
// misconfigured token endpoint or metadata document can no longer do.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sink is where a hostile endpoint redirects to: it counts what reaches it
// and would hand out a token of its own.
func sink(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"attacker-token","token_type":"Bearer","expires_in":3600,"issuer":"x","token_endpoint":"http://x/t"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func redirector(t *testing.T, status int, location string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchNeverFollowsRedirects(t *testing.T) {
	post := func() Request { r := ccRequest(); r.Auth = Post("s3cret", "test"); return r }
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, tt := range []struct {
			name string
			req  func() Request
		}{
			{"post-secret", post},
			{"basic-secret", ccRequest},
			{"exchange-subject", exchangeRequest},
		} {
			t.Run(fmt.Sprintf("%d-%s", status, tt.name), func(t *testing.T) {
				target, hits := sink(t)
				hostile := redirector(t, status, target.URL+"/steal?secret=s3cret#frag")
				_, err := (&Client{}).Fetch(context.Background(), hostile.URL+"/token", tt.req())
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				if n := hits.Load(); n != 0 {
					t.Fatalf("the redirect target got %d requests, want none", n)
				}
				text := err.Error()
				if want := fmt.Sprintf("HTTP %d: redirect to %s refused", status, target.URL); !strings.Contains(text, want) {
					t.Errorf("error %q, want it to say %q", text, want)
				}
				for _, leak := range []string{"/steal", "secret=", "s3cret", "frag"} {
					if strings.Contains(text, leak) {
						t.Errorf("error %q names the target's path or query (%q)", text, leak)
					}
				}
			})
		}
	}
}

// TestFetchHTTPSRedirectToHTTPSendsNoCredentials: Go re-sends Basic
// credentials on a redirect to the same host on another port or scheme, so
// an https endpoint redirecting to http would send them in clear.
func TestFetchHTTPSRedirectToHTTPSendsNoCredentials(t *testing.T) {
	var sawAuth atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.ContentLength > 0 {
			sawAuth.Add(1)
		}
		fmt.Fprint(w, `{"access_token":"attacker-token","token_type":"Bearer"}`)
	}))
	t.Cleanup(plain.Close)
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/token", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(tls.Close)
	_, err := (&Client{HTTP: tls.Client()}).Fetch(context.Background(), tls.URL+"/token", ccRequest())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "redirect to http://127.0.0.1:") {
		t.Fatalf("err = %v, want a refused redirect to http", err)
	}
	if sawAuth.Load() != 0 {
		t.Fatal("credentials reached the plain-http target")
	}
}

func TestDiscoveryNeverFollowsRedirects(t *testing.T) {
	target, hits := sink(t)
	hostile := redirector(t, http.StatusFound, target.URL+"/.well-known/openid-configuration")
	d := &Discovery{}
	_, err := d.Endpoint(context.Background(), hostile.URL)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 302: redirect to "+target.URL+" refused") {
		t.Fatalf("err = %v, want the refused redirect named", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the redirect target got %d requests, want none", hits.Load())
	}
}

func TestFetchRefusesMalformedAccessToken(t *testing.T) {
	for _, tt := range []struct{ name, token string }{
		{"crlf-header-injection", "abc\r\nx-injected: yes"},
		{"lf", "abc\ndef"},
		{"nul", "abc\x00def"},
		{"tab", "abc\tdef"},
		{"del", "abc\x7f"},
		{"non-ascii", "abc\u00e9"},
		{"only-invalid", "\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, _ := json.Marshal(tt.token)
			body := fmt.Sprintf(`{"access_token":%s,"token_type":"Bearer","expires_in":3600}`, tok)
			_, srv := newEndpoint(t, 200, body)
			s := NewSource(Options{Fetcher: &Client{}})
			r := ccRequest()
			r.TokenURL = srv.URL
			for i := range 2 { // the fetch, then the cached failure: no token either time
				tok, err := s.Token(context.Background(), r)
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "malformed access_token") {
					t.Fatalf("answer %d: token %q, err %v; want ErrUnavailable (malformed access_token)", i, tok.AccessToken, err)
				}
			}
			if st := s.Stats(); st.Fetches != 1 || st.Hits != 0 {
				t.Errorf("stats %+v, want one fetch and no hit", st)
			}
		})
	}
}

func TestDiscoveryRefusesHTTPTokenEndpointOfHTTPSIssuer(t *testing.T) {
	var issuer string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.TrimPrefix(issuer, "https://")
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":"http://%s/token"}`, issuer, host)
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	d := &Discovery{HTTP: srv.Client()}
	_, err := d.Endpoint(context.Background(), issuer)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "is not https, while the issuer is") {
		t.Fatalf("err = %v, want the downgrade refused", err)
	}
	if p := d.Pending([]string{issuer}); len(p) != 1 || !strings.Contains(p[0].LastError, "not https") {
		t.Errorf("Pending = %+v, want the issuer and why", p)
	}
}

func TestDiscoveryStopsIssuersNoLongerTracked(t *testing.T) {
	var removedHits, keptHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "removed") {
			removedHits.Add(1)
		} else {
			keptHits.Add(1)
		}
		w.WriteHeader(http.StatusServiceUnavailable) // never discovered
	}))
	t.Cleanup(srv.Close)
	d := &Discovery{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	removed, kept := srv.URL+"/removed", srv.URL+"/kept"
	d.Track(ctx, []string{removed, kept})
	waitFor(t, func() bool { return removedHits.Load() >= 3 && keptHits.Load() >= 3 }) // both tried
	d.Track(ctx, []string{kept})                                                       // a reload removed the service using it
	time.Sleep(100 * time.Millisecond)                                                 // an attempt under way finishes
	before, keptBefore := removedHits.Load(), keptHits.Load()
	time.Sleep(1500 * time.Millisecond) // several retry periods
	if n := removedHits.Load() - before; n != 0 {
		t.Errorf("the removed issuer was asked %d more times", n)
	}
	if keptHits.Load() == keptBefore {
		t.Error("the issuer still configured was not retried")
	}
	if p := d.Pending([]string{kept}); len(p) != 1 {
		t.Errorf("Pending(kept) = %+v", p)
	}
}
