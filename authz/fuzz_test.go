package authz

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// fuzzTokenPrefix starts every token fuzzSource issues; the rest is the
// service name, so a check can tell which service's header must carry it.
const fuzzTokenPrefix = "fuzz-token."

// fuzzSource issues "fuzz-token.<service>", or fails by the subject token's
// first word so that every denial reason of the token layer is reachable.
func fuzzSource() TokenSource {
	return fakeSource(func(r tokens.Request) (tokens.Token, error) {
		switch {
		case strings.HasPrefix(r.SubjectToken, "reject"):
			return tokens.Token{}, &tokens.Error{Class: tokens.ErrSubjectRejected, Code: "invalid_grant"}
		case strings.HasPrefix(r.SubjectToken, "client"):
			return tokens.Token{}, &tokens.Error{Class: tokens.ErrClientRejected, Code: "invalid_client"}
		case strings.HasPrefix(r.SubjectToken, "down"):
			return tokens.Token{}, &tokens.Error{Class: tokens.ErrUnavailable}
		case strings.HasPrefix(r.SubjectToken, "boom"):
			return tokens.Token{}, errors.New("boom")
		}
		return tokens.Token{AccessToken: fuzzTokenPrefix + r.Service, TokenType: "Bearer"}, nil
	})
}

// fuzzServers are the servers every input is checked against: unmatched
// requests denied (the default) and allowed.
func fuzzServers(t testing.TB) []*Server {
	t.Helper()
	var out []*Server
	for _, yaml := range []string{testConfig, "unmatched: allow\n" + testConfig} {
		cfg, err := config.Parse("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, New(cfg, fuzzSource(), Options{}))
	}
	return out
}

// FuzzCheck feeds Server.Check arbitrary CheckRequests three ways: the wire
// bytes alone, a request built from the string arguments (headers in the
// `headers` map or raw in `header_map`, plus one raw header_map entry), and
// that request with the wire bytes merged into it. Every response must be a
// well-formed decision; see assertCheckResponse.
func FuzzCheck(f *testing.F) {
	for _, s := range []struct {
		method, host, path, authz, name, value, service, endpoint, rawKey, rawValue string
		raw                                                                         bool
	}{
		{"GET", "orders.internal", "/v1/orders/42", "", "x-request-id", "req-1", "", "", "", "", false},
		{"POST", "orders.internal:8443", "/v1/orders", "Bearer alice", "", "", "", "", ":authority", "profile.internal", true},
		{"GET", "", "/v1/orders/history?x=1", "Bearer reject-me", ":authority", "ORDERS.internal", "", "", "authorization", "Bearer down", false},
		{"GET", "elsewhere", "/", "bearer  bob ", "", "", "orders", "history", "", "", false},
		{"GET", "profile.internal", "/me", "Bearer Bearer x", "host", "orders.internal", "", "", "x-request-id", "\xff\xfe", true},
		{"DELETE", "open.internal", "/v1/orders/%2e%2e/admin", "Basic dTpw", "", "", "", "", ":path", "/v1/orders/history", false},
		{"GET", "nope.internal", "/v1/a%2Fb/../c", "", "", "", "nope", "", "", "", false},
	} {
		req := structuredCheck(s.method, s.host, s.path, s.authz, s.name, s.value, s.service, s.endpoint, s.rawKey, []byte(s.rawValue), s.raw)
		wire, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, s.method, s.host, s.path, s.authz, s.name, s.value, s.service, s.endpoint, s.rawKey, []byte(s.rawValue), s.raw)
	}
	servers := fuzzServers(f)
	f.Fuzz(func(t *testing.T, wire []byte, method, host, path, authz, name, value, service, endpoint, rawKey string, rawValue []byte, raw bool) {
		var reqs []*authv3.CheckRequest
		fromWire := &authv3.CheckRequest{}
		if proto.Unmarshal(wire, fromWire) == nil {
			reqs = append(reqs, fromWire)
		}
		built := structuredCheck(method, host, path, authz, name, value, service, endpoint, rawKey, rawValue, raw)
		reqs = append(reqs, built)
		merged := proto.Clone(built).(*authv3.CheckRequest)
		if (proto.UnmarshalOptions{Merge: true}).Unmarshal(wire, merged) == nil {
			reqs = append(reqs, merged)
		}
		for _, s := range servers {
			for _, req := range reqs {
				assertCheckResponse(t, s, req)
			}
		}
	})
}

// structuredCheck builds a CheckRequest from strings. With raw, the
// authorization and name: value headers travel in header_map as raw_value
// (Envoy's encode_raw_headers); rawKey: rawValue is always one more
// header_map entry, after them.
func structuredCheck(method, host, path, authz, name, value, service, endpoint, rawKey string, rawValue []byte, raw bool) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path}
	var hm []*corev3.HeaderValue
	add := func(k, v string) {
		if raw {
			hm = append(hm, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
			return
		}
		if h.Headers == nil {
			h.Headers = map[string]string{}
		}
		h.Headers[k] = v
	}
	if authz != "" {
		add("authorization", authz)
	}
	if name != "" {
		add(name, value)
	}
	if rawKey != "" {
		hm = append(hm, &corev3.HeaderValue{Key: rawKey, RawValue: rawValue})
	}
	if hm != nil {
		h.HeaderMap = &corev3.HeaderMap{Headers: hm}
	}
	var ext map[string]string
	if service != "" || endpoint != "" {
		ext = map[string]string{"service": service, "endpoint": endpoint}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: ext,
		Request:           &authv3.AttributeContext_Request{Http: h},
	}}
}

// assertCheckResponse runs one check and asserts what every response must be:
// no gRPC error, a status, serialisable as gRPC would send it, and either an
// allow with at most the configured header set to "Bearer <issued token>"
// (overwriting), or a denial whose HTTP status, gRPC code and JSON body agree
// with the reason table.
func assertCheckResponse(t *testing.T, s *Server, req *authv3.CheckRequest) {
	t.Helper()
	resp, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check returned a gRPC error: %v", err)
	}
	if resp.GetStatus() == nil {
		t.Fatalf("response without status: %v", resp)
	}
	if _, err := proto.Marshal(resp); err != nil {
		t.Fatalf("response cannot be sent: %v", err)
	}
	in, _ := inputFromCheck(req)
	code := codes.Code(resp.GetStatus().GetCode())
	if code == codes.OK {
		ok := resp.GetOkResponse()
		if ok == nil || resp.GetDeniedResponse() != nil {
			t.Fatalf("OK status without an OkHttpResponse: %v", resp)
		}
		hs := ok.GetHeaders()
		switch {
		case len(hs) > 1:
			t.Fatalf("allowed with %d headers, want at most 1: %v", len(hs), hs)
		case len(hs) == 1:
			h := hs[0]
			assertInjectedValue(t, s, h.GetHeader().GetKey(), h.GetHeader().GetValue())
			if h.GetAppend() == nil || h.GetAppend().GetValue() || h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Fatalf("injected header does not overwrite: %v", h)
			}
		}
		return
	}
	denied := resp.GetDeniedResponse()
	if denied == nil || resp.GetOkResponse() != nil {
		t.Fatalf("status %v without a DeniedHttpResponse: %v", code, resp)
	}
	reason := assertDenialBody(t, []byte(denied.GetBody()), in.RequestID)
	want := outcomes[reason]
	if want.code != code || int(denied.GetStatus().GetCode()) != want.status {
		t.Fatalf("reason %q rendered as gRPC %v / HTTP %d, table says %v / %d", reason, code, denied.GetStatus().GetCode(), want.code, want.status)
	}
	if resp.GetStatus().GetMessage() != string(reason) {
		t.Fatalf("status message %q, want the reason %q", resp.GetStatus().GetMessage(), reason)
	}
}

// assertInjectedValue checks that key: value is a token fuzzSource issued for
// some service, set in that service's configured header (testConfig sets
// headers per service only, so the service's header is the one in effect).
func assertInjectedValue(t *testing.T, s *Server, key, value string) {
	t.Helper()
	svcName, ok := strings.CutPrefix(value, "Bearer "+fuzzTokenPrefix)
	if !ok {
		t.Fatalf("injected %s: %q, want Bearer %s<service>", key, value, fuzzTokenPrefix)
	}
	for _, svc := range s.Config().Routes.Services() {
		if svc.Name == svcName {
			if !strings.EqualFold(key, svc.Settings.Header) {
				t.Fatalf("token of service %q injected in %q, want %q", svcName, key, svc.Settings.Header)
			}
			return
		}
	}
	t.Fatalf("injected %s: %q names no configured service", key, value)
}

// assertDenialBody checks that body is a JSON object of exactly error,
// message and request_id, all strings, with a denial reason, a message and
// the request's id (made valid UTF-8 as encoding/json does), and returns the
// reason.
func assertDenialBody(t *testing.T, body []byte, sentID string) Reason {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatalf("denial body %q is not JSON: %v", body, err)
	}
	if len(fields) != 3 {
		t.Fatalf("denial body %q: want exactly error, message, request_id", body)
	}
	reason, _ := fields["error"].(string)
	msg, _ := fields["message"].(string)
	id, isString := fields["request_id"].(string)
	if _, known := outcomes[Reason(reason)]; !known || (Decision{Reason: Reason(reason)}).Allowed() {
		t.Fatalf("denial body %q: error %q is not a denial reason", body, reason)
	}
	if msg == "" || !isString {
		t.Fatalf("denial body %q: want a message and a request_id", body)
	}
	if want := requestID(sentID); id != want {
		t.Fatalf("denial body request_id %q, want %q", id, want)
	}
	return Reason(reason)
}

// FuzzHTTPHandler feeds the HTTP entry points (/check/... and /forward-auth)
// arbitrary request lines and header values. Besides the shape of every
// response (as for Check), it asserts that routing follows the request URI
// alone and that both entry points decide exactly as Check does on the same
// method, host, path and Authorization.
func FuzzHTTPHandler(f *testing.F) {
	for _, s := range [][10]string{
		// method, target, host, authorization, request id, X-Forwarded-Method, -Uri, -Host, X-Original-URI, -Host
		{"GET", "/check/v1/orders/42", "orders.internal", "", "req-1", "", "", "", "", ""},
		{"POST", "/check/v1/orders?x=1", "ORDERS.internal:8080", "Bearer alice", "", "", "", "", "", ""},
		{"GET", "/check/v1//orders/history/../history", "orders.internal", "Bearer reject-me", "r", "", "", "", "", ""},
		{"GET", "/check/v1/orders/%2e%2e/admin", "orders.internal", "Bearer down", "", "", "", "", "", ""},
		{"GET", "/forward-auth", "tokenauthz", "Bearer bob", "req-2", "GET", "/v1/orders/history", "orders.internal", "", ""},
		{"GET", "/forward-auth", "", "", "", "POST", "/v1/orders", "orders.internal", "/v1/orders", ""},
		{"GET", "/forward-auth?x", "", "bearer  carol", "", "GET", "/me", "profile.internal", "", "PROFILE.internal"},
		{"GET", "/forward-auth", "", "", "", "GET", "/v1%2Forders%2Fhistory", "", "", "orders.internal"},
		{"GET", "/healthz", "", "", "", "", "", "", "", ""},
		{"GET", "/check", "orders.internal", "", "", "", "", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9])
	}
	servers := fuzzServers(f)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	f.Fuzz(func(t *testing.T, method, target, host, authz, requestIDValue, fwdMethod, fwdURI, fwdHost, origURI, origHost string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // net/http answers 400 itself
		}
		r := &http.Request{Method: method, URL: u, RequestURI: target, Host: host, Header: http.Header{}}
		for _, h := range [][2]string{
			{"Authorization", authz}, {"X-Request-Id", requestIDValue},
			{"X-Forwarded-Method", fwdMethod}, {"X-Forwarded-Uri", fwdURI}, {"X-Forwarded-Host", fwdHost},
			{"X-Original-Uri", origURI}, {"X-Original-Host", origHost},
		} {
			if h[1] != "" {
				r.Header.Set(h[0], h[1])
			}
		}
		// What Check decides on the same request, if the entry point is one
		// that decides (conflicting forwarded headers are refused before).
		var same *authv3.CheckRequest
		switch {
		case strings.HasPrefix(target, CheckPrefix+"/"):
			same = structuredCheck(method, host, strings.TrimPrefix(target, CheckPrefix), authz, "", "", "", "", "", nil, false)
		case u.Path == ForwardAuthPath:
			if (fwdURI == "" || origURI == "" || fwdURI == origURI) && (fwdHost == "" || origHost == "" || fwdHost == origHost) {
				same = structuredCheck(fwdMethod, first(fwdHost, origHost), first(fwdURI, origURI), authz, "", "", "", "", "", nil, false)
			}
		}
		routed := strings.HasPrefix(target, CheckPrefix+"/") || u.Path == ForwardAuthPath
		for _, s := range servers {
			rec := httptest.NewRecorder()
			s.HTTPHandler(next).ServeHTTP(rec, r)
			resp := rec.Result()
			if got := resp.StatusCode == http.StatusTeapot; got == routed {
				t.Fatalf("%q: reached next handler = %v, want %v", target, got, !routed)
			}
			if !routed {
				continue
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control %q, want no-store", cc)
			}
			var want *authv3.CheckResponse
			if same != nil {
				if want, err = s.Check(context.Background(), same); err != nil {
					t.Fatal(err)
				}
			}
			if resp.StatusCode == http.StatusOK {
				var injected []string
				for k, vs := range resp.Header {
					if k == "Cache-Control" {
						continue
					}
					if k == http.CanonicalHeaderKey(headersToRemoveHeader) {
						if want != nil && vs[0] != strings.Join(want.GetOkResponse().GetHeadersToRemove(), ",") {
							t.Fatalf("HTTP removes %q, Check removes %q", vs, want.GetOkResponse().GetHeadersToRemove())
						}
						continue
					}
					if len(vs) != 1 {
						t.Fatalf("allowed with %s: %q, want one value", k, vs)
					}
					injected = append(injected, k)
					assertInjectedValue(t, s, k, vs[0])
				}
				if len(injected) > 1 {
					t.Fatalf("allowed with headers %v, want at most one", injected)
				}
				if want != nil {
					wh := want.GetOkResponse().GetHeaders()
					if want.GetOkResponse() == nil || len(wh) != len(injected) ||
						len(wh) == 1 && resp.Header.Get(wh[0].GetHeader().GetKey()) != wh[0].GetHeader().GetValue() {
						t.Fatalf("HTTP allowed with %v, Check answered %v", resp.Header, want)
					}
				}
				continue
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("denial Content-Type %q", ct)
			}
			body, _ := io.ReadAll(resp.Body)
			reason := assertDenialBody(t, body, requestIDValue)
			if outcomes[reason].status != resp.StatusCode {
				t.Fatalf("reason %q rendered as HTTP %d, table says %d", reason, resp.StatusCode, outcomes[reason].status)
			}
			if want != nil && want.GetStatus().GetMessage() != string(reason) {
				t.Fatalf("HTTP denied with %q, Check answered %v", reason, want)
			}
		}
	})
}
