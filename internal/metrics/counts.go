package metrics

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/tokenauthz/tokenauthz/authz"
)

// CheckCount is the value of one tokenauthz_checks_total series, and how
// many of its checks waited for a token request (a token_injected miss).
type CheckCount struct {
	Reason  authz.Reason
	Service string
	Count   uint64
	Misses  uint64
}

// CheckCounts reads every tokenauthz_checks_total series checks have
// made, from the counters ObserveCheck keeps: for the status page, which
// reuses them instead of counting checks again.
func (m *Metrics) CheckCounts() []CheckCount {
	var out []CheckCount
	m.checkSeries.Range(func(k, v any) bool {
		var pb dto.Metric
		series, key := v.(checkSeries), k.(checkLabels)
		if series.count.Write(&pb) == nil {
			out = append(out, CheckCount{Reason: key.reason, Service: key.service, Count: uint64(pb.GetCounter().GetValue()), Misses: series.misses.Load()})
		}
		return true
	})
	return out
}
