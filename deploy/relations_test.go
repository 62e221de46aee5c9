package deploy

import (
	"fmt"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// expect says which optional objects a bundle must hold.
type expect struct {
	pdb, spread, hpa, serviceMonitor, networkPolicy bool
	prometheusRule, dashboard                       bool
	minReplicas                                     int32 // replicas, or the HPA's minimum
}

// checkRelations checks that the objects around the pod point at it: the
// PodDisruptionBudget, topology spread and NetworkPolicy select its labels,
// the HPA scales its Deployment, the ServiceMonitor scrapes a port of its
// Service where the binary serves /metrics.
func checkRelations(t *testing.T, b bundle, p pod, want expect) {
	t.Helper()
	pdbs := all[*policyv1.PodDisruptionBudget](b)
	hpas := all[*autoscalingv2.HorizontalPodAutoscaler](b)
	monitors := all[*monitoringv1.ServiceMonitor](b)
	policies := all[*networkingv1.NetworkPolicy](b)
	checks := []check{
		{"has-pdb", fmt.Sprint(len(pdbs) == 1), fmt.Sprint(want.pdb)},
		{"has-topology-spread", fmt.Sprint(len(p.spec.TopologySpreadConstraints) > 0), fmt.Sprint(want.spread)},
		{"has-hpa", fmt.Sprint(len(hpas) == 1), fmt.Sprint(want.hpa)},
		{"has-service-monitor", fmt.Sprint(len(monitors) == 1), fmt.Sprint(want.serviceMonitor)},
		{"has-network-policy", fmt.Sprint(len(policies) == 1), fmt.Sprint(want.networkPolicy)},
	}
	replicas := int32(1)
	if r := p.deployment.Spec.Replicas; r != nil {
		replicas = *r
	}
	for _, pdb := range pdbs {
		checks = append(checks,
			check{"pdb-selects-the-pods", fmt.Sprint(selects(pdb.Spec.Selector, p.labels)), "true"},
			check{"pdb-allows-one-down", fmt.Sprint(pdb.Spec.MaxUnavailable != nil && pdb.Spec.MaxUnavailable.IntValue() >= 1), "true"})
	}
	for i, tsc := range p.spec.TopologySpreadConstraints {
		checks = append(checks, check{fmt.Sprintf("spread-%d-selects-the-pods", i), fmt.Sprint(selects(tsc.LabelSelector, p.labels)), "true"})
	}
	for _, h := range hpas {
		ref := h.Spec.ScaleTargetRef
		checks = append(checks,
			check{"hpa-scales-the-deployment", ref.APIVersion + " " + ref.Kind + " " + ref.Name, "apps/v1 Deployment " + p.deployment.Name},
			check{"hpa-owns-replicas", fmt.Sprint(p.deployment.Spec.Replicas == nil), "true"})
		if h.Spec.MinReplicas != nil {
			replicas = *h.Spec.MinReplicas
		}
	}
	checks = append(checks, check{"replicas", fmt.Sprint(replicas), fmt.Sprint(want.minReplicas)})
	svc := one[*corev1.Service](t, b)
	for _, m := range monitors {
		for i, ep := range m.Spec.Endpoints {
			sp := servicePort(svc, ep.Port)
			checks = append(checks, check{fmt.Sprintf("service-monitor-endpoint-%d", i), fmt.Sprintf("%v %s", sp != nil, ep.Path), "true /metrics"})
		}
		checks = append(checks, check{"service-monitor-selects-the-service", fmt.Sprint(selects(&m.Spec.Selector, svc.Labels)), "true"})
	}
	for _, np := range policies {
		checks = append(checks, check{"network-policy-selects-the-pods", fmt.Sprint(selects(&np.Spec.PodSelector, p.labels)), "true"})
		grpcAllowed := false
		for i, rule := range np.Spec.Ingress {
			for j, from := range rule.From {
				checks = append(checks, check{fmt.Sprintf("network-policy-rule-%d-from-%d-names-namespaces", i, j),
					fmt.Sprint(from.NamespaceSelector != nil && (len(from.NamespaceSelector.MatchLabels) > 0 || len(from.NamespaceSelector.MatchExpressions) > 0), from.IPBlock == nil), "true true"})
			}
			for j, port := range rule.Ports {
				ok := port.Port != nil && p.containerPort(*port.Port) != 0
				checks = append(checks, check{fmt.Sprintf("network-policy-rule-%d-port-%d-is-a-container-port", i, j), fmt.Sprint(ok), "true"})
				grpcAllowed = grpcAllowed || (ok && p.containerPort(*port.Port) == p.containerPort(intstr.FromString("grpc")))
			}
		}
		checks = append(checks, check{"network-policy-lets-envoy-reach-grpc", fmt.Sprint(grpcAllowed), "true"})
	}
	runChecks(t, checks)
}
