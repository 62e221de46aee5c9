package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// exposition is what a /metrics page offers a query: each series name
// (histograms as their _bucket, _sum and _count) with its label names.
type exposition map[string]map[string]bool

// scrapeLabels are the labels Prometheus adds to every scraped series; no
// /metrics page has them.
var scrapeLabels = []string{"job", "instance"}

// knownValues are, per metric and label, the values tokenauthz gives it:
// a query matching another (a typo such as "token_endpoint_unavaliable")
// would select nothing, and its alert would never fire.
var knownValues = map[string]map[string][]string{
	"tokenauthz_checks_total": {
		"decision": {"allow", "deny"},
		"reason": reasons(authz.ReasonTokenInjected, authz.ReasonNoGrant, authz.ReasonUnmatchedAllowed, authz.ReasonMalformed,
			authz.ReasonMissingSubject, authz.ReasonSubjectRejected, authz.ReasonUnknownService, authz.ReasonNoMatch, authz.ReasonCallerNotAllowed,
			authz.ReasonClientRejected, authz.ReasonUnavailable, authz.ReasonTimeout, authz.ReasonCanceled, authz.ReasonInternal),
	},
	"tokenauthz_token_requests_total": {
		"outcome": {tokens.OutcomeOK, tokens.OutcomeSubjectRejected, tokens.OutcomeClientRejected, tokens.OutcomeUnavailable, tokens.OutcomeCanceled},
		"grant":   grants,
	},
	"tokenauthz_token_request_duration_seconds_bucket": {"grant": grants},
	"tokenauthz_token_requests_not_sent_total":         {"reason": {tokens.NotSentNoEndpoint, tokens.NotSentBusy}, "grant": grants},
	"tokenauthz_config_reloads_total":                  {"outcome": {"success", "failure"}},
}

var grants = []string{tokens.GrantName(tokens.GrantClientCredentials), tokens.GrantName(tokens.GrantTokenExchange), tokens.GrantName(tokens.GrantJWTBearer)}

func reasons(rs ...authz.Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// grafanaIntervals are Grafana's built-in range variables, replaced by a
// duration so the query parses as Prometheus will receive it.
var grafanaIntervals = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b`)

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// queryProblems checks one query against the exposition: every metric it
// selects exists, with every label its matchers, by/without and on/ignoring
// name, and matched values are ones tokenauthz gives.
func (e exposition) queryProblems(query string) (problems []string) {
	query = grafanaIntervals.ReplaceAllString(query, "5m")
	var extra string // label_values' label
	if m := labelValues.FindStringSubmatch(query); m != nil {
		query, extra = m[1], m[2]
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return []string{fmt.Sprintf("does not parse: %v", err)}
	}
	labelsOf := func(name string) map[string]bool {
		if l, ok := e[name]; ok {
			return l
		}
		problems = append(problems, fmt.Sprintf("no series %s on /metrics", name))
		return map[string]bool{}
	}
	// needLabels: each label must be on some series of the selectors in n.
	needLabels := func(n parser.Node, what string, names []string) {
		offered := map[string]bool{}
		for _, vs := range selectors(n) {
			for l := range labelsOf(vs.Name) {
				offered[l] = true
			}
		}
		for _, l := range names {
			if !offered[l] && !slices.Contains(scrapeLabels, l) {
				problems = append(problems, fmt.Sprintf("%s label %q is on none of the series it applies to", what, l))
			}
		}
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name == "" {
				problems = append(problems, fmt.Sprintf("selector %s names no metric", n))
				return nil
			}
			have := labelsOf(n.Name)
			for _, m := range n.LabelMatchers {
				if m.Name == labels.MetricName {
					continue
				}
				if !have[m.Name] && !slices.Contains(scrapeLabels, m.Name) {
					problems = append(problems, fmt.Sprintf("%s has no label %q", n.Name, m.Name))
				}
				problems = append(problems, unknownValues(n.Name, m)...)
			}
		case *parser.AggregateExpr:
			needLabels(n.Expr, "by/without", n.Grouping)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				needLabels(n, "on/ignoring/group", append(slices.Clone(vm.MatchingLabels), vm.Include...))
			}
		}
		return nil
	})
	if extra != "" {
		needLabels(expr, "label_values", []string{extra})
	}
	return problems
}

// unknownValues: each value an equality or alternation matcher names
// ("a", "a|b") must be a known value of that metric's label. Regexes
// beyond plain alternatives and Grafana variables are not judged.
func unknownValues(metric string, m *labels.Matcher) []string {
	known, ok := knownValues[metric][m.Name]
	if !ok || strings.Contains(m.Value, "$") {
		return nil
	}
	var alternatives []string
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		alternatives = []string{m.Value}
	case labels.MatchRegexp, labels.MatchNotRegexp:
		if !regexp.MustCompile(`^[a-z_]+(\|[a-z_]+)*$`).MatchString(m.Value) {
			return nil
		}
		alternatives = strings.Split(m.Value, "|")
	}
	var problems []string
	for _, v := range alternatives {
		if !slices.Contains(known, v) {
			problems = append(problems, fmt.Sprintf("%s{%s}: tokenauthz never sets %s to %q (it sets %s)", metric, m, m.Name, v, strings.Join(known, ", ")))
		}
	}
	return problems
}

// selectors are the vector selectors under n.
func selectors(n parser.Node) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}
