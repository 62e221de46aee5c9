package deploy

import (
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
)

// imageEntrypoint is the Dockerfile's ENTRYPOINT.
var imageEntrypoint = []string{"/tokenauthz", "serve"}

// pod is the tokenauthz pod of a bundle: its Deployment, template and the
// one container, with the serve flags its command line sets.
type pod struct {
	deployment *appsv1.Deployment
	spec       corev1.PodSpec
	labels     map[string]string
	c          corev1.Container
	flags      app.ServeFlags
}

// tokenauthzPod finds the Deployment's container and parses its command
// line with the flag set `tokenauthz serve` itself uses.
func tokenauthzPod(t *testing.T, b bundle) pod {
	t.Helper()
	d := one[*appsv1.Deployment](t, b)
	p := pod{deployment: d, spec: d.Spec.Template.Spec, labels: d.Spec.Template.Labels}
	if len(p.spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", b.name, len(p.spec.Containers))
	}
	p.c = p.spec.Containers[0]
	argv := append(slices.Clone(p.c.Command), p.c.Args...)
	if len(p.c.Command) == 0 {
		argv = append(slices.Clone(imageEntrypoint), p.c.Args...)
	}
	if len(argv) < 2 || !slices.Equal(argv[:2], imageEntrypoint) {
		t.Fatalf("%s: command line %q does not run %q", b.name, argv, imageEntrypoint)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p.flags.Register(fs)
	if err := fs.Parse(argv[2:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("%s: tokenauthz serve rejects %q: %v (stray %q)", b.name, argv[2:], err, fs.Args())
	}
	return p
}

// containerPort resolves a port by name or number to the container's port
// number; 0 if the container has no such port.
func (p pod) containerPort(port intstr.IntOrString) int32 {
	for _, cp := range p.c.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// listenPort is the port of a --grpc-addr/--http-addr value bound to all
// interfaces (a pod is reached on its IP, not on loopback).
func listenPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || (host != "0.0.0.0" && host != "" && host != "::") {
		return "not bound to all interfaces: " + addr
	}
	return port
}

type check struct{ name, got, want string }

func runChecks(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
}

// checkPod checks the pod against the binary: flags, ports, the Service,
// probes against a live tokenauthz, security, and the stop sequence.
func checkPod(t *testing.T, b bundle, p pod) {
	t.Helper()
	grpcPort := p.containerPort(intstr.FromString("grpc"))
	httpPort := p.containerPort(intstr.FromString("http"))
	svc := one[*corev1.Service](t, b)
	live := startLive(t)
	sc, psc := p.c.SecurityContext, p.spec.SecurityContext
	checks := []check{
		{"grpc-addr-is-the-grpc-container-port", listenPort(p.flags.GRPCAddr), fmt.Sprint(grpcPort)},
		{"http-addr-is-the-http-container-port", listenPort(p.flags.HTTPAddr), fmt.Sprint(httpPort)},
		{"service-selects-the-pods", fmt.Sprint(selectsMap(svc.Spec.Selector, p.labels)), "true"},
		{"liveness-is-healthz", live.probe(t, p, p.c.LivenessProbe), "GET /healthz on " + fmt.Sprint(httpPort) + ": 200"},
		{"readiness-is-readyz-or-grpc-health", live.probe(t, p, p.c.ReadinessProbe), readinessWant(p, httpPort, grpcPort)},
		{"runs-as-non-root", fmt.Sprint(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot), "true"},
		{"read-only-root-filesystem", fmt.Sprint(sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem), "true"},
		{"no-privilege-escalation", fmt.Sprint(sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation), "true"},
		{"drops-all-capabilities", fmt.Sprint(sc != nil && sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL")), "true"},
		{"resources-set", fmt.Sprint(!p.c.Resources.Requests.Cpu().IsZero(), !p.c.Resources.Requests.Memory().IsZero(), !p.c.Resources.Limits.Memory().IsZero()), "true true true"},
		{"grace-covers-prestop-drain-and-shutdown", graceCovers(p), "true"},
	}
	for _, sp := range svc.Spec.Ports {
		checks = append(checks, check{"service-port-" + sp.Name + "-targets-its-container-port",
			fmt.Sprint(p.containerPort(sp.TargetPort)), fmt.Sprint(p.containerPort(intstr.FromString(sp.Name)))})
	}
	for _, name := range []string{"grpc", "http"} {
		checks = append(checks, check{"service-has-" + name + "-port", fmt.Sprint(servicePort(svc, name) != nil), "true"})
	}
	if sp := servicePort(svc, "grpc"); sp != nil {
		checks = append(checks, check{"service-grpc-app-protocol", fmt.Sprint(sp.AppProtocol != nil && *sp.AppProtocol == "grpc"), "true"})
	}
	runChecks(t, checks)
}

func readinessWant(p pod, httpPort, grpcPort int32) string {
	if p.c.ReadinessProbe != nil && p.c.ReadinessProbe.GRPC != nil {
		return "gRPC health " + strconv.Quote(stringOr(p.c.ReadinessProbe.GRPC.Service)) + " on " + fmt.Sprint(grpcPort) + ": NOT_SERVING" // the live server's issuer never answers
	}
	return "GET /readyz on " + fmt.Sprint(httpPort) + ": 503"
}

func stringOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func servicePort(svc *corev1.Service, name string) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == name {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// selectsMap reports whether a Service-style selector picks these labels.
func selectsMap(sel, podLabels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if podLabels[k] != v {
			return false
		}
	}
	return true
}

// graceCovers reports whether terminationGracePeriodSeconds outlasts the
// stop sequence: preStop sleep, then tokenauthz's --drain, then its
// shutdown grace for in-flight checks.
func graceCovers(p pod) string {
	var sleep time.Duration
	if l := p.c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		sleep = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := p.spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if need := sleep + p.flags.Drain + app.ShutdownGrace; grace < need {
		return fmt.Sprintf("grace %v < preStop %v + drain %v + shutdown %v", grace, sleep, p.flags.Drain, app.ShutdownGrace)
	}
	return "true"
}

// checkAdmin: the status page stays on the pod's loopback (an operator
// reaches it with kubectl port-forward): the admin address its flags and
// config give is loopback, and no container or Service port is its port.
func checkAdmin(t *testing.T, b bundle, p pod, cfg *config.Config) {
	t.Helper()
	addr := cmpOr(p.flags.AdminAddr, cfg.Listen.Admin)
	host, port, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	checks := []check{{"admin-addr-is-loopback", fmt.Sprint(err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())), "true"}}
	for _, cp := range p.c.Ports {
		checks = append(checks, check{"container-port-" + cp.Name + "-is-not-the-admin-port", fmt.Sprint(fmt.Sprint(cp.ContainerPort) == port), "false"})
	}
	for _, sp := range one[*corev1.Service](t, b).Spec.Ports {
		target := fmt.Sprint(p.containerPort(sp.TargetPort))
		checks = append(checks, check{"service-port-" + sp.Name + "-is-not-the-admin-port", fmt.Sprint(target == port), "false"})
	}
	runChecks(t, checks)
}

// loadPodConfig loads the config as the pod would see it (podFiles), with
// the environment it gets from Secrets.
func loadPodConfig(t *testing.T, b bundle, p pod, w world) *config.Config {
	t.Helper()
	root := podFiles(t, b, p, w)
	for _, e := range p.c.Env {
		switch ref := e.ValueFrom; {
		case ref == nil:
			t.Setenv(e.Name, e.Value)
		case ref.SecretKeyRef != nil:
			v, ok := w.secrets[ref.SecretKeyRef.Name][ref.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %s in this test's world", e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
			}
			t.Setenv(e.Name, v)
		default:
			t.Fatalf("env %s: only values and secretKeyRefs are modelled", e.Name)
		}
	}
	cfg, err := config.Load(root + p.flags.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
