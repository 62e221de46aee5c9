package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	egv1alpha1 "github.com/envoyproxy/gateway/api/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsyaml "sigs.k8s.io/yaml"
)

// kubeTypes gives, per "apiVersion kind", the Go type an object must
// decode into: the Kubernetes API's, prometheus-operator's (ServiceMonitor,
// PrometheusRule),
// Gateway API's and Envoy Gateway's.
var kubeTypes = map[string]func() any{
	"gateway.networking.k8s.io/v1 GatewayClass":        func() any { return &gwapiv1.GatewayClass{} },
	"gateway.networking.k8s.io/v1 Gateway":             func() any { return &gwapiv1.Gateway{} },
	"gateway.networking.k8s.io/v1 HTTPRoute":           func() any { return &gwapiv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1beta1 ReferenceGrant": func() any { return &gwapiv1beta1.ReferenceGrant{} },
	"gateway.envoyproxy.io/v1alpha1 SecurityPolicy":    func() any { return &egv1alpha1.SecurityPolicy{} },
	"v1 Namespace":                            func() any { return &corev1.Namespace{} },
	"v1 ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1 ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1 Service":                              func() any { return &corev1.Service{} },
	"apps/v1 Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1 PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2 HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1 NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1 ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1 PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

// splitDocuments returns each document of a multi-document YAML stream,
// re-encoded alone; empty documents (helm's leading ---) are dropped.
func splitDocuments(data []byte) ([][]byte, error) {
	var docs [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return docs, nil
		} else if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 || n.Content[0].Kind == 0 {
			continue
		}
		doc, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// decodeStrict decodes one YAML document into v: an unknown or repeated
// field, or a value of the wrong type, is an error (sigs.k8s.io/yaml turns
// YAML into JSON and decodes it with unknown fields disallowed, as the API
// server's strict field validation does).
func decodeStrict(doc []byte, v any) error {
	return sigsyaml.UnmarshalStrict(doc, v)
}

// bundle is one deployable set of typed Kubernetes objects: a manifest file,
// or one `helm template` render.
type bundle struct {
	name string
	objs []any
}

// decodeBundle decodes every document of data strictly into its API type;
// a kind without one in kubeTypes is an error.
func decodeBundle(name string, data []byte) (bundle, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return bundle{}, fmt.Errorf("%s: %w", name, err)
	}
	b := bundle{name: name}
	var errs []error
	for i, doc := range docs {
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			return bundle{}, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		newObj, ok := kubeTypes[tm.APIVersion+" "+tm.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: document %d: no API type known for %s %s", name, i, tm.APIVersion, tm.Kind))
			continue
		}
		obj := newObj()
		if err := decodeStrict(doc, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s document %d: %w", name, tm.Kind, i, err))
			continue
		}
		b.objs = append(b.objs, obj)
	}
	return b, errors.Join(errs...)
}

func readBundle(t *testing.T, path string) bundle {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBundle(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// all returns the bundle's objects of type T.
func all[T any](b bundle) []T {
	var out []T
	for _, o := range b.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the bundle's only object of type T, failing unless there is
// exactly one.
func one[T any](t *testing.T, b bundle) T {
	t.Helper()
	found := all[T](b)
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s: want one %T, found %d", b.name, zero, len(found))
	}
	return found[0]
}

// selects reports whether a label selector picks a pod with these labels;
// a nil or empty selector selects nothing here, which is never what a
// manifest means.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(podLabels))
}
