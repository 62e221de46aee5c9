package deploy

import (
	"net"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

const kubernetesManifest = "kubernetes/tokenauthz.yaml"

// TestKubernetesManifest decodes deploy/kubernetes strictly into the
// Kubernetes API types and runs the chart's cross-checks on it: the binary's
// flags and probes, selectors, the stop sequence, and the config its
// ConfigMap holds; pods call each other by short in-namespace names.
func TestKubernetesManifest(t *testing.T) {
	b := readBundle(t, kubernetesManifest)
	p := tokenauthzPod(t, b)
	checkPod(t, b, p)
	checkRelations(t, b, p, expect{pdb: true, spread: true, networkPolicy: true, minReplicas: 2})
	t.Run("config-loads-from-the-pod-volumes", func(t *testing.T) {
		cfg := loadPodConfig(t, b, p, world{secrets: map[string]map[string]string{"tokenauthz-client": {"client-secret": "s"}}})
		checkAdmin(t, b, p, cfg)
		for _, host := range []string{"orders", "orders:8080", "api.partner.example.com"} {
			if err := hostMatches(cfg, host); err != nil {
				t.Errorf("host %s: %v", host, err)
			}
		}
	})
	t.Run("one-namespace", func(t *testing.T) {
		ns := one[*corev1.Namespace](t, b).Name
		for _, o := range b.objs {
			if m, ok := o.(metav1.Object); ok && o != any(one[*corev1.Namespace](t, b)) && m.GetNamespace() != ns {
				t.Errorf("%T %s in namespace %q, want %q", o, m.GetName(), m.GetNamespace(), ns)
			}
		}
	})
}

type service struct {
	Spec struct {
		Ports []struct {
			Name        string
			Port        int
			TargetPort  string `yaml:"targetPort"`
			AppProtocol string `yaml:"appProtocol"`
		}
	}
}

// defaultPorts are tokenauthz's own default listen ports.
func defaultPorts(t *testing.T) (grpc, http string) {
	t.Helper()
	cfg, err := config.Parse("defaults.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, grpc, _ = net.SplitHostPort(cfg.Listen.GRPC)
	_, http, _ = net.SplitHostPort(cfg.Listen.HTTP)
	return grpc, http
}

func show(b *bool) string {
	if b == nil {
		return "unset"
	}
	return strconv.FormatBool(*b)
}

// configMapConfig parses the ConfigMap's tokenauthz config as tokenauthz would.
func configMapConfig(t *testing.T, objs []object) *config.Config {
	t.Helper()
	var cm struct{ Data map[string]string }
	only(t, objs, "ConfigMap").decode(t, &cm)
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "test-secret")
	cfg, err := config.Parse("configmap/config.yaml", []byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// hostMatches reports whether tokenauthz picks a service for host alone, as
// it must when Istio's CUSTOM action sends no context_extensions.
func hostMatches(cfg *config.Config, host string) error {
	_, err := cfg.Routes.Match(scopes.Request{Host: host, Path: "/", Method: "GET"})
	return err
}
