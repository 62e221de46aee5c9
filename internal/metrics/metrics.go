// Package metrics exports tokenauthz's Prometheus metrics. Labels take
// bounded values only: decision, reason, configured service name, grant,
// outcome. Never a path, user or token.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// Metrics implements authz.Observer and tokens.Observer.
type Metrics struct {
	registry      *prometheus.Registry
	checks        *prometheus.CounterVec
	checkSeconds  *prometheus.HistogramVec
	tokenRequests *prometheus.CounterVec
	tokenSeconds  *prometheus.HistogramVec
	notSent       *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	purged        *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadTime    prometheus.Gauge
	checkSeries   sync.Map // checkLabels -> checkSeries: label lookups once per series, not per check
	notSentSeries sync.Map // notSentLabels -> prometheus.Counter: one per check in a flood of misses
	onDenial      func(authz.Decision)
}

type notSentLabels struct{ service, grant, reason string }

type checkLabels struct {
	reason  authz.Reason
	service string
}

type checkSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
	denied  bool
	misses  *atomic.Uint64 // checks that waited for a token request (CheckCounts)
}

var (
	_ authz.Observer      = (*Metrics)(nil)
	_ authz.PurgeObserver = (*Metrics)(nil)
	_ tokens.Observer     = (*Metrics)(nil)
)

// CacheStats reads the token cache's counters at scrape time.
type CacheStats func() tokens.CacheStats

// New registers every metric; cache is read at each scrape.
func New(cache CacheStats) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_checks_total", Help: "Checks answered, by decision, reason and service.",
		}, []string{"decision", "reason", "service"}),
		checkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokenauthz_check_duration_seconds", Help: "Time to answer a check, by decision.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"decision"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_token_requests_total", Help: "Requests sent to token endpoints, by service, grant and outcome.",
		}, []string{"service", "grant", "outcome"}),
		notSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_token_requests_not_sent_total",
			Help: "Token requests needed but never sent, by service, grant and reason (no_endpoint: token endpoint not discovered; max_in_flight: no slot in time).",
		}, []string{"service", "grant", "reason"}),
		tokenSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokenauthz_token_request_duration_seconds", Help: "Token request latency, by grant and outcome.",
			Buckets: prometheus.ExponentialBuckets(.001, 2.5, 10),
		}, []string{"grant", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_config_reloads_total", Help: "Configuration reloads, by outcome (success, failure).",
		}, []string{"outcome"}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_tokens_purged_total",
			Help: "Cached tokens dropped because their backend answered 401 (Envoy access log service), by service.",
		}, []string{"service"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauthz_config_last_reload_success", Help: "1 when the latest configuration load (start or reload) was accepted, 0 when it was rejected.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauthz_config_last_reload_timestamp_seconds", Help: "Unix time of the latest configuration load (start or reload), whatever its outcome.",
		}),
	}
	m.registry.MustRegister(m.checks, m.checkSeconds, m.tokenRequests, m.tokenSeconds, m.notSent, m.reloads, m.purged, m.reloadOK, m.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(cacheCollector{cache})
	return m
}

// ObserveCheck counts a decision and its latency. It runs on every check,
// so each series is looked up once and kept: WithLabelValues hashes the
// labels and takes a lock shared by all cores.
func (m *Metrics) ObserveCheck(d authz.Decision, elapsed time.Duration) {
	key := checkLabels{d.Reason, d.Service}
	v, ok := m.checkSeries.Load(key)
	if !ok {
		decision := "deny"
		if d.Allowed() {
			decision = "allow"
		}
		v, _ = m.checkSeries.LoadOrStore(key, checkSeries{
			count:   m.checks.WithLabelValues(decision, string(d.Reason), d.Service),
			latency: m.checkSeconds.WithLabelValues(decision),
			denied:  !d.Allowed(),
			misses:  new(atomic.Uint64),
		})
	}
	series := v.(checkSeries)
	series.count.Inc()
	series.latency.Observe(elapsed.Seconds())
	switch {
	case d.Cache == tokens.CacheMiss: // a hit's "hit" differs in length: no byte is compared
		series.misses.Add(1)
	case series.denied && m.onDenial != nil:
		m.onDenial(d)
	}
}

// OnDenial makes f hear of every denied check, after it is counted (the
// status page keeps the last ones); allowed checks never call it. Call it
// before the first check.
func (m *Metrics) OnDenial(f func(authz.Decision)) { m.onDenial = f }

// ObserveFetch counts a token request sent and its latency.
func (m *Metrics) ObserveFetch(r tokens.Request, outcome string, elapsed time.Duration) {
	grant := tokens.GrantName(r.GrantType)
	m.tokenRequests.WithLabelValues(r.Service, grant, outcome).Inc()
	m.tokenSeconds.WithLabelValues(grant, outcome).Observe(elapsed.Seconds())
}

// ObserveNotSent counts a token request that was needed but never sent.
// A flood of bogus bearer tokens makes one per check, so each series is
// looked up once and kept, as in ObserveCheck.
func (m *Metrics) ObserveNotSent(r tokens.Request, reason string) {
	key := notSentLabels{r.Service, tokens.GrantName(r.GrantType), reason}
	c, ok := m.notSentSeries.Load(key)
	if !ok {
		c, _ = m.notSentSeries.LoadOrStore(key, m.notSent.WithLabelValues(key.service, key.grant, key.reason))
	}
	c.(prometheus.Counter).Inc()
}

// ObserveLoad records the configuration the app started with: accepted,
// now.
func (m *Metrics) ObserveLoad() {
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
}

// ObservePurge counts a token purged after a backend's 401.
func (m *Metrics) ObservePurge(service string) { m.purged.WithLabelValues(service).Inc() }

// ObserveReload counts a configuration reload and records its outcome and
// time.
func (m *Metrics) ObserveReload(err error) {
	outcome, ok := "success", 1.0
	if err != nil {
		outcome, ok = "failure", 0
	}
	m.reloads.WithLabelValues(outcome).Inc()
	m.reloadOK.Set(ok)
	m.reloadTime.SetToCurrentTime()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// cacheCollector exposes the token cache's own counters at scrape time.
type cacheCollector struct{ stats CacheStats }

var (
	cacheHits      = prometheus.NewDesc("tokenauthz_cache_hits_total", "Token cache hits.", nil, nil)
	cacheMisses    = prometheus.NewDesc("tokenauthz_cache_misses_total", "Token cache misses.", nil, nil)
	cacheEvictions = prometheus.NewDesc("tokenauthz_cache_evictions_total", "Tokens evicted to stay within cache.max_entries.", nil, nil)
	cacheBackoffs  = prometheus.NewDesc("tokenauthz_cache_backoffs_total", "Checks answered from a failing key's backoff without calling the IdP.", nil, nil)
	cacheRefreshes = prometheus.NewDesc("tokenauthz_cache_refreshes_total", "Background refreshes ahead of expiry.", nil, nil)
	cacheEntries   = prometheus.NewDesc("tokenauthz_cache_entries", "Entries in the token cache.", nil, nil)
)

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHits, cacheMisses, cacheEvictions, cacheBackoffs, cacheRefreshes, cacheEntries} {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(cacheEvictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheBackoffs, prometheus.CounterValue, float64(s.Backoffs))
	ch <- prometheus.MustNewConstMetric(cacheRefreshes, prometheus.CounterValue, float64(s.Refreshes))
	ch <- prometheus.MustNewConstMetric(cacheEntries, prometheus.GaugeValue, float64(s.Entries))
}
