package authz

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tokenauthz/tokenauthz/tokens"
)

// hostileWant is what a hostile request must lead to: the reason, the
// service and endpoint the decision names, and, for an injected token, the
// subject token exchanged ("" for client credentials).
type hostileWant struct {
	reason   Reason
	service  string
	endpoint string
	subject  string
}

// hostileHarness is a server under testConfig whose token source issues
// "issued-<service>" and remembers the last request, and whose observer
// remembers the last decision.
type hostileHarness struct {
	s        *Server
	lastReq  *tokens.Request
	lastDec  Decision
	observed bool
}

func (h *hostileHarness) ObserveCheck(d Decision, _ time.Duration) { h.lastDec, h.observed = d, true }

func newHostileHarness(t *testing.T) *hostileHarness {
	t.Helper()
	h := &hostileHarness{}
	src := fakeSource(func(r tokens.Request) (tokens.Token, error) {
		h.lastReq = &r
		return tokens.Token{AccessToken: "issued-" + r.Service, TokenType: "Bearer"}, nil
	})
	h.s = newServer(t, testConfig, src)
	h.s.obs = h
	return h
}

func (h *hostileHarness) reset() { h.lastReq, h.lastDec, h.observed = nil, Decision{}, false }

// assertDecision checks the observed decision and token request against want,
// and returns the header the response must inject ("" for none).
func (h *hostileHarness) assertDecision(t *testing.T, want hostileWant) (header, value string) {
	t.Helper()
	d := h.lastDec
	if !h.observed {
		t.Fatal("no decision observed")
	}
	if d.Reason != want.reason || d.Service != want.service || d.Endpoint != want.endpoint {
		t.Fatalf("decision %s service %q endpoint %q (%s), want %s service %q endpoint %q",
			d.Reason, d.Service, d.Endpoint, short(d.Message), want.reason, want.service, want.endpoint)
	}
	if want.reason != ReasonTokenInjected {
		if h.lastReq != nil {
			t.Fatalf("%s fetched a token for %q", want.reason, h.lastReq.Service)
		}
		return "", ""
	}
	r := h.lastReq
	if r == nil {
		t.Fatal("token injected without a token request")
	}
	if r.SubjectToken != want.subject {
		t.Fatalf("subject token %s, want %s", short(r.SubjectToken), short(want.subject))
	}
	if exchange := r.GrantType == tokens.GrantTokenExchange; exchange != (want.subject != "") {
		t.Fatalf("grant %s with subject token %s", r.GrantType, short(r.SubjectToken))
	}
	header = "authorization"
	if want.service == "profile" {
		header = "x-backend-token"
	}
	return header, "Bearer issued-" + want.service
}

// short quotes s, cut to a readable length.
func short(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%q...(%d bytes)", s[:60], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// rawCheck is a CheckRequest whose headers all travel in header_map raw
// values (encode_raw_headers), in order, as key, value pairs.
func rawCheck(kv ...string) *authv3.CheckRequest {
	var hm []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hm = append(hm, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: hm}},
	}}}
}

func auth(v string) map[string]string { return map[string]string{"authorization": v} }

// manyHeaders returns n junk headers as a map, plus extra key, value pairs.
func manyHeaders(n int, kv ...string) map[string]string {
	m := make(map[string]string, n+len(kv)/2)
	for i := range n {
		m[fmt.Sprintf("x-junk-%d", i)] = "v"
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// manyRaw returns n junk raw headers followed by the key, value pairs.
func manyRaw(n int, key string, kv ...string) []string {
	out := make([]string, 0, 2*n+len(kv))
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", key, i), "v")
	}
	return append(out, kv...)
}

func repeatRaw(n int, key, format string) []string {
	out := make([]string, 0, 2*n)
	for i := range n {
		out = append(out, key, fmt.Sprintf(format, i))
	}
	return out
}

const mb = 1 << 20

// TestCheckHostile sends Check requests an attacker (or a broken proxy)
// could produce and asserts the decision, the service and endpoint whose
// settings apply, the subject token exchanged, and that an allowed response
// injects exactly one "Bearer <issued token>" header.
func TestCheckHostile(t *testing.T) {
	big := strings.Repeat("a", mb)
	bearer := auth("Bearer alice")
	injected := func(service, endpoint, subject string) hostileWant {
		return hostileWant{ReasonTokenInjected, service, endpoint, subject}
	}
	noMatch := hostileWant{reason: ReasonNoMatch}
	missing := hostileWant{ReasonMissingSubject, "orders", "history", ""}
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want hostileWant
	}{
		// 1 MB values.
		{"1mb-authorization-is-exchanged-as-sent", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer "+big), nil), injected("orders", "history", big)},
		{"1mb-unrelated-header", checkReq("GET", "orders.internal", "/v1/orders/42", map[string]string{"x-junk": big}, nil), injected("orders", "", "")},
		{"1mb-path-under-endpoint", checkReq("GET", "orders.internal", "/v1/orders/history/"+big, bearer, nil), injected("orders", "history", "alice")},
		{"1mb-path-of-dot-segments", checkReq("GET", "orders.internal", "/v1/"+strings.Repeat("../", mb/3)+"v1/orders", bearer, nil), injected("orders", "", "")},
		{"1mb-path-unmatched", checkReq("GET", "orders.internal", "/"+big, nil, nil), noMatch},
		{"1mb-host", checkReq("GET", big+".internal", "/v1", nil, nil), noMatch},
		{"1mb-raw-header-value", rawCheck(":method", "GET", ":authority", "orders.internal", ":path", "/v1/x", "x-junk", big), injected("orders", "", "")},

		// Bytes that are not UTF-8.
		{"non-utf8-host", checkReq("GET", "orders.internal\xff", "/v1", nil, nil), noMatch},
		{"non-utf8-host-upper-case", checkReq("GET", "ORDERS.INTERNAL\xc0", "/v1", nil, nil), noMatch},
		{"non-utf8-path-under-prefix", checkReq("GET", "orders.internal", "/v1/orders/\xff\xfe", bearer, nil), injected("orders", "", "")},
		{"non-utf8-escape-under-endpoint", checkReq("GET", "orders.internal", "/v1/orders/history/%ff%C0", bearer, nil), injected("orders", "history", "alice")},
		{"non-utf8-authorization", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer \xff\xfe"), nil), missing}, // not a b64token
		{"non-utf8-raw-authorization", rawCheck(":method", "GET", ":authority", "orders.internal", ":path", "/v1/orders/history", "authorization", "Bearer \xc3\x28"), missing},
		{"non-utf8-raw-authority", rawCheck(":method", "GET", ":authority", "orders.internal\x80", ":path", "/v1"), noMatch},
		{"non-utf8-raw-path", rawCheck(":method", "GET", ":authority", "orders.internal", ":path", "/v1/\x80/../orders/history", "authorization", "Bearer bob"), injected("orders", "history", "bob")},
		{"non-utf8-raw-method", rawCheck(":method", "P\xffST", ":authority", "orders.internal", ":path", "/v1/orders"), injected("orders", "", "")},
		{"non-utf8-request-id", rawCheck(":method", "GET", ":authority", "nope.internal", ":path", "/", "x-request-id", "\xff\xfe"), noMatch},

		// Dot segments and escapes: a path is matched as the backend will
		// resolve it, and never borrows an endpoint it does not reach.
		{"dot-dot-leaves-create-endpoint", checkReq("POST", "orders.internal", "/v1/orders/../admin", nil, nil), injected("orders", "", "")},
		{"dot-dot-leaves-history-endpoint", checkReq("GET", "orders.internal", "/v1/orders/history/..", bearer, nil), injected("orders", "", "")},
		{"dot-dot-into-history-is-history", checkReq("GET", "orders.internal", "/v1/admin/../orders/history", bearer, nil), injected("orders", "history", "alice")},
		{"dot-dot-above-prefix-is-unmatched", checkReq("GET", "orders.internal", "/v1/../admin", nil, nil), noMatch},
		{"dot-dot-above-root-is-unmatched", checkReq("GET", "orders.internal", "/../../v1x", nil, nil), noMatch},
		{"escaped-dot-dot-above-prefix", checkReq("GET", "orders.internal", "/v1/%2e%2e/admin", nil, nil), noMatch},
		{"escaped-dot-dot-upper-case", checkReq("GET", "orders.internal", "/v1/orders/history/%2E%2E", bearer, nil), injected("orders", "", "")},
		{"half-escaped-dot-dot", checkReq("GET", "orders.internal", "/v1/orders/history/.%2e/", bearer, nil), injected("orders", "", "")},
		{"escaped-slash-is-not-a-separator", checkReq("GET", "orders.internal", "/v1/orders%2Fhistory", bearer, nil), injected("orders", "", "")},
		{"escaped-slash-lower-case", checkReq("GET", "orders.internal", "/v1/orders%2fhistory", bearer, nil), injected("orders", "", "")},
		{"escaped-slash-dot-dot-inside-endpoint", checkReq("GET", "orders.internal", "/v1/orders/history%2F..%2F..%2Fadmin", bearer, nil), injected("orders", "", "")},
		{"escaped-slash-dot-dot-out-of-prefix", checkReq("GET", "orders.internal", "/v1%2F..%2Fadmin", nil, nil), noMatch},
		{"double-escaped-dot-dot-stays-literal", checkReq("GET", "orders.internal", "/v1/orders/history/%252e%252e", bearer, nil), injected("orders", "history", "alice")},
		{"backslashes-are-not-separators", checkReq("GET", "orders.internal", "/v1/orders/history\\..\\..\\admin", bearer, nil), injected("orders", "", "")},
		{"dot-dot-in-query-ignored", checkReq("GET", "orders.internal", "/v1/orders/history?../../admin", bearer, nil), injected("orders", "history", "alice")},
		{"dot-dot-in-fragment-ignored", checkReq("GET", "orders.internal", "/v1/orders/history#/../..", bearer, nil), injected("orders", "history", "alice")},
		{"prefix-without-boundary", checkReq("GET", "orders.internal", "/v1%2e/orders", nil, nil), noMatch},

		// Hosts: the attribute wins over headers, case and any port are
		// ignored, and anything else is no host of ours.
		{"attribute-host-wins-over-authority-header", checkReq("GET", "nope.internal", "/v1", map[string]string{":authority": "orders.internal"}, nil), noMatch},
		{"attribute-host-wins-over-host-header", checkReq("GET", "open.internal", "/v1", map[string]string{"host": "orders.internal"}, nil), hostileWant{reason: ReasonNoGrant, service: "open"}},
		{"authority-header-wins-over-host-header", checkReq("GET", "", "/v1", map[string]string{":authority": "ORDERS.INTERNAL:443", "host": "profile.internal"}, nil), injected("orders", "", "")},
		{"host-mixed-case-and-port", checkReq("GET", "Orders.Internal:8443", "/v1", nil, nil), injected("orders", "", "")},
		{"host-empty-port", checkReq("GET", "orders.internal:", "/v1", nil, nil), injected("orders", "", "")},
		// The same DNS name: nginx drops the dot, and so do the shipped
		// Envoy configs (strip_trailing_host_dot).
		{"host-trailing-dot", checkReq("GET", "orders.internal.", "/v1", nil, nil), injected("orders", "", "")},
		{"host-dotless-i-upper-case", checkReq("GET", "ORDERS.\u0130NTERNAL", "/v1", nil, nil), noMatch},
		{"host-with-space", checkReq("GET", "orders.internal /x", "/v1", nil, nil), noMatch},
		{"host-with-backslash", checkReq("GET", "orders.internal\\", "/v1", nil, nil), noMatch},
		{"host-two-ports", checkReq("GET", "orders.internal:80:80", "/v1", nil, nil), noMatch},
		{"host-with-userinfo", checkReq("GET", "alice@orders.internal", "/v1", nil, nil), noMatch},
		{"host-list", checkReq("GET", "orders.internal, profile.internal", "/v1", nil, nil), noMatch},
		{"raw-duplicate-authority-first-wins", rawCheck(":method", "GET", ":authority", "orders.internal", ":authority", "profile.internal", ":path", "/v1"), injected("orders", "", "")},
		{"raw-duplicate-authority-other-case-first-wins", rawCheck(":method", "GET", ":AUTHORITY", "PROFILE.internal:1", ":authority", "orders.internal", ":path", "/v1"), injected("profile", "", "")},

		// Huge numbers of headers.
		{"10000-headers", checkReq("GET", "orders.internal", "/v1/orders/history", manyHeaders(10000, "authorization", "Bearer alice"), nil), injected("orders", "history", "alice")},
		{"10000-raw-headers-before-pseudo-headers", rawCheck(manyRaw(10000, "x-junk-", ":method", "GET", ":authority", "orders.internal", ":path", "/v1/orders/history", "authorization", "Bearer alice")...), injected("orders", "history", "alice")},
		{"10000-raw-authorizations-first-wins", rawCheck(append([]string{":method", "GET", ":authority", "orders.internal", ":path", "/v1/orders/history"}, repeatRaw(10000, "authorization", "Bearer t%d")...)...), injected("orders", "history", "t0")},

		// Authorization values (history exchanges the caller's token,
		// profile is auto: exchange with a bearer token, else client credentials).
		{"bearer-lower-case", checkReq("GET", "orders.internal", "/v1/orders/history", auth("bearer alice"), nil), injected("orders", "history", "alice")},
		{"bearer-upper-case", checkReq("GET", "orders.internal", "/v1/orders/history", auth("BEARER alice"), nil), injected("orders", "history", "alice")},
		{"bearer-extra-spaces", checkReq("GET", "orders.internal", "/v1/orders/history", auth("  Bearer    alice  "), nil), injected("orders", "history", "alice")},
		{"bearer-tab-separator", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer\talice"), nil), missing},
		{"bearer-without-token", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer"), nil), missing},
		{"bearer-blank-token", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer    "), nil), missing},
		{"basic-is-no-subject", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Basic dTpw"), nil), missing},
		{"bearer-prefix-of-other-scheme", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearerx alice"), nil), missing},
		// The next two pass a subject token that is not an RFC 6750
		// b64token; the IdP is left to reject it (see docs/fuzzing.md).
		{"bearer-bearer", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer Bearer x"), nil), missing},
		{"two-values-joined", checkReq("GET", "orders.internal", "/v1/orders/history", auth("Bearer a, Bearer b"), nil), missing},
		{"two-raw-values-first-wins", rawCheck(":method", "GET", ":authority", "orders.internal", ":path", "/v1/orders/history", "authorization", "Bearer a", "authorization", "Bearer b"), injected("orders", "history", "a")},
		{"empty-first-raw-value-wins", rawCheck(":method", "GET", ":authority", "orders.internal", ":path", "/v1/orders/history", "authorization", "", "authorization", "Bearer b"), missing},
		{"auto-with-bearer-exchanges", checkReq("GET", "profile.internal", "/me", auth("bearer  carol"), nil), injected("profile", "", "carol")},
		{"auto-with-basic-uses-client-credentials", checkReq("GET", "profile.internal", "/me", auth("Basic dTpw"), nil), injected("profile", "", "")},
		{"grant-none-passes-caller-authorization", checkReq("GET", "open.internal", "/", auth("Bearer Bearer x"), nil), hostileWant{reason: ReasonNoGrant, service: "open"}},
	}
	h := newHostileHarness(t)
	client := serveGRPC(t, h.s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h := tt.req.GetAttributes().GetRequest().GetHttp(); h.GetHeaderMap() == nil {
				h.Id = "req-1"
			}
			// Through gRPC too, as Envoy asks: the wire decoder
			// reads what proto.Unmarshal would, and the check decides
			// the same. (Strings that are not UTF-8 cannot be encoded;
			// the wire tables hold the decoder to refusing them.)
			var viaGRPC *authv3.CheckResponse
			if wire, err := proto.Marshal(tt.req); err == nil {
				assertWireAgrees(t, wire)
				if viaGRPC, err = client.Check(context.Background(), tt.req); err != nil {
					t.Fatalf("over gRPC: %v", err)
				}
			}
			h.reset()
			resp, err := h.s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("gRPC error %v", err)
			}
			if viaGRPC != nil && !proto.Equal(viaGRPC, resp) {
				t.Fatalf("over gRPC %v\ndirect %v", viaGRPC, resp)
			}
			if _, err := proto.Marshal(resp); err != nil {
				t.Fatalf("response cannot be sent: %v", err)
			}
			header, value := h.assertDecision(t, tt.want)
			if !h.lastDec.Allowed() {
				assertDenied(t, resp, outcomes[tt.want.reason].code, outcomes[tt.want.reason].status, tt.want.reason)
				in, _ := inputFromCheck(tt.req)
				assertDenialBody(t, []byte(resp.GetDeniedResponse().GetBody()), in.RequestID)
				return
			}
			if code := codes.Code(resp.GetStatus().GetCode()); code != codes.OK {
				t.Fatalf("status %v for an allow", code)
			}
			hs := resp.GetOkResponse().GetHeaders()
			if header == "" {
				if len(hs) != 0 {
					t.Fatalf("headers %v, want none", hs)
				}
				return
			}
			if len(hs) != 1 || hs[0].GetHeader().GetKey() != header || hs[0].GetHeader().GetValue() != value ||
				hs[0].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Fatalf("injected %v, want one %s: %s overwriting", hs, header, value)
			}
		})
	}
}

// TestHTTPHostile sends the hostile requests that apply to the HTTP entry
// points: Envoy's /check/<path> and the forward-auth headers.
func TestHTTPHostile(t *testing.T) {
	big := strings.Repeat("a", mb)
	fwd := func(method, uri, host string, kv ...string) http.Header {
		h := http.Header{}
		for _, p := range [][2]string{{"X-Forwarded-Method", method}, {"X-Forwarded-Uri", uri}, {"X-Forwarded-Host", host}} {
			if p[1] != "" {
				h.Set(p[0], p[1])
			}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	hdr := func(kv ...string) http.Header { return fwd("", "", "", kv...) }
	missing := hostileWant{ReasonMissingSubject, "orders", "history", ""}
	injected := func(service, endpoint, subject string) hostileWant {
		return hostileWant{ReasonTokenInjected, service, endpoint, subject}
	}
	many := http.Header{}
	for i := range 10000 {
		many.Set(fmt.Sprintf("X-Junk-%d", i), "v")
	}
	for k, v := range fwd("GET", "/v1/orders/history", "orders.internal", "Authorization", "Bearer alice") {
		many[k] = v
	}
	noMatch := hostileWant{reason: ReasonNoMatch}
	malformed := hostileWant{reason: ReasonMalformed}
	tests := []struct {
		name   string
		target string
		host   string
		header http.Header
		want   hostileWant
	}{
		{"check-1mb-authorization", "/check/v1/orders/history", "orders.internal", hdr("Authorization", "Bearer "+big), injected("orders", "history", big)},
		{"check-1mb-path", "/check/v1/orders/" + big, "orders.internal", nil, injected("orders", "", "")},
		{"check-non-utf8-host", "/check/v1", "orders.internal\xff", nil, noMatch},
		{"check-non-utf8-authorization", "/check/v1/orders/history", "orders.internal", hdr("Authorization", "Bearer \xff"), missing},
		{"check-dot-dot-leaves-history", "/check/v1/orders/history/..", "orders.internal", hdr("Authorization", "Bearer alice"), injected("orders", "", "")},
		{"check-escaped-dot-dot-above-prefix", "/check/v1/%2e%2e/admin", "orders.internal", nil, noMatch},
		{"check-escaped-slash-is-not-a-separator", "/check/v1/orders%2Fhistory", "orders.internal", hdr("Authorization", "Bearer alice"), injected("orders", "", "")},
		{"check-host-mixed-case-and-port", "/check/v1", "ORDERS.Internal:8443", nil, injected("orders", "", "")},
		{"check-forwarded-host-ignored", "/check/v1", "nope.internal", hdr("X-Forwarded-Host", "orders.internal"), noMatch},
		{"check-two-authorizations-first-wins", "/check/v1/orders/history", "orders.internal", hdr("Authorization", "Bearer a", "Authorization", "Bearer b"), injected("orders", "history", "a")},
		{"check-bearer-lower-case-extra-spaces", "/check/v1/orders/history", "orders.internal", hdr("Authorization", " bearer   alice "), injected("orders", "history", "alice")},
		{"fwd-1mb-uri", "/forward-auth", "", fwd("GET", "/v1/orders/"+big, "orders.internal"), injected("orders", "", "")},
		{"fwd-non-utf8-host", "/forward-auth", "", fwd("GET", "/v1", "orders.internal\xc0"), noMatch},
		{"fwd-dot-dot-above-prefix", "/forward-auth", "", fwd("GET", "/v1/orders/history/../../../admin", "orders.internal"), noMatch},
		{"fwd-escaped-dot-dot-leaves-create", "/forward-auth", "", fwd("POST", "/v1/orders/%2E%2E/admin", "orders.internal"), injected("orders", "", "")},
		{"fwd-hosts-differing-in-case", "/forward-auth", "", fwd("GET", "/v1", "orders.internal", "X-Original-Host", "ORDERS.internal"), malformed},
		{"fwd-hosts-differing-in-port", "/forward-auth", "", fwd("GET", "/v1", "orders.internal", "X-Forwarded-Host", "orders.internal:8080"), malformed},
		{"fwd-same-host-twice", "/forward-auth", "", fwd("GET", "/v1", "orders.internal", "X-Forwarded-Host", "orders.internal", "X-Original-Host", "orders.internal"), injected("orders", "", "")},
		{"fwd-host-list-in-one-value", "/forward-auth", "", fwd("GET", "/v1", "orders.internal, profile.internal"), noMatch},
		{"fwd-own-host-ignored", "/forward-auth", "orders.internal", fwd("GET", "/v1", ""), malformed},
		{"fwd-10000-headers", "/forward-auth", "", many, injected("orders", "history", "alice")},
		{"fwd-bearer-bearer", "/forward-auth", "", fwd("GET", "/v1/orders/history", "orders.internal", "Authorization", "Bearer Bearer x"), missing},
	}
	h := newHostileHarness(t)
	handler := h.s.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s reached the next handler", short(r.RequestURI))
	}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.reset()
			req := httptest.NewRequest("GET", "/", nil)
			req.RequestURI, req.URL.Path, req.URL.RawPath = tt.target, strings.SplitN(tt.target, "?", 2)[0], ""
			req.Host = tt.host
			req.Header = tt.header.Clone()
			if req.Header == nil {
				req.Header = http.Header{}
			}
			req.Header.Set("X-Request-Id", "req-1")
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			resp := rec.Result()
			header, value := h.assertDecision(t, tt.want)
			if resp.StatusCode != outcomes[tt.want.reason].status {
				t.Fatalf("status %d, want %d", resp.StatusCode, outcomes[tt.want.reason].status)
			}
			if !h.lastDec.Allowed() {
				assertHTTPDenied(t, resp, tt.want.reason)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if len(body) != 0 {
				t.Errorf("allow with body %s", short(string(body)))
			}
			for k, vs := range resp.Header {
				switch {
				case k == "Cache-Control":
				case strings.EqualFold(k, header) && len(vs) == 1 && vs[0] == value:
					header = "" // seen
				default:
					t.Errorf("allow sets %s: %q, want only %s: %s", k, vs, header, value)
				}
			}
			if header != "" {
				t.Errorf("allow does not set %s: %s", header, value)
			}
		})
	}
}
