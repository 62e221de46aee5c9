package deploy

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/apptest"
	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	repoRoot    = ".."
	composeFile = "docker-compose.yaml"
	exampleDir  = "examples/compose"
)

func TestDockerComposeConfigIsValid(t *testing.T) {
	cmd := exec.Command(testtools.Path(t, "docker-compose", "TOKENAUTHZ_DOCKER_COMPOSE"), "-f", composeFile, "config", "-q")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}

type composeService struct {
	Build       any // "dir" or {context, dockerfile}
	Command     []string
	Volumes     []any
	Environment map[string]string
	Healthcheck struct{ Test []string }
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
}

type composeFileDoc struct {
	Version  *string // obsolete in the Compose Specification: must be absent
	Services map[string]composeService
}

func readComposeFile(t *testing.T) composeFileDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFileDoc
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func readCompose(t *testing.T) map[string]composeService { return readComposeFile(t).Services }

// TestComposeWaitsForHealthyTokenauthz: no obsolete version key; every
// dependency waits on a condition, Envoy on tokenauthz being healthy; and
// tokenauthz's healthcheck is `tokenauthz health` on the gRPC port its
// config listens on, which, run by a built binary against a ready
// tokenauthz, exits 0.
func TestComposeWaitsForHealthyTokenauthz(t *testing.T) {
	c := readComposeFile(t)
	if c.Version != nil {
		t.Errorf("version: %q is obsolete in the Compose Specification", *c.Version)
	}
	for name, svc := range c.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == "" {
				t.Errorf("%s depends on %s without a condition", name, dep)
			}
		}
	}
	if got := c.Services["envoy"].DependsOn["tokenauthz"].Condition; got != "service_healthy" {
		t.Errorf("envoy waits for tokenauthz %q, want service_healthy", got)
	}
	test := c.Services["tokenauthz"].Healthcheck.Test
	if len(test) < 3 || test[0] != "CMD" || test[1] != "/tokenauthz" || test[2] != "health" {
		t.Fatalf("tokenauthz healthcheck %q, want [CMD /tokenauthz health ...]: the distroless image has no shell or curl", test)
	}
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", "s")
	cfg, err := config.Load(filepath.Join(repoRoot, exampleDir, "tokenauthz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, grpcPort, _ := net.SplitHostPort(cfg.Listen.GRPC)
	args := slices.Clone(test[3:])
	addr := ""
	for i, a := range args {
		if a == "--addr" && i+1 < len(args) {
			addr = args[i+1]
			args[i+1] = readyTokenauthz(t) // the same flags, against a live server
		}
	}
	if host, port, _ := net.SplitHostPort(addr); host != "127.0.0.1" || port != grpcPort {
		t.Errorf("healthcheck --addr %q, want 127.0.0.1:%s (the container's own listen.grpc)", addr, grpcPort)
	}
	out, err := exec.Command(builtTokenauthz(t), append([]string{"health"}, args...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "SERVING" {
		t.Errorf("tokenauthz health %q against a ready server: %v %s", args, err, out)
	}
}

// readyTokenauthz serves a config with a fixed token_url, ready at once,
// and returns its gRPC address.
func readyTokenauthz(t *testing.T) string {
	t.Helper()
	return apptest.Parse(t, "ready.yaml", "listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}\n"+
		"services: {a: {hosts: [a], token_url: https://idp.invalid/token, client_id: x, client_secret: y, grant_type: client_credentials}}\n").GRPCAddr()
}

// builtTokenauthz builds the binary the image runs.
func builtTokenauthz(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tokenauthz")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/tokenauthz").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// localPaths lists what a service reads from the repository: its build
// context and Dockerfile, and the sources of its bind mounts.
func (s composeService) localPaths() []string {
	var paths []string
	switch b := s.Build.(type) {
	case string:
		paths = append(paths, b, filepath.Join(b, "Dockerfile"))
	case map[string]any:
		ctx, _ := b["context"].(string)
		file, _ := b["dockerfile"].(string)
		paths = append(paths, ctx, filepath.Join(ctx, cmpOr(file, "Dockerfile")))
	}
	for _, v := range s.Volumes {
		src := ""
		switch v := v.(type) {
		case string:
			src, _, _ = strings.Cut(v, ":")
		case map[string]any:
			src, _ = v["source"].(string)
		}
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") { // else a named volume
			paths = append(paths, src)
		}
	}
	return paths
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestComposeBuildsAndMountsExist(t *testing.T) {
	services := readCompose(t)
	mounted := map[string]bool{}
	for name, svc := range services {
		t.Run(name, func(t *testing.T) {
			for _, p := range svc.localPaths() {
				if filepath.IsAbs(p) {
					t.Errorf("%s: absolute path, not in the repository", p)
					continue
				}
				mounted[filepath.ToSlash(filepath.Clean(p))] = true
				if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// The configs the containers run are the ones the tests check: the
	// envoy package validates examples/compose/envoy*.yaml, the test below
	// the realm against tokenauthz.yaml.
	for _, want := range []string{"Dockerfile", exampleDir + "/envoy.yaml", exampleDir + "/tokenauthz.yaml", exampleDir + "/realm.json"} {
		if !mounted[want] {
			t.Errorf("docker-compose.yaml does not build from or mount %s", want)
		}
	}
}

type realm struct {
	Realm        string
	ClientScopes []struct{ Name string } `json:"clientScopes"`
	Clients      []struct {
		ClientID               string            `json:"clientId"`
		Secret                 string            `json:"secret"`
		ServiceAccountsEnabled bool              `json:"serviceAccountsEnabled"`
		Attributes             map[string]string `json:"attributes"`
		OptionalClientScopes   []string          `json:"optionalClientScopes"`
	}
}

// The compose tokenauthz config must work against the imported realm: its
// client exists with the secret compose passes, may use client credentials
// and token exchange, and every scope and audience it asks for is there.
func TestComposeRealmMatchesTokenauthzConfig(t *testing.T) {
	t.Setenv("TOKENAUTHZ_CLIENT_SECRET", readCompose(t)["tokenauthz"].Environment["TOKENAUTHZ_CLIENT_SECRET"])
	cfg, err := config.Load(filepath.Join(repoRoot, exampleDir, "tokenauthz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r realm
	data, err := os.ReadFile(filepath.Join(repoRoot, exampleDir, "realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("realm.json: %v", err)
	}
	clients := map[string]int{}
	for i, c := range r.Clients {
		clients[c.ClientID] = i
	}
	for _, svc := range cfg.Routes.Services() {
		t.Run(svc.Name, func(t *testing.T) {
			s := svc.Settings
			if !strings.Contains(s.TokenEndpoint.TokenURL, "/realms/"+r.Realm+"/") {
				t.Errorf("token_url %s is not realm %s's", s.TokenEndpoint.TokenURL, r.Realm)
			}
			i, ok := clients[s.ClientID]
			if !ok {
				t.Fatalf("realm has no client %s", s.ClientID)
			}
			c := r.Clients[i]
			if c.Secret != s.Secret.Value || s.Secret.Value == "" {
				t.Errorf("client %s: secret differs from TOKENAUTHZ_CLIENT_SECRET in %s", c.ClientID, composeFile)
			}
			if !c.ServiceAccountsEnabled || c.Attributes["standard.token.exchange.enabled"] != "true" {
				t.Errorf("client %s: needs service accounts (client credentials) and standard token exchange", c.ClientID)
			}
			for _, sc := range s.Scope {
				if !slices.Contains(c.OptionalClientScopes, sc) {
					t.Errorf("scope %s is not an optional client scope of %s", sc, c.ClientID)
				}
			}
			if _, ok := clients[s.Audience]; s.Audience != "" && !ok {
				t.Errorf("audience %s is no client of the realm (Keycloak refuses it)", s.Audience)
			}
		})
	}
}

// The Dockerfile's fixed points, which the compose file and the Kubernetes
// manifests rely on.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := ""
	for line := range strings.Lines(string(gomod)) {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			goVersion = strings.TrimSpace(v) // to the patch release: the build is reproducible
		}
	}
	grpc, http := defaultPorts(t)
	cases := []struct{ name, want string }{
		{"builder-matches-go-mod", "FROM golang:" + goVersion + " AS build"},
		{"static-trimmed-build", "CGO_ENABLED=0 go build -trimpath"},
		{"builds-the-command", "./cmd/tokenauthz"},
		{"distroless-nonroot", "FROM gcr.io/distroless/static-debian12:nonroot"},
		{"runs-as-nonroot", "USER nonroot:nonroot"},
		{"exposes-default-ports", "EXPOSE " + grpc + " " + http},
		{"entrypoint-serve", `ENTRYPOINT ["` + strings.Join(imageEntrypoint, `", "`) + `"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(data), tc.want) {
				t.Errorf("Dockerfile lacks %q", tc.want)
			}
		})
	}
	t.Run("dockerignore-keeps-sources", func(t *testing.T) {
		f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for s := bufio.NewScanner(f); s.Scan(); {
			pattern := strings.TrimPrefix(strings.TrimSpace(s.Text()), "/")
			for _, need := range []string{"go.mod", "go.sum", "cmd", "config", "authz", "tokens", "scopes", "internal"} {
				if ok, _ := filepath.Match(pattern, need); ok {
					t.Errorf(".dockerignore pattern %q drops %s, which the build needs", s.Text(), need)
				}
			}
		}
	})
}
