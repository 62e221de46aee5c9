package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// idp serves metadata documents: paths maps a well-known path to a body
// (with {{url}} replaced by the server URL); others are 404. While down is
// set everything is 503.
type idp struct {
	srv   *httptest.Server
	paths map[string]string
	down  atomic.Bool
	hits  atomic.Int64
}

func newIDP(t *testing.T, paths map[string]string) *idp {
	t.Helper()
	p := &idp{paths: paths}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		body, ok := p.paths[r.URL.Path]
		switch {
		case p.down.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(w, r)
		default:
			fmt.Fprint(w, strings.ReplaceAll(body, "{{url}}", p.srv.URL))
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

const (
	oidcPath    = "/tenant/.well-known/openid-configuration"
	rfc8414Path = "/.well-known/oauth-authorization-server/tenant"
	oauthPath   = "/tenant/.well-known/oauth-authorization-server" // appended, as some servers have it
	tenantDoc   = `{"issuer":"{{url}}/tenant","token_endpoint":"{{url}}/t"}`
)

func TestDiscoveryEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		paths   map[string]string
		issuer  string // appended to the server URL
		want    string // appended to the server URL; "": want ErrUnavailable
		maxBody int64
	}{
		{"openid-configuration", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant","token_endpoint":"{{url}}/oidc-token"}`}, "/tenant", "/oidc-token", 0},
		{"trailing-slash", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant/","token_endpoint":"{{url}}/oidc-token"}`}, "/tenant/", "/oidc-token", 0},
		{"rfc8414", map[string]string{rfc8414Path: `{"issuer":"{{url}}/tenant","token_endpoint":"{{url}}/oauth-token"}`}, "/tenant", "/oauth-token", 0},
		{"rfc8414-appended", map[string]string{oauthPath: `{"issuer":"{{url}}/tenant","token_endpoint":"{{url}}/oauth-token"}`}, "/tenant", "/oauth-token", 0},
		{"fallback-on-bad-oidc-document", map[string]string{oidcPath: `<html>`, oauthPath: tenantDoc}, "/tenant", "/t", 0},
		{"no-document", map[string]string{}, "/tenant", "", 0},
		{"no-token-endpoint", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant"}`}, "/tenant", "", 0},
		{"relative-token-endpoint", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant","token_endpoint":"/token"}`}, "/tenant", "", 0},
		{"oversized-document", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant","token_endpoint":"{{url}}/t","pad":"` + strings.Repeat("x", 100) + `"}`}, "/tenant", "", 64},
		{"no-issuer", map[string]string{oidcPath: `{"token_endpoint":"{{url}}/t"}`}, "/tenant", "", 0},
		{"another-issuer", map[string]string{oidcPath: `{"issuer":"https://evil.example/tenant","token_endpoint":"{{url}}/t"}`}, "/tenant", "", 0},
		{"issuer-differs-by-trailing-slash", map[string]string{oidcPath: `{"issuer":"{{url}}/tenant/","token_endpoint":"{{url}}/t"}`}, "/tenant", "", 0},
		{"issuer-differs-in-case", map[string]string{oidcPath: `{"issuer":"{{url}}/Tenant","token_endpoint":"{{url}}/t"}`}, "/tenant", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, tt.paths)
			d := &Discovery{MaxBody: tt.maxBody}
			got, err := d.Endpoint(context.Background(), p.srv.URL+tt.issuer)
			if tt.want == "" {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Endpoint = %q, %v; want ErrUnavailable", got, err)
				}
				return
			}
			if err != nil || got != p.srv.URL+tt.want {
				t.Fatalf("Endpoint = %q, %v; want %q", got, err, p.srv.URL+tt.want)
			}
			hits := p.hits.Load()
			if again, _ := d.Endpoint(context.Background(), p.srv.URL+tt.issuer); again != got || p.hits.Load() != hits {
				t.Errorf("second lookup = %q with %d more requests, want cached", again, p.hits.Load()-hits)
			}
		})
	}
}

func TestDiscoveryConcurrentFirstLookups(t *testing.T) {
	p := newIDP(t, map[string]string{oidcPath: tenantDoc})
	d := &Discovery{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := d.Endpoint(context.Background(), p.srv.URL+"/tenant"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := p.hits.Load(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestDiscoveryTrackRetries(t *testing.T) {
	p := newIDP(t, map[string]string{oidcPath: tenantDoc})
	p.down.Store(true)
	d := &Discovery{}
	issuer := p.srv.URL + "/tenant"
	if _, err := d.Endpoint(context.Background(), issuer); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("while down: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d.Track(ctx, []string{issuer})
	if d.Ready([]string{issuer}) {
		t.Fatal("Ready while the issuer is down")
	}
	if pending := d.Pending([]string{issuer}); len(pending) != 1 || !strings.Contains(pending[0].LastError, "HTTP 503") {
		t.Fatalf("Pending = %+v, want the issuer with its HTTP 503", pending)
	}
	waitFor(t, func() bool { return p.hits.Load() >= 6 }) // initial attempt + a retry, three documents each
	p.down.Store(false)
	waitFor(t, func() bool { return d.Ready([]string{issuer}) })
	if got, err := d.Endpoint(context.Background(), issuer); err != nil || got != p.srv.URL+"/t" {
		t.Errorf("Endpoint = %q, %v", got, err)
	}
}

func TestSourceUsesDiscovery(t *testing.T) {
	p := newIDP(t, map[string]string{oidcPath: tenantDoc})
	f := &fetcher{clk: newClock(), ttl: 0}
	var gotURL atomic.Value
	s := NewSource(Options{Discovery: &Discovery{}, Now: f.clk.Now, Fetcher: fetcherFunc(func(ctx context.Context, u string, r Request) (Token, error) {
		gotURL.Store(u)
		return f.Fetch(ctx, u, r)
	})})
	r := ccRequest()
	r.TokenURL, r.Issuer = "", p.srv.URL+"/tenant"
	mustToken(t, s, r)
	if gotURL.Load() != p.srv.URL+"/t" {
		t.Errorf("fetched from %v", gotURL.Load())
	}
}

type fetcherFunc func(ctx context.Context, tokenURL string, r Request) (Token, error)

func (f fetcherFunc) Fetch(ctx context.Context, tokenURL string, r Request) (Token, error) {
	return f(ctx, tokenURL, r)
}
