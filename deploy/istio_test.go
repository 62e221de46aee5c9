package deploy

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"

	"github.com/tokenauthz/tokenauthz/envoy"
	"github.com/tokenauthz/tokenauthz/internal/explain"
)

// istioSpecs gives, per kind, the Istio API message its spec must decode
// into; for IstioOperator, the message of spec.meshConfig.
var istioSpecs = map[string]func() proto.Message{
	"Gateway":             func() proto.Message { return &networkingv1.Gateway{} },
	"VirtualService":      func() proto.Message { return &networkingv1.VirtualService{} },
	"DestinationRule":     func() proto.Message { return &networkingv1.DestinationRule{} },
	"ServiceEntry":        func() proto.Message { return &networkingv1.ServiceEntry{} },
	"EnvoyFilter":         func() proto.Message { return &networkingv1alpha3.EnvoyFilter{} },
	"AuthorizationPolicy": func() proto.Message { return &securityv1.AuthorizationPolicy{} },
	"IstioOperator":       func() proto.Message { return &meshv1alpha1.MeshConfig{} },
}

// Istio specs decode strictly into the Istio API's messages: a misspelled
// field or enum value fails here rather than at kubectl apply.
func TestIstioSpecsDecodeStrictly(t *testing.T) {
	for _, o := range allObjects(t) {
		newSpec, ok := istioSpecs[o.Kind]
		if !ok {
			continue
		}
		t.Run(o.Kind+"-"+o.Metadata.Name, func(t *testing.T) {
			var doc struct {
				Spec struct {
					MeshConfig yaml.Node `yaml:"meshConfig"`
				}
			}
			var spec struct{ Spec yaml.Node }
			o.decode(t, &doc)
			o.decode(t, &spec)
			node := &spec.Spec
			if o.Kind == "IstioOperator" {
				node = &doc.Spec.MeshConfig
			}
			data, err := yaml.Marshal(node)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoy.Decode(data, newSpec()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

type istioOperator struct {
	Spec struct {
		MeshConfig struct {
			ExtensionProviders []struct {
				Name              string
				EnvoyExtAuthzGrpc *struct {
					Service       string
					Port          int
					Timeout       string
					FailOpen      *bool  `yaml:"failOpen"`
					StatusOnError string `yaml:"statusOnError"`
				} `yaml:"envoyExtAuthzGrpc"`
			} `yaml:"extensionProviders"`
			PathNormalization struct {
				Normalization string
			} `yaml:"pathNormalization"`
		} `yaml:"meshConfig"`
	}
}

type authorizationPolicy struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Action   string
		Provider struct{ Name string }
		Rules    []struct {
			To []struct {
				Operation struct{ Hosts []string }
			}
		}
	}
}

type envoyFilter struct {
	Spec struct {
		ConfigPatches []struct {
			ApplyTo string `yaml:"applyTo"`
			Match   struct{ Context string }
			Patch   struct {
				Operation string
				Value     yaml.Node
			}
		} `yaml:"configPatches"`
	}
}

// tokenauthzHost is the in-cluster name of the tokenauthz Service and its
// gRPC port, from the Kubernetes manifests.
func tokenauthzHost(t *testing.T, objs []object) (host string, grpcPort int) {
	t.Helper()
	svcObj := only(t, objs, "Service")
	var svc service
	svcObj.decode(t, &svc)
	for _, p := range svc.Spec.Ports {
		if p.Name == "grpc" {
			grpcPort = p.Port
		}
	}
	return fmt.Sprintf("%s.%s.svc.cluster.local", svcObj.Metadata.Name, svcObj.Metadata.Namespace), grpcPort
}

func TestMeshProviderReachesTokenauthz(t *testing.T) {
	objs := allObjects(t)
	var op istioOperator
	only(t, objs, "IstioOperator").decode(t, &op)
	host, port := tokenauthzHost(t, objs)
	cfg := configMapConfig(t, objs)
	for _, p := range op.Spec.MeshConfig.ExtensionProviders {
		t.Run(p.Name, func(t *testing.T) {
			g := p.EnvoyExtAuthzGrpc
			if g == nil {
				t.Fatal("not an envoyExtAuthzGrpc provider")
			}
			timeout, err := time.ParseDuration(g.Timeout)
			checks := []struct{ name, got, want string }{
				{"service", g.Service, host},
				{"port", fmt.Sprint(g.Port), fmt.Sprint(port)},
				{"fail-closed", show(g.FailOpen), "false"},
				{"status-on-error", g.StatusOnError, "503"},
				{"timeout-bounded", fmt.Sprint(err == nil && timeout > 0 && timeout <= envoy.MaxCheckTimeout), "true"},
				// A cold check waits for a token request.
				{"timeout-exceeds-token-request-timeout", fmt.Sprint(timeout > cfg.TokenRequest.Timeout), "true"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
				}
			}
		})
	}
}

// Istio's sidecars and gateways must route on the path tokenauthz decides
// on: dot segments resolved and slashes merged (Istio's BASE, the default,
// only resolves dot segments). DECODE_AND_MERGE_SLASHES also unescapes %2F.
func TestMeshNormalizesPaths(t *testing.T) {
	var op istioOperator
	only(t, allObjects(t), "IstioOperator").decode(t, &op)
	switch n := op.Spec.MeshConfig.PathNormalization.Normalization; n {
	case "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES":
	default:
		t.Errorf("meshConfig.pathNormalization.normalization %q, want MERGE_SLASHES or DECODE_AND_MERGE_SLASHES", n)
	}
}

// Each CUSTOM policy must name a provider of the mesh config, sit on the
// egress gateway the Gateway selects, and cover only hosts tokenauthz knows.
func TestAuthorizationPoliciesUseMeshProvider(t *testing.T) {
	objs := allObjects(t)
	var op istioOperator
	only(t, objs, "IstioOperator").decode(t, &op)
	providers := map[string]bool{}
	for _, p := range op.Spec.MeshConfig.ExtensionProviders {
		providers[p.Name] = true
	}
	var gw struct {
		Spec struct{ Selector map[string]string }
	}
	only(t, objs, "Gateway").decode(t, &gw)
	cfg := configMapConfig(t, objs)
	for _, o := range ofKind(objs, "AuthorizationPolicy") {
		t.Run(o.Metadata.Name, func(t *testing.T) {
			var ap authorizationPolicy
			o.decode(t, &ap)
			if ap.Spec.Action != "CUSTOM" || !providers[ap.Spec.Provider.Name] {
				t.Errorf("action %s, provider %q: want CUSTOM with one of the mesh config's providers %v", ap.Spec.Action, ap.Spec.Provider.Name, providers)
			}
			if !maps.Equal(ap.Spec.Selector.MatchLabels, gw.Spec.Selector) {
				t.Errorf("selects %v, the egress Gateway runs on %v", ap.Spec.Selector.MatchLabels, gw.Spec.Selector)
			}
			for _, r := range ap.Spec.Rules {
				for _, to := range r.To {
					for _, h := range to.Operation.Hosts {
						if err := hostMatches(cfg, strings.TrimSuffix(h, ":*")); err != nil {
							t.Errorf("host %s: %v", h, err)
						}
					}
				}
			}
		})
	}
}

// The EnvoyFilter's patch is an Envoy HttpFilter: it must load strictly,
// pass Envoy's validation and our ext_authz policy, and point at Istio's
// cluster for the tokenauthz Service.
func TestEnvoyFilterPatchesValidate(t *testing.T) {
	objs := allObjects(t)
	host, port := tokenauthzHost(t, objs)
	wantCluster := fmt.Sprintf("outbound|%d||%s", port, host)
	for _, o := range ofKind(objs, "EnvoyFilter") {
		var ef envoyFilter
		o.decode(t, &ef)
		for i, p := range ef.Spec.ConfigPatches {
			t.Run(fmt.Sprintf("%s-patch-%d", o.Metadata.Name, i), func(t *testing.T) {
				if p.ApplyTo != "HTTP_FILTER" || p.Match.Context != "SIDECAR_OUTBOUND" {
					t.Errorf("applyTo %s in %s, want HTTP_FILTER in SIDECAR_OUTBOUND", p.ApplyTo, p.Match.Context)
				}
				value, err := yaml.Marshal(&p.Patch.Value)
				if err != nil {
					t.Fatal(err)
				}
				var f hcmv3.HttpFilter
				if err := envoy.Decode(value, &f); err != nil {
					t.Fatal(err)
				}
				if err := envoy.Validate(&f); err != nil {
					t.Fatal(err)
				}
				if err := envoy.Policy(&f); err != nil {
					t.Fatal(err)
				}
				var authz extauthzv3.ExtAuthz
				if err := f.GetTypedConfig().UnmarshalTo(&authz); err != nil {
					t.Fatal(err)
				}
				if got := authz.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != wantCluster {
					t.Errorf("grpc_service cluster %q, want %q", got, wantCluster)
				}
			})
		}
	}
}

// The egress gateway hands tokenauthz each caller's SPIFFE identity (Istio
// mTLS): the partner's token goes only to the callers its config lists,
// as explain shows for the shipped config.
func TestEgressCallersThroughExplain(t *testing.T) {
	cfg := configMapConfig(t, allObjects(t))
	tests := []struct{ principal, want string }{
		{"spiffe://cluster.local/ns/shop/sa/checkout", "decision:  allow (token_injected)"},
		{"spiffe://cluster.local/ns/ops/sa/deployer", "decision:  allow (token_injected)"},
		{"spiffe://cluster.local/ns/web/sa/frontend", "decision:  deny 403 caller_not_allowed"},
		{"", "decision:  deny 403 caller_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(cmpOr(tt.principal, "no-principal"), func(t *testing.T) {
			in, err := explain.Request{Method: "GET", URL: "http://api.partner.example.com/v1/items", Principal: tt.principal}.Input()
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			explain.Write(&out, cfg, in)
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("explain:\n%s\nwant %q", out.String(), tt.want)
			}
		})
	}
}
