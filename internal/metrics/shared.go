package metrics

import "github.com/prometheus/client_golang/prometheus"

// Shared exports the shared cache's metrics:
// tokenauthz_shared_cache_operations_total{op,outcome} and
// tokenauthz_shared_cache_up. It implements shared.Observer.
type Shared struct {
	ops *prometheus.CounterVec
	up  prometheus.Gauge
}

// Shared registers the shared cache's metrics; call it once, and only when
// cache.shared is configured (a series that can never move is noise).
func (m *Metrics) Shared() *Shared {
	s := &Shared{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthz_shared_cache_operations_total",
			Help: "Operations on the shared cache in Redis, by op (get, put, delete, lock, unlock, ping) and outcome (hit, miss, invalid, ok, busy, error, skipped).",
		}, []string{"op", "outcome"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenauthz_shared_cache_up",
			Help: "1 while the shared cache in Redis is in use, 0 while its breaker skips it (local cache only).",
		}),
	}
	m.registry.MustRegister(s.ops, s.up)
	return s
}

// ObserveSharedOp counts one Redis operation.
func (s *Shared) ObserveSharedOp(op, outcome string) { s.ops.WithLabelValues(op, outcome).Inc() }

// ObserveSharedUp sets tokenauthz_shared_cache_up.
func (s *Shared) ObserveSharedUp(up bool) {
	if up {
		s.up.Set(1)
	} else {
		s.up.Set(0)
	}
}
