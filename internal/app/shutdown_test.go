package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestShutdownFinishesInFlightChecks holds a check in a slow token request
// (a delaying proxy before the real IdP), shuts down meanwhile, and expects
// the check to complete, the listeners to close and Shutdown to return.
func TestShutdownFinishesInFlightChecks(t *testing.T) {
	idp := startIdP(t)
	target, _ := url.Parse(idp.Issuer())
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)

	f := &fixture{idp: idp, path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	cfg := fmt.Sprintf(appConfig, idp.Issuer(), "orders.read") + "    token_url: " + slow.URL + tokenPath(t, idp.TokenEndpoint()) + "\n"
	if err := os.WriteFile(f.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f.serve(t, 0)

	type outcome struct {
		resp *authv3.CheckResponse
		err  error
	}
	result := make(chan outcome, 1)
	go func() {
		resp, err := f.client.Check(context.Background(), checkRequest("orders.internal"))
		result <- outcome{resp, err}
	}()
	time.Sleep(150 * time.Millisecond) // the check is now waiting on the IdP
	start := time.Now()
	f.app.Shutdown()
	if took := time.Since(start); took > ShutdownGrace {
		t.Errorf("Shutdown took %v, more than the grace of %v", took, ShutdownGrace)
	}
	if got := <-result; got.err != nil || len(got.resp.GetOkResponse().GetHeaders()) != 1 {
		t.Errorf("in-flight check: %v %v, want it finished with a token", got.resp, got.err)
	}
	if c, err := net.DialTimeout("tcp", f.app.GRPCAddr(), time.Second); err == nil {
		c.Close()
		t.Error("gRPC listener still accepts after Shutdown")
	}
}
