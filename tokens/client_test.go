package tokens

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// endpoint is a token endpoint answering status and body, recording the last request.
type endpoint struct {
	status int
	body   string

	mu     sync.Mutex
	form   url.Values
	header http.Header
}

func (ep *endpoint) last() (url.Values, http.Header) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.form, ep.header
}

func newEndpoint(t testing.TB, status int, body string) (*endpoint, *httptest.Server) {
	t.Helper()
	ep := &endpoint{status: status, body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		ep.mu.Lock()
		ep.form, ep.header = r.PostForm, r.Header.Clone()
		ep.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ep.status)
		io.WriteString(w, ep.body)
	}))
	t.Cleanup(srv.Close)
	return ep, srv
}

func ccRequest() Request {
	return Request{TokenURL: "set-by-test", ClientID: "orders", Auth: Basic("s3cret", "test"),
		GrantType: GrantClientCredentials, Scope: []string{"read", "write"}, Audience: "api://orders"}
}

func exchangeRequest() Request {
	r := ccRequest()
	r.GrantType = GrantTokenExchange
	r.SubjectToken = "subject-token-value"
	r.SubjectTokenType = "urn:ietf:params:oauth:token-type:access_token"
	return r
}

func TestFetchForm(t *testing.T) {
	tests := []struct {
		name      string
		req       func() Request
		wantForm  url.Values
		wantBasic [2]string // id, secret; empty: no Authorization header
	}{
		{"client-credentials-basic", ccRequest,
			url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read write"}, "audience": {"api://orders"}},
			[2]string{"orders", "s3cret"}},
		{"client-credentials-post", func() Request { r := ccRequest(); r.Auth = Post("s3cret", "test"); return r },
			url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read write"}, "audience": {"api://orders"},
				"client_id": {"orders"}, "client_secret": {"s3cret"}},
			[2]string{}},
		{"no-client-auth-sends-client-id", func() Request { r := ccRequest(); r.Auth = nil; return r },
			url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read write"}, "audience": {"api://orders"},
				"client_id": {"orders"}},
			[2]string{}},
		{"basic-escapes-id-and-secret", func() Request { r := ccRequest(); r.ClientID, r.Auth = "a:b c", Basic("p@ss:w%rd", "test"); return r },
			url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read write"}, "audience": {"api://orders"}},
			[2]string{"a%3Ab+c", "p%40ss%3Aw%25rd"}},
		{"empty-scope-omitted-resource-sent", func() Request { r := ccRequest(); r.Scope, r.Audience, r.Resource = nil, "", "https://api/"; return r },
			url.Values{"grant_type": {GrantClientCredentials}, "resource": {"https://api/"}},
			[2]string{"orders", "s3cret"}},
		{"exchange-basic", exchangeRequest,
			url.Values{"grant_type": {GrantTokenExchange}, "scope": {"read write"}, "audience": {"api://orders"},
				"subject_token": {"subject-token-value"}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}},
			[2]string{"orders", "s3cret"}},
		{"exchange-post-requested-type", func() Request {
			r := exchangeRequest()
			r.Auth, r.RequestedTokenType = Post("s3cret", "test"), "urn:ietf:params:oauth:token-type:jwt"
			return r
		},
			url.Values{"grant_type": {GrantTokenExchange}, "scope": {"read write"}, "audience": {"api://orders"},
				"subject_token": {"subject-token-value"}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
				"requested_token_type": {"urn:ietf:params:oauth:token-type:jwt"}, "client_id": {"orders"}, "client_secret": {"s3cret"}},
			[2]string{}},
		{"jwt-bearer-sends-the-assertion", func() Request {
			r := exchangeRequest()
			r.GrantType, r.SubjectTokenType, r.RequestedTokenType = GrantJWTBearer, "ignored", "ignored"
			return r
		},
			url.Values{"grant_type": {GrantJWTBearer}, "scope": {"read write"}, "audience": {"api://orders"},
				"assertion": {"subject-token-value"}},
			[2]string{"orders", "s3cret"}},
		{"token-params-are-sent", func() Request {
			r := ccRequest()
			r.Params = []Param{{"requested_token_use", "on_behalf_of"}, {"tenant", "t1"}}
			return r
		},
			url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read write"}, "audience": {"api://orders"},
				"requested_token_use": {"on_behalf_of"}, "tenant": {"t1"}},
			[2]string{"orders", "s3cret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, srv := newEndpoint(t, 200, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
			if _, err := (&Client{}).Fetch(context.Background(), srv.URL, tt.req()); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			form, header := ep.last()
			if got, want := form.Encode(), tt.wantForm.Encode(); got != want {
				t.Errorf("form = %s, want %s", got, want)
			}
			if got := header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", got)
			}
			auth := header.Get("Authorization")
			if tt.wantBasic == [2]string{} {
				if auth != "" {
					t.Errorf("Authorization = %q, want none", auth)
				}
				return
			}
			req := &http.Request{Header: http.Header{"Authorization": {auth}}}
			id, secret, ok := req.BasicAuth()
			if !ok || id != tt.wantBasic[0] || secret != tt.wantBasic[1] {
				t.Errorf("basic auth = %q %q %v, want %q", id, secret, ok, tt.wantBasic)
			}
		})
	}
}

func TestFormHasNoSecret(t *testing.T) {
	r := exchangeRequest()
	r.Auth = Post("s3cret", "test")
	if f := r.Form(); f.Has("client_secret") || strings.Contains(f.Encode(), "s3cret") {
		t.Errorf("Form() = %s, contains the secret", f.Encode())
	}
}

func TestFetchResponse(t *testing.T) {
	tests := []struct {
		name       string
		grant      string
		body       string
		wantClass  error
		wantExpiry time.Duration // from testNow; -1: zero Expiry
	}{
		{"expires-in-number", GrantClientCredentials, `{"access_token":"at","token_type":"Bearer","expires_in":3600}`, nil, time.Hour},
		{"expires-in-string", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":"300"}`, nil, 5 * time.Minute},
		{"expires-in-fraction", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":59.9}`, nil, 59 * time.Second},
		{"expires-in-negative", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":-5}`, nil, 0},
		{"expires-in-zero", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":0}`, nil, 0},
		{"expires-in-huge", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":1e400}`, nil, maxExpiresIn * time.Second},
		{"expires-in-missing", GrantClientCredentials, `{"access_token":"at","token_type":"bearer"}`, nil, -1},
		{"expires-in-null", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":null}`, nil, -1},
		{"expires-in-not-numeric", GrantClientCredentials, `{"access_token":"at","token_type":"bearer","expires_in":"soon"}`, ErrUnavailable, 0},
		{"token-type-mac", GrantClientCredentials, `{"access_token":"at","token_type":"mac"}`, ErrUnavailable, 0},
		{"token-type-missing", GrantClientCredentials, `{"access_token":"at"}`, ErrUnavailable, 0},
		{"token-type-n-a-on-client-credentials", GrantClientCredentials, `{"access_token":"at","token_type":"N_A"}`, ErrUnavailable, 0},
		{"token-type-n-a-on-exchange", GrantTokenExchange, `{"access_token":"at","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:jwt"}`, nil, -1},
		{"scope-as-array", GrantClientCredentials, `{"access_token":"at","token_type":"Bearer","scope":["a","b"]}`, nil, -1},
		{"missing-access-token", GrantClientCredentials, `{"token_type":"bearer","expires_in":60}`, ErrUnavailable, 0},
		{"error-with-status-200", GrantClientCredentials, `{"error":"invalid_client"}`, ErrClientRejected, 0},
		{"garbage", GrantClientCredentials, `not json at all`, ErrUnavailable, 0},
		{"html", GrantClientCredentials, `<html><body>Login</body></html>`, ErrUnavailable, 0},
		{"json-array", GrantClientCredentials, `[1,2]`, ErrUnavailable, 0},
		{"empty-body", GrantClientCredentials, ``, ErrUnavailable, 0},
		{"oversized-body", GrantClientCredentials, `{"access_token":"` + strings.Repeat("x", 2048) + `","token_type":"bearer"}`, ErrUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newEndpoint(t, 200, tt.body)
			r := ccRequest()
			r.GrantType = tt.grant
			c := &Client{MaxBody: 1024, Now: func() time.Time { return testNow }}
			tok, err := c.Fetch(context.Background(), srv.URL, r)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("err = %v, want %v", err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if tok.AccessToken != "at" {
				t.Errorf("AccessToken = %q", tok.AccessToken)
			}
			want := time.Time{}
			if tt.wantExpiry >= 0 {
				want = testNow.Add(tt.wantExpiry)
			}
			if !tok.Expiry.Equal(want) {
				t.Errorf("Expiry = %v, want %v", tok.Expiry, want)
			}
		})
	}
}

func TestFetchErrorClass(t *testing.T) {
	tests := []struct {
		name      string
		grant     string
		status    int
		body      string
		wantClass error
		wantCode  string
	}{
		{"invalid-grant-on-exchange", GrantTokenExchange, 400, `{"error":"invalid_grant"}`, ErrSubjectRejected, "invalid_grant"},
		{"invalid-grant-on-jwt-bearer", GrantJWTBearer, 400, `{"error":"invalid_grant"}`, ErrSubjectRejected, "invalid_grant"},
		{"invalid-client-on-jwt-bearer", GrantJWTBearer, 401, `{"error":"invalid_client"}`, ErrClientRejected, "invalid_client"},
		{"invalid-grant-on-client-credentials", GrantClientCredentials, 400, `{"error":"invalid_grant"}`, ErrClientRejected, "invalid_grant"},
		{"invalid-client-401", GrantClientCredentials, 401, `{"error":"invalid_client"}`, ErrClientRejected, "invalid_client"},
		{"invalid-client-on-exchange", GrantTokenExchange, 401, `{"error":"invalid_client"}`, ErrClientRejected, "invalid_client"},
		{"invalid-scope", GrantClientCredentials, 400, `{"error":"invalid_scope"}`, ErrClientRejected, "invalid_scope"},
		{"unauthorized-client-403", GrantTokenExchange, 403, `{"error":"unauthorized_client"}`, ErrClientRejected, "unauthorized_client"},
		{"unsupported-grant-type", GrantTokenExchange, 400, `{"error":"unsupported_grant_type"}`, ErrClientRejected, "unsupported_grant_type"},
		{"invalid-request", GrantTokenExchange, 400, `{"error":"invalid_request"}`, ErrClientRejected, "invalid_request"},
		{"invalid-target", GrantTokenExchange, 400, `{"error":"invalid_target"}`, ErrClientRejected, "invalid_target"},
		{"unknown-code", GrantClientCredentials, 400, `{"error":"something_new"}`, ErrClientRejected, "something_new"},
		{"400-without-json", GrantTokenExchange, 400, `Bad Request`, ErrClientRejected, ""},
		{"404-html", GrantClientCredentials, 404, `<html>not found</html>`, ErrClientRejected, ""},
		{"408", GrantClientCredentials, 408, ``, ErrUnavailable, ""},
		{"429", GrantClientCredentials, 429, `{"error":"slow_down"}`, ErrUnavailable, "slow_down"},
		{"500", GrantClientCredentials, 500, `oops`, ErrUnavailable, ""},
		{"503-json", GrantTokenExchange, 503, `{"error":"temporarily_unavailable"}`, ErrUnavailable, "temporarily_unavailable"},
		{"304", GrantClientCredentials, 304, ``, ErrUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newEndpoint(t, tt.status, tt.body)
			r := exchangeRequest()
			r.GrantType = tt.grant
			_, err := (&Client{}).Fetch(context.Background(), srv.URL, r)
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("err = %v, want class %v", err, tt.wantClass)
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.status || e.Code != tt.wantCode {
				t.Errorf("err = %#v, want status %d code %q", err, tt.status, tt.wantCode)
			}
		})
	}
}

func TestFetchErrorHidesCredentials(t *testing.T) {
	_, srv := newEndpoint(t, 400, `{"error":"invalid_grant","error_description":"bad token subject-token-value for s3cret"}`)
	_, err := (&Client{}).Fetch(context.Background(), srv.URL, exchangeRequest())
	if err == nil || strings.Contains(err.Error(), "subject-token-value") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want credentials redacted", err)
	}
}

func TestFetchTransport(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel2)

	tests := []struct {
		name string
		ctx  context.Context
		url  string
		want error
	}{
		{"connection-refused", context.Background(), closed.URL, ErrUnavailable},
		{"deadline", expired, slow.URL, ErrUnavailable},
		{"canceled", canceled, slow.URL, context.Canceled},
		{"bad-url", context.Background(), "::not a url", ErrClientRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Client{}).Fetch(tt.ctx, tt.url, ccRequest())
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFetchRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{"429-seconds", 429, "2", 2 * time.Second},
		{"503-seconds", 503, "120", 2 * time.Minute},
		{"503-http-date", 503, testNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date-in-the-past", 429, testNow.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"absent", 429, "", 0},
		{"zero", 429, "0", 0},
		{"negative", 429, "-5", 0},
		{"fraction", 429, "1.5", 0},
		{"garbage", 503, "soon", 0},
		{"huge-is-bounded", 429, "99999999999999999999999", maxRetryAfter},
		{"on-client-error", 400, "7", 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(srv.Close)
			c := &Client{Now: func() time.Time { return testNow }}
			_, err := c.Fetch(context.Background(), srv.URL, ccRequest())
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if e.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.want)
			}
			// The text states no wait: the Source states the backoff
			// window it applies (TestSourceBackoffStatesTheWindowApplied).
			if strings.Contains(err.Error(), "retry") || strings.Contains(err.Error(), "again") {
				t.Errorf("error text %q states a wait the client does not apply", err)
			}
		})
	}
}

// TestFetchHugeBodyIsNotRead sends a 50 MB answer, with and without a
// Content-Length: the client reads at most MaxBody of it and hangs up.
func TestFetchHugeBodyIsNotRead(t *testing.T) {
	const size = 50 << 20
	tests := []struct {
		name          string
		declareLength bool
	}{
		{"content-length", true},
		{"chunked", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			written := make(chan int64, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.declareLength {
					w.Header().Set("Content-Length", fmt.Sprint(size))
				}
				w.WriteHeader(http.StatusOK)
				chunk := bytes.Repeat([]byte("x"), 32<<10)
				var n int64
				for n < size {
					m, err := w.Write(chunk)
					n += int64(m)
					if err != nil {
						break
					}
				}
				written <- n
			}))
			t.Cleanup(srv.Close)
			_, err := (&Client{}).Fetch(context.Background(), srv.URL, ccRequest())
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "larger than") {
				t.Fatalf("err = %v, want ErrUnavailable for the size", err)
			}
			if n := <-written; n >= size {
				t.Errorf("server wrote all %d bytes: the client read the whole body", n)
			}
		})
	}
}

func TestFetchErrorHidesCredentialVariants(t *testing.T) {
	const secret = "correct horse+battery/staple="
	basic := base64.StdEncoding.EncodeToString([]byte("orders:" + url.QueryEscape(secret)))
	tests := []struct {
		name, subject, body, leak string
	}{
		{"secret-echoed-with-control-chars", "", `{"error":"invalid_client","error_description":"secret correct\thorse+battery/staple= rejected"}`, ""},
		{"secret-echoed-form-encoded", "", `{"error":"invalid_request","error_description":"body client_secret=` + url.QueryEscape(secret) + `"}`, url.QueryEscape(secret)},
		{"secret-echoed-in-basic-header", "", `{"error":"invalid_client","error_description":"Authorization: Basic ` + basic + `"}`, basic},
		{"redaction-rebuilds-secret", "[redacted]", `{"error":"invalid_grant","error_description":"correctehorse+battery/staple="}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newEndpoint(t, 400, tt.body)
			r := ccRequest()
			r.Auth = Basic(secret, "test")
			used := secret
			if tt.subject != "" {
				r = exchangeRequest()
				used = "[redacted]ehorse+battery/staple="
				r.Auth, r.SubjectToken = Basic(used, "test"), "correct"
			}
			_, err := (&Client{}).Fetch(context.Background(), srv.URL, r)
			for _, s := range []string{used, tt.leak} {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("err = %v, reveals %q", err, s)
				}
			}
		})
	}
}
