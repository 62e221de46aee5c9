package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tokenauthz/tokenauthz/internal/apptest"
	"github.com/tokenauthz/tokenauthz/internal/probe"
)

// world is what a cluster holds besides the bundle: the Secrets and
// ConfigMaps a user creates first, by name, key -> content.
type world struct {
	secrets, configMaps map[string]map[string]string
}

// podFiles writes under a temporary root the files the container sees:
// each volume mount, from the bundle's ConfigMaps or the world's Secrets
// and ConfigMaps, honouring items and projected sources. Absolute paths to
// mounted files in the config are moved under the root too, so the config
// loads exactly the files the pod would.
func podFiles(t *testing.T, b bundle, p pod, w world) string {
	t.Helper()
	root := t.TempDir()
	configMaps := map[string]map[string]string{}
	for name, data := range w.configMaps {
		configMaps[name] = data
	}
	for _, cm := range all[*corev1.ConfigMap](b) {
		configMaps[cm.Name] = cm.Data
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range p.spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, m := range p.c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volume mount %s: no such volume", m.Name)
		}
		mounts = append(mounts, m.MountPath)
		for path, content := range volumeFiles(t, v, configMaps, w.secrets) {
			file := filepath.Join(root, m.MountPath, path)
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfgFile := filepath.Join(root, p.flags.Config)
	text, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatalf("--config %s is not in a mounted volume: %v", p.flags.Config, err)
	}
	for _, m := range mounts {
		for _, before := range []string{" ", `"`, "'"} {
			text = []byte(strings.ReplaceAll(string(text), before+strings.TrimSuffix(m, "/")+"/", before+filepath.Join(root, m)+"/"))
		}
	}
	if err := os.WriteFile(cfgFile, text, 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// volumeFiles lists a volume's files, path -> content.
func volumeFiles(t *testing.T, v corev1.Volume, configMaps, secrets map[string]map[string]string) map[string]string {
	t.Helper()
	files := map[string]string{}
	add := func(kind, name string, data map[string]string, ok bool, items []corev1.KeyToPath) {
		if !ok {
			t.Fatalf("volume %s: %s %s is neither in the bundle nor in this test's world", v.Name, kind, name)
		}
		if len(items) == 0 {
			for k, content := range data {
				files[k] = content
			}
		}
		for _, it := range items {
			content, ok := data[it.Key]
			if !ok {
				t.Fatalf("volume %s: %s %s has no key %s", v.Name, kind, name, it.Key)
			}
			files[it.Path] = content
		}
	}
	switch {
	case v.ConfigMap != nil:
		data, ok := configMaps[v.ConfigMap.Name]
		add("ConfigMap", v.ConfigMap.Name, data, ok, v.ConfigMap.Items)
	case v.Secret != nil:
		data, ok := secrets[v.Secret.SecretName]
		add("Secret", v.Secret.SecretName, data, ok, v.Secret.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				data, ok := secrets[src.Secret.Name]
				add("Secret", src.Secret.Name, data, ok, src.Secret.Items)
			case src.ConfigMap != nil:
				data, ok := configMaps[src.ConfigMap.Name]
				add("ConfigMap", src.ConfigMap.Name, data, ok, src.ConfigMap.Items)
			default:
				t.Fatalf("volume %s: only Secret and ConfigMap projections are modelled", v.Name)
			}
		}
	default:
		t.Fatalf("volume %s: only ConfigMap, Secret and projected volumes are modelled", v.Name)
	}
	return files
}

// live is a running tokenauthz whose one issuer never answers: alive,
// never ready. Probes are asked of it to prove the binary serves them.
type live struct{ grpc, http string }

func startLive(t *testing.T) live {
	t.Helper()
	a := apptest.Parse(t, "live.yaml", `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
services:
  down: {hosts: [down], issuer: "http://127.0.0.1:1/", client_id: x, client_secret: y, grant_type: client_credentials}
`)
	return live{grpc: a.GRPCAddr(), http: a.HTTPAddr()}
}

// probe runs a pod's probe against the live tokenauthz, on the listener
// the probe's port is (by the pod's --grpc-addr/--http-addr), and says
// what it got.
func (l live) probe(t *testing.T, p pod, pr *corev1.Probe) string {
	t.Helper()
	listener := func(port int32) string {
		switch fmt.Sprint(port) {
		case listenPort(p.flags.HTTPAddr):
			return l.http
		case listenPort(p.flags.GRPCAddr):
			return l.grpc
		}
		return "127.0.0.1:1" // nothing of tokenauthz's listens there
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	switch {
	case pr == nil:
		return "no probe"
	case pr.HTTPGet != nil:
		port := p.containerPort(pr.HTTPGet.Port)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listener(port)+pr.HTTPGet.Path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Sprintf("GET %s on %d: %v", pr.HTTPGet.Path, port, err)
		}
		resp.Body.Close()
		return fmt.Sprintf("GET %s on %d: %d", pr.HTTPGet.Path, port, resp.StatusCode)
	case pr.GRPC != nil:
		service := stringOr(pr.GRPC.Service)
		status, err := probe.Health(ctx, listener(pr.GRPC.Port), service)
		if err != nil {
			return fmt.Sprintf("gRPC health %q on %d: %v", service, pr.GRPC.Port, err)
		}
		return fmt.Sprintf("gRPC health %q on %d: %s", service, pr.GRPC.Port, status)
	}
	return "a probe tokenauthz cannot answer (exec or tcpSocket)"
}
