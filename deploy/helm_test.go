package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	chartDir = "helm/tokenauthz"
	// minKubeVersion is the oldest Kubernetes the chart supports (Chart.yaml
	// kubeVersion: preStop sleep); the tests render for it.
	minKubeVersion = "1.30.0"
	// release and namespace as deploy/istio expects them
	// (tokenauthz.tokenauthz.svc.cluster.local).
	release, namespace = "tokenauthz", "tokenauthz"
)

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testtools.Path(t, "helm", "TOKENAUTHZ_HELM"), args...).CombinedOutput()
	return string(out), err
}

// render runs helm template with a values file ("" for the defaults) and
// --set pairs, and decodes every object strictly.
func render(t *testing.T, values string, set ...string) bundle {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace, "--kube-version", minKubeVersion}
	if values != "" {
		args = append(args, "-f", chartDir+"/"+values)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	b, err := decodeBundle("helm template -f "+values, []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// valuesFiles are the chart's example values, rendered by every test.
var valuesFiles = []string{"", "ci/minimal-values.yaml", "ci/production-values.yaml", "ci/istio-egress-values.yaml", "ci/existing-configmap-values.yaml"}

func TestHelmLint(t *testing.T) {
	for _, values := range valuesFiles {
		t.Run(cmpOr(values, "default-values"), func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir, "--kube-version", minKubeVersion}
			if values != "" {
				args = append(args, "-f", chartDir+"/"+values)
			}
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// testWorld holds the Secrets and ConfigMaps the values files tell users
// to create, with contents tokenauthz accepts: a CA certificate, 32-byte
// cache keys, secrets.
func testWorld(t *testing.T) world {
	t.Helper()
	ca := testCA(t)
	key := make([]byte, 32)
	rand.Read(key)
	return world{
		secrets: map[string]map[string]string{
			"tokenauthz-client":         {"client-secret": "client-secret-value"},
			"tokenauthz-billing-client": {"client-secret": "billing-secret-value\n"},
			"idp-ca":                    {"ca.crt": ca},
			"tokenauthz-redis":          {"password": "redis-password"},
			"tokenauthz-cache-keys":     {"cache-keys": base64.StdEncoding.EncodeToString(key) + "\n"},
			"redis-tls":                 {"ca.crt": ca},
		},
		configMaps: map[string]map[string]string{
			"platform-tokenauthz-config": {"config.yaml": "defaults: {token_url: https://login.internal/token, client_id: a, client_secret: b}\n" +
				"services: {orders: {hosts: [orders], grant_type: client_credentials}}\n"},
		},
	}
}

func testCA(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestHelmTemplate renders the chart with each values file, decodes every
// object strictly into the Kubernetes API types, and cross-checks them with
// the binary (flags, ports, probes against a live tokenauthz), with each
// other (selectors, Service and container ports, HPA target, scraped port)
// and with the config the pod's volumes hold, loaded as tokenauthz would.
func TestHelmTemplate(t *testing.T) {
	w := testWorld(t)
	cases := []struct {
		values string
		want   expect
		extra  func(t *testing.T, b bundle, p pod, cfg *config.Config)
	}{
		{"", expect{pdb: true, spread: true, minReplicas: 2}, nil},
		{"ci/minimal-values.yaml", expect{pdb: true, spread: true, minReplicas: 2}, nil},
		{"ci/production-values.yaml", expect{pdb: true, spread: true, hpa: true, serviceMonitor: true, networkPolicy: true, prometheusRule: true, dashboard: true, minReplicas: 3}, nil},
		{"ci/istio-egress-values.yaml", expect{pdb: true, spread: true, networkPolicy: true, minReplicas: 2}, checkIstioEgress},
		{"ci/existing-configmap-values.yaml", expect{minReplicas: 1}, func(t *testing.T, b bundle, p pod, _ *config.Config) {
			if n := len(all[*corev1.ConfigMap](b)); n != 0 {
				t.Errorf("%d ConfigMaps rendered, want none: the existing one is used", n)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(cmpOr(tc.values, "default-values"), func(t *testing.T) {
			b := render(t, tc.values)
			p := tokenauthzPod(t, b)
			checkPod(t, b, p)
			checkRelations(t, b, p, tc.want)
			checkMonitoring(t, b, tc.want)
			var cfg *config.Config
			t.Run("config-loads-from-the-pod-volumes", func(t *testing.T) {
				cfg = loadPodConfig(t, b, p, w)
				checkAdmin(t, b, p, cfg)
			})
			if tc.extra != nil {
				t.Run("specific", func(t *testing.T) { tc.extra(t, b, p, cfg) })
			}
		})
	}
}

// checkIstioEgress: deploy/istio's mesh provider reaches this release's
// Service, and every host its CUSTOM policy covers has a service.
func checkIstioEgress(t *testing.T, b bundle, p pod, cfg *config.Config) {
	svc := one[*corev1.Service](t, b)
	host, port := meshProvider(t)
	if got := svc.Name + "." + svc.Namespace + ".svc.cluster.local"; got != host {
		t.Errorf("Service %s, the mesh provider calls %s", got, host)
	}
	if sp := servicePort(svc, "grpc"); sp == nil || int(sp.Port) != port {
		t.Errorf("Service grpc port %v, the mesh provider calls port %d", sp, port)
	}
	if cfg == nil {
		t.Fatal("no config")
	}
	for _, h := range egressPolicyHosts(t) {
		if err := hostMatches(cfg, strings.TrimSuffix(h, ":*")); err != nil {
			t.Errorf("AuthorizationPolicy host %s: %v", h, err)
		}
	}
}

// TestHelmRejectsBadValues: values that would deploy something broken fail
// at helm template, saying which value.
func TestHelmRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"shared-cache-without-addresses", []string{"sharedCache.enabled=true", "sharedCache.keysSecret.name=k"}, "sharedCache.enabled needs sharedCache.addresses"},
		{"shared-cache-without-keys", []string{"sharedCache.enabled=true", "sharedCache.addresses={redis:6379}"}, "sharedCache.enabled needs sharedCache.keysSecret.name"},
		{"network-policy-for-every-namespace", []string{"networkPolicy.enabled=true", "networkPolicy.envoyNamespaceSelector=null"}, "networkPolicy.envoyNamespaceSelector"},
		{"listen-in-config", []string{"config.data.listen.grpc=0.0.0.0:1"}, "config.data.listen: leave it out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", release, chartDir, "--kube-version", minKubeVersion}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Fatalf("helm template: %v, want a failure saying %q:\n%s", err, tt.want, out)
			}
		})
	}
}

// meshProvider is the service and port of deploy/istio's tokenauthz
// extension provider.
func meshProvider(t *testing.T) (string, int) {
	t.Helper()
	var op istioOperator
	only(t, allObjects(t), "IstioOperator").decode(t, &op)
	for _, p := range op.Spec.MeshConfig.ExtensionProviders {
		if p.Name == "tokenauthz" && p.EnvoyExtAuthzGrpc != nil {
			return p.EnvoyExtAuthzGrpc.Service, p.EnvoyExtAuthzGrpc.Port
		}
	}
	t.Fatal("deploy/istio has no envoyExtAuthzGrpc provider named tokenauthz")
	return "", 0
}

// egressPolicyHosts are the hosts deploy/istio's CUSTOM policies cover.
func egressPolicyHosts(t *testing.T) []string {
	t.Helper()
	var hosts []string
	for _, o := range ofKind(allObjects(t), "AuthorizationPolicy") {
		var ap authorizationPolicy
		o.decode(t, &ap)
		for _, r := range ap.Spec.Rules {
			for _, to := range r.To {
				hosts = append(hosts, to.Operation.Hosts...)
			}
		}
	}
	if len(hosts) == 0 {
		t.Fatal("no hosts in deploy/istio's AuthorizationPolicies")
	}
	return hosts
}
