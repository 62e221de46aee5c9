package envoy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
)

// configBeside loads the tokenauthz.yaml in the folder of the bootstrap at path.
func configBeside(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join(filepath.Dir(path), "tokenauthz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A cold check waits for a token request: Envoy's ext_authz timeout must
// be longer than the token_request.timeout of the tokenauthz config beside
// it, or the first request of every user is a 503.
func TestExtAuthzTimeoutExceedsTokenRequestTimeout(t *testing.T) {
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	for _, path := range filesLike(t, bootstrapGlob) {
		t.Run(caseName(path), func(t *testing.T) {
			cfg := configBeside(t, path)
			for _, f := range extAuthzFilters(mustLoadBootstrap(t, path)) {
				timeout := f.GetGrpcService().GetTimeout()
				if f.GetHttpService() != nil {
					timeout = f.GetHttpService().GetServerUri().GetTimeout()
				}
				if d := timeout.AsDuration(); d <= cfg.TokenRequest.Timeout {
					t.Errorf("ext_authz timeout %v is not longer than token_request.timeout %v", d, cfg.TokenRequest.Timeout)
				}
			}
		})
	}
}

// Each gRPC-mode connection manager logs tokenauthz's decision (every key
// of its dynamic metadata) and streams upstream 401s to tokenauthz's
// access log service, over the cluster ext_authz uses.
func TestAccessLogsCarryDecisionsAndPurges(t *testing.T) {
	keys := []string{authz.MetaService, authz.MetaEndpoint, authz.MetaGrant, authz.MetaReason, authz.MetaCache, authz.MetaExpiresIn, authz.MetaTokenID}
	for _, path := range filesLike(t, bootstrapGlob) {
		t.Run(caseName(path), func(t *testing.T) {
			b := mustLoadBootstrap(t, path)
			filters := extAuthzFilters(b)
			cluster := filters[0].GetGrpcService().GetEnvoyGrpc().GetClusterName()
			if cluster == "" {
				t.Skip("ext_authz in HTTP mode: tokenauthz cannot answer with dynamic metadata there")
			}
			for _, h := range messagesIn[*hcmv3.HttpConnectionManager](b) {
				logged, purges := map[string]bool{}, false
				for _, l := range h.GetAccessLog() {
					js, _ := protojson.Marshal(l)
					for _, k := range keys {
						if strings.Contains(string(js), "%DYNAMIC_METADATA("+authz.ExtAuthzMetadataNamespace+":"+k+")%") {
							logged[k] = true
						}
					}
					purges = purges || purgesOn401(l, cluster)
				}
				for _, k := range keys {
					if !logged[k] {
						t.Errorf("connection manager %s: no access log shows %s", h.GetStatPrefix(), k)
					}
				}
				if !purges {
					t.Errorf("connection manager %s: no http_grpc access log sends upstream 401s to cluster %s", h.GetStatPrefix(), cluster)
				}
			}
		})
	}
}

// purgesOn401: l is an http_grpc logger to cluster that logs 401s only.
func purgesOn401(l *accesslogv3.AccessLog, cluster string) bool {
	c := &grpclogv3.HttpGrpcAccessLogConfig{}
	if l.GetTypedConfig().UnmarshalTo(c) != nil {
		return false
	}
	sc := l.GetFilter().GetStatusCodeFilter().GetComparison()
	return c.GetCommonConfig().GetGrpcService().GetEnvoyGrpc().GetClusterName() == cluster &&
		c.GetCommonConfig().GetTransportApiVersion().String() == "V3" &&
		sc.GetOp() == accesslogv3.ComparisonFilter_EQ && sc.GetValue().GetDefaultValue() == 401
}

// In HTTP mode Envoy sends the authorization server only Host, Method,
// Path, Content-Length and Authorization unless told: tokenauthz needs the
// request id and the trace context too.
func TestHTTPServiceSendsRequestIDAndTraceContext(t *testing.T) {
	for _, path := range filesLike(t, bootstrapGlob) {
		for _, f := range extAuthzFilters(mustLoadBootstrap(t, path)) {
			if f.GetHttpService() == nil {
				continue
			}
			var allowed []string
			for _, p := range f.GetAllowedHeaders().GetPatterns() {
				allowed = append(allowed, strings.ToLower(p.GetExact()))
			}
			for _, h := range []string{"x-request-id", "traceparent", "tracestate"} {
				if !slices.Contains(allowed, h) {
					t.Errorf("%s: allowed_headers %v lacks %s", caseName(path), allowed, h)
				}
			}
		}
	}
}
