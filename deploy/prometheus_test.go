package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"

	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

const (
	alertsFile     = "prometheus/alerts.yaml"
	alertTestsFile = "prometheus/alerts_test.yaml"
	// readmeURL is where runbook_url annotations and the dashboard's links
	// point: the README's headings, by GitHub's anchors.
	readmeURL = "https://github.com/tokenauthz/tokenauthz/blob/main/README.md#"
)

// readAlerts decodes the rule file strictly into prometheus-operator's
// PrometheusRule spec, the shape the chart's PrometheusRule ships.
func readAlerts(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := decodeStrict(data, &spec); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return spec
}

func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testtools.Path(t, "promtool", "TOKENAUTHZ_PROMTOOL"), args...).CombinedOutput()
	return string(out), err
}

// TestAlertRules: real promtool accepts the rules and passes their unit
// tests; each alert is unit-tested firing and quiet, has a severity, a
// summary, a description and a runbook_url to its README entry.
func TestAlertRules(t *testing.T) {
	t.Run("promtool-check-rules", func(t *testing.T) {
		if out, err := promtool(t, "check", "rules", alertsFile); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	})
	t.Run("promtool-test-rules", func(t *testing.T) {
		if out, err := promtool(t, "test", "rules", alertTestsFile); err != nil || !strings.Contains(out, "SUCCESS") {
			t.Fatalf("promtool test rules: %v\n%s", err, out)
		}
	})
	tested := alertTestCases(t)
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			t.Run(r.Alert, func(t *testing.T) {
				if r.Alert == "" {
					t.Fatalf("a recording rule (%s): this file holds alerts", r.Record)
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %q, want critical or warning", s)
				}
				for _, a := range []string{"summary", "description"} {
					if r.Annotations[a] == "" {
						t.Errorf("no %s annotation", a)
					}
				}
				if want := readmeURL + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
					t.Errorf("runbook_url %q, want %q", r.Annotations["runbook_url"], want)
				}
				checkReadmeLink(t, r.Annotations["runbook_url"])
				if c := tested[r.Alert]; !c.fires || !c.quiet {
					t.Errorf("alerts_test.yaml: firing case %v, quiet case %v; want both", c.fires, c.quiet)
				}
			})
		}
	}
}

// TestPromtoolCatchesAWrongExpectation: the unit tests can fail: with
// one expected alert's labels changed, promtool test rules fails.
func TestPromtoolCatchesAWrongExpectation(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	const right, wrong = "{severity: critical, job: tokenauthz, service: orders}", "{severity: critical, job: tokenauthz, service: billing}"
	if !strings.Contains(string(data), right) {
		t.Fatalf("%s no longer expects %s", alertTestsFile, right)
	}
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"alerts.yaml": string(rules), "alerts_test.yaml": strings.Replace(string(data), right, wrong, 1)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := promtool(t, "test", "rules", filepath.Join(dir, "alerts_test.yaml")); err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("promtool test rules passed a wrong expectation: %v\n%s", err, out)
	}
}

// alertTestCases reads which alerts the unit tests expect to fire
// (exp_alerts listed) and to stay quiet (exp_alerts empty).
func alertTestCases(t *testing.T) map[string]struct{ fires, quiet bool } {
	t.Helper()
	data, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct{ fires, quiet bool }{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			c := out[a.Alertname]
			if len(a.ExpAlerts) > 0 {
				c.fires = true
			} else {
				c.quiet = true
			}
			out[a.Alertname] = c
		}
	}
	return out
}

var readmeHeading = regexp.MustCompile(`(?m)^#+ (.+)$`)

// checkReadmeLink: url points at a heading of README.md, by GitHub's
// anchor of it (lower case, spaces to hyphens, punctuation dropped).
func checkReadmeLink(t *testing.T, url string) {
	t.Helper()
	anchor, ok := strings.CutPrefix(url, readmeURL)
	if !ok {
		t.Errorf("link %q is not into README.md", url)
		return
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range readmeHeading.FindAllStringSubmatch(string(readme), -1) {
		if githubAnchor(m[1]) == anchor {
			return
		}
	}
	t.Errorf("README.md has no heading for #%s", anchor)
}

func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
