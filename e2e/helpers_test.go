// Package e2e runs tokenauthz as users do, wired by internal/app, against
// real token servers: Ory Hydra (client credentials, JWT access tokens) and
// the zitadel/oidc-based devidp (token exchange).
package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
)

// broker is a tokenauthz under test, wired by internal/app as `serve`
// wires it, with a gRPC ext_authz client.
type broker struct {
	app    *app.App
	client authv3.AuthorizationClient
	conn   *grpc.ClientConn
}

// newBroker serves the YAML config on free loopback ports. The caller
// stops it (tests that count goroutines stop it before counting).
func newBroker(t *testing.T, yaml string) *broker {
	t.Helper()
	cfg, err := config.Parse("e2e.yaml", []byte("listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		a.Shutdown()
		t.Fatal(err)
	}
	return &broker{app: a, client: authv3.NewAuthorizationClient(conn), conn: conn}
}

func (b *broker) stop() {
	b.conn.Close()
	b.app.Shutdown()
}

// startBroker is newBroker stopped at the end of the test.
func startBroker(t *testing.T, yaml string) *broker {
	t.Helper()
	b := newBroker(t, yaml)
	t.Cleanup(b.stop)
	return b
}

// request builds a CheckRequest like Envoy's for method host path.
func request(method, host, path, callerToken string) *authv3.CheckRequest {
	headers := map[string]string{":authority": host, ":method": method, ":path": path, "x-request-id": "e2e-1"}
	if callerToken != "" {
		headers["authorization"] = "Bearer " + callerToken
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "e2e-1", Method: method, Host: host, Path: path, Headers: headers},
	}}}
}

// injected checks and returns the bearer token the broker injected.
func injected(t testing.TB, client authv3.AuthorizationClient, req *authv3.CheckRequest) string {
	t.Helper()
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
	}
	h := resp.GetOkResponse().GetHeaders()
	if len(h) != 1 || h[0].GetHeader().GetKey() != "authorization" {
		t.Fatalf("want one authorization header, got %v", h)
	}
	v := h[0].GetHeader().GetValue()
	token, ok := strings.CutPrefix(v, "Bearer ")
	if !ok || strings.HasPrefix(token, "Bearer ") || strings.ContainsAny(token, " ,") {
		t.Fatalf("header value %q is not exactly one bearer token", v)
	}
	return token
}

// denial is the status and body of a denied check.
type denial struct {
	Code       codes.Code
	HTTPStatus int
	Error      string `json:"error"`
	Message    string `json:"message"`
	RequestID  string `json:"request_id"`
}

func denied(t testing.TB, client authv3.AuthorizationClient, req *authv3.CheckRequest) denial {
	t.Helper()
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	d := denial{Code: codes.Code(resp.GetStatus().GetCode()), HTTPStatus: int(resp.GetDeniedResponse().GetStatus().GetCode())}
	if d.Code == codes.OK {
		t.Fatalf("allowed, want a denial: %v", resp.GetOkResponse())
	}
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &d); err != nil {
		t.Fatalf("denial body %q: %v", resp.GetDeniedResponse().GetBody(), err)
	}
	if d.RequestID != "e2e-1" {
		t.Errorf("request_id %q, want e2e-1", d.RequestID)
	}
	return d
}
