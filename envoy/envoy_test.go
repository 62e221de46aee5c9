package envoy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/proto"
)

// configDirs are the folders whose YAML files these tests check: this one
// and the docker-compose example's, which Envoy and tokenauthz mount.
var configDirs = []string{".", "../examples/compose"}

// Files are told apart by name: envoy*.yaml are Envoy bootstraps,
// tokenauthz*.yaml tokenauthz configurations.
const (
	bootstrapGlob  = "envoy*.yaml"
	tokenauthzGlob = "tokenauthz*.yaml"
)

// filesLike lists the files in configDirs whose name matches glob.
func filesLike(t *testing.T, glob string) []string {
	t.Helper()
	var files []string
	for _, dir := range configDirs {
		found, err := filepath.Glob(filepath.Join(dir, glob))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, found...)
	}
	if len(files) == 0 {
		t.Fatalf("no %s in %v", glob, configDirs)
	}
	return files
}

// caseName names a subtest after a file, relative to the repository root.
func caseName(path string) string {
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(filepath.Join("envoy", path))), "envoy/../")
}

func loadBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{}
	if err := Decode(data, b); err != nil {
		return nil, err
	}
	return b, errors.Join(Validate(b), Policy(b))
}

func mustLoadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadBootstrap(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// messagesIn returns every message of type T inside m (m included).
func messagesIn[T proto.Message](m proto.Message) []T {
	var found []T
	_ = walk(m.ProtoReflect(), "", func(_ string, m proto.Message) error {
		if v, ok := m.(T); ok {
			found = append(found, v)
		}
		return nil
	})
	return found
}

// extAuthzFilters returns every ext_authz filter configuration in m.
func extAuthzFilters(m proto.Message) []*extauthzv3.ExtAuthz {
	return messagesIn[*extauthzv3.ExtAuthz](m)
}

func TestBootstrapsLoadAndValidate(t *testing.T) {
	for _, path := range filesLike(t, bootstrapGlob) {
		t.Run(caseName(path), func(t *testing.T) {
			b := mustLoadBootstrap(t, path)
			if len(extAuthzFilters(b)) == 0 {
				t.Error("no ext_authz filter: nothing asks tokenauthz")
			}
		})
	}
}

func TestEveryYAMLFileHasAKnownKind(t *testing.T) {
	for _, dir := range configDirs {
		all, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, path := range all {
			t.Run(caseName(path), func(t *testing.T) {
				name := filepath.Base(path)
				isBootstrap, _ := filepath.Match(bootstrapGlob, name)
				isTokenauthz, _ := filepath.Match(tokenauthzGlob, name)
				if !isBootstrap && !isTokenauthz {
					t.Errorf("name it %s (Envoy bootstrap) or %s (tokenauthz config) so the tests check it", bootstrapGlob, tokenauthzGlob)
				}
			})
		}
	}
}

// edit changes a known-good bootstrap; it fails the test when the text it
// edits is missing, so no case passes by editing nothing.
type edit func(t *testing.T, doc string) string

func replace(old, new string) edit {
	return func(t *testing.T, doc string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("base bootstrap lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
}

// dropLine removes the first whole line containing s.
func dropLine(s string) edit {
	return func(t *testing.T, doc string) string {
		lines := strings.SplitAfter(doc, "\n")
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, s) })
		if i < 0 {
			t.Fatalf("base bootstrap lacks %q", s)
		}
		return strings.Join(slices.Delete(lines, i, i+1), "")
	}
}

func TestBrokenBootstrapsFail(t *testing.T) {
	base, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadBootstrap(base); err != nil {
		t.Fatalf("base bootstrap: %v", err)
	}
	cases := []struct {
		name string
		edit edit
		want string // in the error
	}{
		{"misspelled-field", replace("failure_mode_allow: false", "failure_mode_alow: false"), "failure_mode_alow"},
		{"misspelled-field-in-per-route-config", replace("context_extensions: {service: orders}", "context_extension: {service: orders}"), "context_extension"},
		{"wrong-type-url", replace("ext_authz.v3.ExtAuthz\n", "ext_authz.v3.ExtAuth\n"), "ExtAuth"},
		{"wrong-enum-value", replace("transport_api_version: V3", "transport_api_version: V4"), "V4"},
		{"missing-required-field-in-typed-config", dropLine("stat_prefix: egress"), "StatPrefix"},
		{"missing-required-field-in-bootstrap", dropLine("cluster_name: orders"), "ClusterName"},
		{"missing-required-grpc-cluster-name", replace("cluster_name: tokenauthz}", "cluster_name: \"\"}"), "ClusterName"},
		{"failure-mode-allow-true", replace("failure_mode_allow: false", "failure_mode_allow: true"), "failure_mode_allow"},
		{"no-transport-api-version", replace("transport_api_version: V3\n              validate_mutations", "validate_mutations"), "transport_api_version"},
		{"status-on-error-not-503", replace("status_on_error: {code: 503}", "status_on_error: {code: 403}"), "status_on_error"},
		{"timeout-too-long", replace("timeout: 2.5s", "timeout: 30s"), "timeout"},
		{"yaml-syntax", replace("admin:", "admin: ["), "yaml"},
		{"no-normalize-path", dropLine("normalize_path: true"), "normalize_path"},
		{"no-merge-slashes", dropLine("merge_slashes: true"), "merge_slashes"},
		{"escaped-slashes-kept", replace("path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT", "path_with_escaped_slashes_action: KEEP_UNCHANGED"), "path_with_escaped_slashes_action"},
		{"escaped-slashes-unset", dropLine("path_with_escaped_slashes_action"), "path_with_escaped_slashes_action"},
		{"no-strip-trailing-host-dot", dropLine("strip_trailing_host_dot: true"), "strip_trailing_host_dot"},
		{"no-validate-mutations", dropLine("validate_mutations: true"), "validate_mutations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBootstrap([]byte(tc.edit(t, string(base))))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q: %v", tc.want, err)
			}
		})
	}
}
