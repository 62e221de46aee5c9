package metrics

import "github.com/prometheus/client_golang/prometheus"

// State reads what the app knows about itself, at each scrape: there is
// nothing to keep in step, and an issuer a reload removed is simply no
// longer listed.
type State struct {
	// Ready is the readiness verdict, the one /readyz and gRPC health give.
	Ready func() bool
	// Issuers are the issuers the current configuration discovers (those
	// with no token_url), in order.
	Issuers func() []Issuer
}

// Issuer is one configured issuer and whether its token endpoint is known.
type Issuer struct {
	URL        string
	Discovered bool
}

// WatchState exports s: tokenauthz_ready and tokenauthz_issuer_discovered.
// Call it once.
func (m *Metrics) WatchState(s State) { m.registry.MustRegister(stateCollector{s}) }

var (
	readyDesc = prometheus.NewDesc("tokenauthz_ready",
		"1 when ready (every configured issuer discovered, not draining), as /readyz and gRPC health say; 0 otherwise.", nil, nil)
	discoveredDesc = prometheus.NewDesc("tokenauthz_issuer_discovered",
		"1 when the issuer's token endpoint is discovered, 0 while discovery is pending or failing; configured issuers only.", []string{"issuer"}, nil)
)

type stateCollector struct{ s State }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- readyDesc
	ch <- discoveredDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, one(c.s.Ready()))
	for _, iss := range c.s.Issuers() {
		ch <- prometheus.MustNewConstMetric(discoveredDesc, prometheus.GaugeValue, one(iss.Discovered), iss.URL)
	}
}

func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
