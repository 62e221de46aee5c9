package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const dashboardFile = "grafana/tokenauthz.json"

// grafanaDashboard is the part of the dashboard JSON the checks read; the
// whole is decoded strictly by strictDashboard.
type grafanaDashboard struct {
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// strictDashboard decodes data with Grafana's own dashboard schema (the
// foundation SDK, with its panel plugins' options), refusing unknown or
// missing required fields. The SDK returns an empty error list as a
// non-nil error: that is success.
func strictDashboard(data []byte) error {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	err := d.UnmarshalJSONStrict(data)
	if be, ok := errors.AsType[cog.BuildErrors](err); ok && len(be) == 0 {
		return nil
	}
	return err
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictDashboard(data); err != nil {
		t.Fatalf("%s against Grafana's schema: %v", dashboardFile, err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// panels lists every panel, those in collapsed rows included.
func (d grafanaDashboard) panels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// dashboardQueries are the PromQL queries of every panel and variable.
func dashboardQueries(t *testing.T, d grafanaDashboard) []query {
	t.Helper()
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil || q.Query == "" {
			t.Fatalf("variable %s: query %s is not {query: ...}", v.Name, v.Query)
		}
		qs = append(qs, query{"variable " + v.Name, q.Query})
	}
	for _, p := range d.panels() {
		for i, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %s/%c", p.Title, 'A'+i), tg.Expr})
		}
	}
	return qs
}

var grafanaVariable = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// TestGrafanaDashboard: the dashboard decodes strictly with Grafana's
// schema, every panel queries the dashboard's Prometheus data source with
// variables it defines, ids and titles are unique, and panels sit on the
// 24-column grid without overlapping.
func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	defined := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	if !defined["datasource"] {
		t.Error("no datasource variable: the dashboard would pin one Prometheus")
	}
	ids, titles := map[int]bool{}, map[string]bool{}
	var placed []grafanaPanel
	for _, p := range d.panels() {
		if ids[p.ID] || titles[p.Title] {
			t.Errorf("panel %d %q: id or title repeated", p.ID, p.Title)
		}
		ids[p.ID], titles[p.Title] = true, true
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for _, o := range placed {
			h := o.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", p.Title, o.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v with %d targets, want the ${datasource} Prometheus and a query", p.Title, p.Datasource, len(p.Targets))
		}
	}
	for _, q := range dashboardQueries(t, d) {
		for _, m := range grafanaVariable.FindAllStringSubmatch(q.expr, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: variable $%s is not defined", q.where, m[1])
			}
		}
	}
	for _, l := range d.Links {
		checkReadmeLink(t, l.URL)
	}
}

// TestStrictDashboardRefuses: the strict decoding finds what it should,
// so a passing TestGrafanaDashboard means something.
func TestStrictDashboardRefuses(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"unknown-panel-field", `"title": "Ready replicas",`, `"title": "Ready replicas", "colour": "red",`, "unexpected field 'colour'"},
		{"wrong-option-type", `"showPercentChange": false`, `"showPercentChange": "no"`, "showPercentChange"},
		{"unknown-top-level-field", `"title": "tokenauthz",`, `"title": "tokenauthz", "pannels": [],`, "unexpected field 'pannels'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(data), tt.old) {
				t.Fatalf("%s no longer holds %s", dashboardFile, tt.old)
			}
			err := strictDashboard([]byte(strings.Replace(string(data), tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}
