package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	egv1alpha1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/envoy"
	"github.com/tokenauthz/tokenauthz/scopes"
)

const envoyGatewayDir = "envoy-gateway"

// envoyGateway is deploy/envoy-gateway decoded strictly into Gateway API
// v1.6 and Envoy Gateway v1.9 types: the shared Gateway and routes, and
// each variant's policies with the tokenauthz config they assume.
type envoyGateway struct {
	shared   bundle
	variants []egVariant
}

type egVariant struct {
	name, config string // manifest file, tokenauthz config
	objs         bundle
}

func readEnvoyGateway(t *testing.T) envoyGateway {
	t.Helper()
	dir := func(name string) string { return filepath.Join(envoyGatewayDir, name) }
	return envoyGateway{
		shared: readBundle(t, dir("gateway.yaml")),
		variants: []egVariant{
			{"per-route", dir("tokenauthz/per-route.yaml"), readBundle(t, dir("per-route.yaml"))},
			{"gateway-policy", dir("tokenauthz/route-metadata.yaml"), readBundle(t, dir("gateway-policy.yaml"))},
		},
	}
}

// Every file of deploy/envoy-gateway is read, so none escapes the checks.
func TestEnvoyGatewayFilesAreAllChecked(t *testing.T) {
	found, _ := filepath.Glob(filepath.Join(envoyGatewayDir, "*.yaml"))
	configs, _ := filepath.Glob(filepath.Join(envoyGatewayDir, "tokenauthz", "*.yaml"))
	checked := []string{filepath.Join(envoyGatewayDir, "gateway.yaml")}
	for _, v := range readEnvoyGateway(t).variants {
		checked = append(checked, v.objs.name, v.config)
	}
	for _, f := range append(found, configs...) {
		if !slices.Contains(checked, f) {
			t.Errorf("%s is not checked by any test", f)
		}
	}
}

// tokenauthzService is the Service the policies must reach: the one
// deploy/kubernetes and the chart (release tokenauthz in namespace
// tokenauthz) create.
func tokenauthzService(t *testing.T) *corev1.Service {
	t.Helper()
	svc := one[*corev1.Service](t, readBundle(t, kubernetesManifest))
	chart := one[*corev1.Service](t, render(t, ""))
	if chart.Name != svc.Name || chart.Namespace != svc.Namespace || servicePort(chart, "grpc").Port != servicePort(svc, "grpc").Port {
		t.Fatalf("the chart's Service %s/%s differs from deploy/kubernetes' %s/%s", chart.Namespace, chart.Name, svc.Namespace, svc.Name)
	}
	return svc
}

// TestEnvoyGatewaySecurityPolicies: each policy calls tokenauthz's gRPC
// port, fails closed and visibly, within Envoy's check timeout bound, and
// every cross-namespace reference has its ReferenceGrant.
func TestEnvoyGatewaySecurityPolicies(t *testing.T) {
	eg := readEnvoyGateway(t)
	svc := tokenauthzService(t)
	grpcPort := servicePort(svc, "grpc")
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	for _, v := range eg.variants {
		cfg, err := config.Load(v.config)
		if err != nil {
			t.Fatal(err)
		}
		grants := all[*gwapiv1beta1.ReferenceGrant](v.objs)
		used := map[*gwapiv1beta1.ReferenceGrant]bool{}
		policies := all[*egv1alpha1.SecurityPolicy](v.objs)
		if len(policies) == 0 {
			t.Errorf("%s: no SecurityPolicy", v.name)
		}
		for _, sp := range policies {
			t.Run(v.name+"/"+sp.Name, func(t *testing.T) {
				ea := sp.Spec.ExtAuth
				if ea == nil || ea.GRPC == nil || ea.HTTP != nil {
					t.Fatal("want extAuth.grpc")
				}
				timeout := time.Duration(-1)
				if ea.Timeout != nil {
					if d, err := time.ParseDuration(string(*ea.Timeout)); err == nil {
						timeout = d
					}
				}
				checks := []check{
					{"fail-closed", show(ea.FailOpen), "false"},
					{"status-on-error", fmt.Sprint(ea.StatusOnError != nil && *ea.StatusOnError == 503), "true"},
					{"timeout-bounded", fmt.Sprint(timeout > 0 && timeout <= envoy.MaxCheckTimeout), "true"},
					// A cold check waits for a token request.
					{"timeout-exceeds-token-request-timeout", fmt.Sprint(timeout > cfg.TokenRequest.Timeout), "true"},
					{"one-backend", fmt.Sprint(len(ea.GRPC.BackendRefs), ea.GRPC.BackendRef == nil), "1 true"},
				}
				for i, ref := range ea.GRPC.BackendRefs {
					ns := string(deref(ref.Namespace, gwapiv1.Namespace(sp.Namespace)))
					group := cmpOr(string(deref(ref.Group, "")), "core")
					target := fmt.Sprintf("%s %s %s/%s:%d", group, deref(ref.Kind, "Service"), ns, ref.Name, deref(ref.Port, 0))
					checks = append(checks, check{fmt.Sprintf("backend-%d-is-tokenauthz-grpc", i), target,
						fmt.Sprintf("core Service %s/%s:%d", svc.Namespace, svc.Name, grpcPort.Port)})
					if ns != sp.Namespace {
						g := grantFor(grants, sp.Namespace, ns, string(ref.Name))
						used[g] = true
						checks = append(checks, check{fmt.Sprintf("backend-%d-granted", i), fmt.Sprint(g != nil), "true"})
					}
				}
				runChecks(t, checks)
			})
		}
		for _, g := range grants {
			if !used[g] {
				t.Errorf("%s: ReferenceGrant %s/%s grants nothing a policy uses", v.name, g.Namespace, g.Name)
			}
		}
	}
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// grantFor is the ReferenceGrant in toNS that lets SecurityPolicies of
// fromNS refer to the Service name.
func grantFor(grants []*gwapiv1beta1.ReferenceGrant, fromNS, toNS, name string) *gwapiv1beta1.ReferenceGrant {
	for _, g := range grants {
		fromOK, toOK := false, false
		for _, f := range g.Spec.From {
			fromOK = fromOK || (f.Group == egv1alpha1.GroupName && f.Kind == egv1alpha1.KindSecurityPolicy && string(f.Namespace) == fromNS)
		}
		for _, to := range g.Spec.To {
			toOK = toOK || (to.Group == "" && to.Kind == "Service" && (to.Name == nil || string(*to.Name) == name))
		}
		if g.Namespace == toNS && fromOK && toOK {
			return g
		}
	}
	return nil
}

// route is one HTTPRoute rule as tokenauthz sees it: its identity in Envoy
// Gateway's route metadata and a request it matches.
type route struct {
	id, name, namespace string // id: HTTPRoute/<namespace>/<name>[/<rule>]
	req                 scopes.Request
}

// attachedRoutes lists the rules of the HTTPRoutes attached to the Gateway
// (parent, listener and allowedRoutes checked on the way).
func attachedRoutes(t *testing.T, shared bundle) []route {
	t.Helper()
	gw := one[*gwapiv1.Gateway](t, shared)
	var out []route
	for _, hr := range all[*gwapiv1.HTTPRoute](shared) {
		attached := false
		for _, pr := range hr.Spec.ParentRefs {
			ns := string(deref(pr.Namespace, gwapiv1.Namespace(hr.Namespace)))
			attached = attached || (string(pr.Name) == gw.Name && ns == gw.Namespace && listenerAdmits(gw, pr.SectionName, hr.Namespace))
		}
		if !attached {
			t.Errorf("HTTPRoute %s/%s is not attached to Gateway %s/%s", hr.Namespace, hr.Name, gw.Namespace, gw.Name)
			continue
		}
		for _, rule := range hr.Spec.Rules {
			id := "HTTPRoute/" + hr.Namespace + "/" + hr.Name
			if rule.Name != nil {
				id += "/" + string(*rule.Name)
			}
			req := scopes.Request{Method: "GET", Path: "/", Host: string(hr.Spec.Hostnames[0])}
			if len(rule.Matches) > 0 {
				m := rule.Matches[0]
				req.Method = string(deref(m.Method, "GET"))
				if m.Path != nil {
					req.Path = deref(m.Path.Value, "/")
				}
			}
			out = append(out, route{id: id, name: hr.Name, namespace: hr.Namespace, req: req})
		}
	}
	return out
}

// listenerAdmits: the named listener exists and lets routes of ns attach.
func listenerAdmits(gw *gwapiv1.Gateway, section *gwapiv1.SectionName, ns string) bool {
	for _, l := range gw.Spec.Listeners {
		if section != nil && l.Name != *section {
			continue
		}
		ar := l.AllowedRoutes
		from := gwapiv1.NamespacesFromSame
		if ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		switch {
		case from == gwapiv1.NamespacesFromAll,
			from == gwapiv1.NamespacesFromSame && ns == gw.Namespace,
			from == gwapiv1.NamespacesFromSelector && selects(ar.Namespaces.Selector, map[string]string{"kubernetes.io/metadata.name": ns}):
			return true
		}
	}
	return false
}

// TestEnvoyGatewayPerRouteContextExtensions: each route's policy names a
// service (and endpoint) that tokenauthz/per-route.yaml has.
func TestEnvoyGatewayPerRouteContextExtensions(t *testing.T) {
	eg := readEnvoyGateway(t)
	v := eg.variants[0]
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	cfg, err := config.Load(v.config)
	if err != nil {
		t.Fatal(err)
	}
	policies := all[*egv1alpha1.SecurityPolicy](v.objs)
	for _, r := range attachedRoutes(t, eg.shared) {
		t.Run(r.id, func(t *testing.T) {
			var covering []*egv1alpha1.SecurityPolicy
			for _, sp := range policies {
				for _, ref := range sp.Spec.TargetRefs {
					if ref.Kind == "HTTPRoute" && string(ref.Name) == r.name && sp.Namespace == r.namespace {
						covering = append(covering, sp)
					}
				}
			}
			if len(covering) != 1 {
				t.Fatalf("%d SecurityPolicies target the route, want 1", len(covering))
			}
			req := r.req
			for _, ce := range covering[0].Spec.ExtAuth.ContextExtensions {
				if ce.Type != egv1alpha1.ContextExtensionValueTypeValue || ce.Value == nil {
					t.Fatalf("context extension %s: want a plain value", ce.Name)
				}
				switch ce.Name {
				case "service":
					req.Service = *ce.Value
				case "endpoint":
					req.Endpoint = *ce.Value
				default:
					t.Errorf("context extension %s: tokenauthz reads only service and endpoint", ce.Name)
				}
			}
			if req.Service == "" {
				t.Fatal("no service context extension: tokenauthz would have to guess from the Host")
			}
			if _, err := cfg.Routes.Match(req); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestEnvoyGatewayRouteMetadataClaims: the Gateway-level policy sends route
// metadata, and every route attached to its Gateway is claimed by exactly
// one service of tokenauthz/route-metadata.yaml, which claims nothing else.
// The claims are read from the file's YAML, and the file loads as config.
func TestEnvoyGatewayRouteMetadataClaims(t *testing.T) {
	eg := readEnvoyGateway(t)
	v := eg.variants[1]
	gw := one[*gwapiv1.Gateway](t, eg.shared)
	sp := one[*egv1alpha1.SecurityPolicy](t, v.objs)
	if ref := sp.Spec.TargetRefs; len(ref) != 1 || ref[0].Kind != "Gateway" || string(ref[0].Name) != gw.Name || sp.Namespace != gw.Namespace {
		t.Errorf("policy targets %v in %s, want Gateway %s/%s", ref, sp.Namespace, gw.Namespace, gw.Name)
	}
	if ea := sp.Spec.ExtAuth; ea == nil || ea.IncludeRouteMetadata == nil || !*ea.IncludeRouteMetadata || len(ea.ContextExtensions) != 0 {
		t.Error("want includeRouteMetadata: true and no contextExtensions")
	}
	claims := routeClaims(t, v.config)
	routes := attachedRoutes(t, eg.shared)
	for _, r := range routes {
		// A claim of the route covers each of its rules; a claim of a rule, that rule.
		by := slices.Clone(claims[r.id])
		if whole := strings.Join(strings.SplitN(r.id, "/", 4)[:3], "/"); whole != r.id {
			by = append(by, claims[whole]...)
		}
		if len(by) != 1 {
			t.Errorf("route %s: claimed by %v, want exactly one service", r.id, by)
		}
	}
	for id := range claims {
		if !slices.ContainsFunc(routes, func(r route) bool { return r.id == id || strings.HasPrefix(r.id, id+"/") }) {
			t.Errorf("claimed route %s is not attached to the Gateway", id)
		}
	}
	t.Run("config-loads", func(t *testing.T) {
		t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
		if _, err := config.Load(v.config); err != nil {
			t.Fatal(err)
		}
	})
}

// routeClaims maps each route identity in a config's services.*.routes to
// the services claiming it.
func routeClaims(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Routes []string `yaml:"routes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	claims := map[string][]string{}
	for name, svc := range doc.Services {
		for _, r := range svc.Routes {
			claims[r] = append(claims[r], name)
		}
	}
	return claims
}
