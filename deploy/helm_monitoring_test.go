package deploy

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// chartCopies are files the chart ships from its own folder (Helm reads
// no file outside it) that are copies of files kept elsewhere.
var chartCopies = map[string]string{
	chartDir + "/files/tokenauthz.json": dashboardFile,
	chartDir + "/files/alerts.yaml":     alertsFile,
}

// TestChartCopiesAreTheShippedFiles: the chart's dashboard and rules are
// byte for byte deploy/grafana's and deploy/prometheus's.
func TestChartCopiesAreTheShippedFiles(t *testing.T) {
	for cp, orig := range chartCopies {
		a, errA := os.ReadFile(cp)
		b, errB := os.ReadFile(orig)
		if errA != nil || errB != nil {
			t.Fatalf("%v %v", errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: cp %s %s", cp, orig, orig, cp)
		}
	}
}

// checkMonitoring: the PrometheusRule and the dashboard ConfigMap are
// rendered exactly when asked for, hold the shipped rules and dashboard,
// and the ServiceMonitor keeps tokenauthz's labels.
func checkMonitoring(t *testing.T, b bundle, want expect) {
	t.Helper()
	rules := all[*monitoringv1.PrometheusRule](b)
	if (len(rules) == 1) != want.prometheusRule || len(rules) > 1 {
		t.Errorf("%d PrometheusRules rendered; want one only if the values enable it (%v here)", len(rules), want.prometheusRule)
	}
	for _, r := range rules {
		if !reflect.DeepEqual(r.Spec, readAlerts(t)) {
			t.Errorf("PrometheusRule %s: its spec is not %s", r.Name, alertsFile)
		}
	}
	var dashboards []*corev1.ConfigMap
	for _, cm := range all[*corev1.ConfigMap](b) {
		if cm.Labels["grafana_dashboard"] != "" {
			dashboards = append(dashboards, cm)
		}
	}
	if (len(dashboards) == 1) != want.dashboard || len(dashboards) > 1 {
		t.Errorf("%d dashboard ConfigMaps rendered; want one only if the values enable it (%v here)", len(dashboards), want.dashboard)
	}
	shipped, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range dashboards {
		if cm.Labels["grafana_dashboard"] != "1" || len(cm.Data) != 1 {
			t.Errorf("ConfigMap %s: label grafana_dashboard %q and %d keys, want \"1\" and one", cm.Name, cm.Labels["grafana_dashboard"], len(cm.Data))
		}
		if got := cm.Data["tokenauthz.json"]; got != string(bytes.TrimRight(shipped, "\n")) {
			t.Errorf("ConfigMap %s: tokenauthz.json is not %s", cm.Name, dashboardFile)
		}
	}
	for _, m := range all[*monitoringv1.ServiceMonitor](b) {
		for i, ep := range m.Spec.Endpoints {
			if !ep.HonorLabels {
				t.Errorf("ServiceMonitor endpoint %d: honorLabels unset: the operator's service target label would rename tokenauthz's service label", i)
			}
		}
	}
}
