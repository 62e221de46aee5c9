package deploy

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/scopes"
)

// imageEntrypoint is the Dockerfile's ENTRYPOINT; serveFlags are the flags
// `tokenauthz serve` accepts (cmd/tokenauthz).
var (
	imageEntrypoint = []string{"/tokenauthz", "serve"}
	serveFlags      = []string{"--config", "--grpc-addr", "--http-addr", "--log-level"}
)

type deployment struct {
	Spec struct {
		Template struct {
			Spec struct {
				SecurityContext securityContext `yaml:"securityContext"`
				Containers      []container
				Volumes         []struct {
					Name      string
					ConfigMap struct{ Name string } `yaml:"configMap"`
				}
			}
		}
	}
}

type container struct {
	Command, Args []string
	Env           []struct {
		Name      string
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	LivenessProbe   probe `yaml:"livenessProbe"`
	ReadinessProbe  probe `yaml:"readinessProbe"`
	Resources       struct{ Requests, Limits map[string]string }
	SecurityContext securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
}

type probe struct {
	HTTPGet struct {
		Path string
		Port string // a name or a number
	} `yaml:"httpGet"`
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

// flags reads "--name value" and "--name=value" pairs, failing on flags
// tokenauthz serve does not have.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		if !slices.Contains(serveFlags, "--"+strings.TrimLeft(name, "-")) {
			t.Errorf("tokenauthz serve has no flag %s", name)
		}
		out["--"+strings.TrimLeft(name, "-")] = value
	}
	return out
}

func (c container) port(nameOrNumber string) string {
	for _, p := range c.Ports {
		if p.Name == nameOrNumber {
			return strconv.Itoa(p.ContainerPort)
		}
	}
	return nameOrNumber
}

func (c container) secretEnv(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return ""
}

func (s service) port(name string) string {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return fmt.Sprintf("%d -> %s (%s)", p.Port, p.TargetPort, p.AppProtocol)
		}
	}
	return ""
}

func show(b *bool) string {
	if b == nil {
		return "unset"
	}
	return strconv.FormatBool(*b)
}

func TestDeploymentMatchesTokenauthz(t *testing.T) {
	objs := allObjects(t)
	var d deployment
	only(t, objs, "Deployment").decode(t, &d)
	var svc service
	only(t, objs, "Service").decode(t, &svc)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	argv := append(slices.Clone(c.Command), c.Args...)
	if len(c.Command) == 0 {
		argv = append(slices.Clone(imageEntrypoint), c.Args...)
	}
	if len(argv) < 2 {
		t.Fatalf("command %q", argv)
	}
	f := flags(t, argv[2:])
	grpcHost, grpcPort, _ := net.SplitHostPort(f["--grpc-addr"])
	httpHost, httpPort, _ := net.SplitHostPort(f["--http-addr"])
	wantGRPC, wantHTTP := defaultPorts(t)
	configMount := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == path.Dir(f["--config"]) {
			configMount = m.Name
		}
	}
	configMap := ""
	for _, v := range pod.Volumes {
		if v.Name == configMount {
			configMap = v.ConfigMap.Name
		}
	}
	checks := []struct{ name, got, want string }{
		{"runs-tokenauthz-serve", strings.Join(argv[:2], " "), strings.Join(imageEntrypoint, " ")},
		{"grpc-addr-default-port", grpcPort, wantGRPC},
		{"http-addr-default-port", httpPort, wantHTTP},
		{"grpc-addr-all-interfaces", grpcHost, "0.0.0.0"},
		{"http-addr-all-interfaces", httpHost, "0.0.0.0"},
		{"config-file-from-configmap", configMap + ":" + path.Base(f["--config"]), only(t, objs, "ConfigMap").Metadata.Name + ":config.yaml"},
		{"grpc-container-port", c.port("grpc"), wantGRPC},
		{"http-container-port", c.port("http"), wantHTTP},
		{"liveness-healthz", c.LivenessProbe.HTTPGet.Path + " on " + c.port(c.LivenessProbe.HTTPGet.Port), "/healthz on " + wantHTTP},
		{"readiness-readyz", c.ReadinessProbe.HTTPGet.Path + " on " + c.port(c.ReadinessProbe.HTTPGet.Port), "/readyz on " + wantHTTP},
		{"client-secret-from-secret", c.secretEnv("TOKENAUTHZ_CLIENT_SECRET"), "tokenauthz-client/client-secret"},
		{"resources-set", fmt.Sprint(c.Resources.Requests["cpu"] != "", c.Resources.Requests["memory"] != "", c.Resources.Limits["memory"] != ""), "true true true"},
		{"pod-runs-as-non-root", show(pod.SecurityContext.RunAsNonRoot), "true"},
		{"read-only-root-filesystem", show(c.SecurityContext.ReadOnlyRootFilesystem), "true"},
		{"no-privilege-escalation", show(c.SecurityContext.AllowPrivilegeEscalation), "false"},
		{"service-grpc-port", svc.port("grpc"), wantGRPC + " -> grpc (grpc)"},
		{"service-http-port", svc.port("http"), wantHTTP + " -> http (http)"},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
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

func TestConfigMapConfigParses(t *testing.T) {
	cfg := configMapConfig(t, allObjects(t))
	if len(cfg.Routes.Services()) == 0 {
		t.Error("no services")
	}
}

// hostMatches reports whether tokenauthz picks a service for host alone, as
// it must when Istio's CUSTOM action sends no context_extensions.
func hostMatches(cfg *config.Config, host string) error {
	_, err := cfg.Routes.Match(scopes.Request{Host: host, Path: "/", Method: "GET"})
	return err
}
