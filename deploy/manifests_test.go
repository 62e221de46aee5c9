package deploy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// knownKinds is every apiVersion and kind the manifests may use.
var knownKinds = map[string][]string{
	"v1":                           {"Namespace", "ServiceAccount", "ConfigMap", "Service"},
	"apps/v1":                      {"Deployment"},
	"policy/v1":                    {"PodDisruptionBudget"},
	"networking.k8s.io/v1":         {"NetworkPolicy"},
	"install.istio.io/v1alpha1":    {"IstioOperator"},
	"networking.istio.io/v1":       {"ServiceEntry", "Gateway", "DestinationRule", "VirtualService"},
	"networking.istio.io/v1alpha3": {"EnvoyFilter"},
	"security.istio.io/v1":         {"AuthorizationPolicy"},
}

// object is one document of a manifest file.
type object struct {
	File       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	node *yaml.Node
}

// decode decodes the whole document into v.
func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.File, o.Kind, o.Metadata.Name, err)
	}
}

func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, glob := range []string{"kubernetes/*.yaml", "istio/*.yaml"} {
		found, _ := filepath.Glob(glob)
		files = append(files, found...)
	}
	if len(files) == 0 {
		t.Fatal("no manifests under kubernetes/ or istio/")
	}
	return files
}

// readObjects parses every document of a multi-document YAML file.
func readObjects(path string) ([]object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var objs []object
	dec := yaml.NewDecoder(f)
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		o := object{File: path, node: &n}
		if err := n.Decode(&o); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
}

func allObjects(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, path := range manifestFiles(t) {
		objs, err := readObjects(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		all = append(all, objs...)
	}
	return all
}

// only returns the one object of kind (failing unless there is exactly one).
func only(t *testing.T, objs []object, kind string) object {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want one %s in the manifests, found %d", kind, len(found))
	}
	return found[0]
}

func ofKind(objs []object, kind string) []object {
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	return found
}

func TestManifestsParseWithKnownKinds(t *testing.T) {
	for _, path := range manifestFiles(t) {
		t.Run(filepath.ToSlash(path), func(t *testing.T) {
			objs, err := readObjects(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("no documents")
			}
			for i, o := range objs {
				if !slices.Contains(knownKinds[o.APIVersion], o.Kind) {
					t.Errorf("document %d: unknown apiVersion/kind %s %s", i, o.APIVersion, o.Kind)
				}
				if o.Metadata.Name == "" {
					t.Errorf("document %d (%s): no metadata.name", i, o.Kind)
				}
			}
		})
	}
}
