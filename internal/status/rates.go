package status

import (
	"context"
	"sync"
	"time"
)

// The hit ratio is over the last rateWindow, from samples of the counters
// taken every sampleEvery by a ticker. A ticker, not a sample per render:
// the window is then the last minute whoever looks and however often (two
// operators, a script polling status.json), where render-to-render deltas
// would measure "since somebody last looked". It costs one wake-up every
// 10 s reading a few counters per service; checks pay nothing for it.
const (
	sampleEvery = 10 * time.Second
	rateWindow  = time.Minute
	keepSamples = int(rateWindow/sampleEvery) + 1
)

// sample is the counters at one moment, by service: checks that injected a
// token (the metrics' tokenauthz_checks_total{reason="token_injected"})
// and those among them that waited for a token request (misses, which the
// metrics count beside that series).
type sample struct {
	at       time.Time
	injected map[string]uint64
	misses   map[string]uint64
}

// rates keeps the last keepSamples samples, oldest first.
type rates struct {
	read func(now time.Time) sample

	mu      sync.Mutex
	samples []sample
}

// run samples now and then every sampleEvery until ctx ends.
func (r *rates) run(ctx context.Context, now func() time.Time) {
	r.tick(now())
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.tick(now())
		}
	}
}

func (r *rates) tick(now time.Time) {
	s := r.read(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if n := len(r.samples); n > keepSamples {
		r.samples = append(r.samples[:0], r.samples[n-keepSamples:]...)
	}
}

// Ratio is the hit ratio of one service over a window.
type Ratio struct {
	// HitRatio is the share of the checks that injected a token which were
	// served from the cache (hits and refreshes, not misses); nil when none
	// injected a token in the window.
	HitRatio *float64 `json:"hit_ratio"`
	Injected uint64   `json:"injected"` // checks that injected a token
	Misses   uint64   `json:"misses"`   // of those, the ones that waited for a token request
	Window   float64  `json:"window_seconds"`
}

// ratios are the ratios of the window ending now, by service, and the
// window's length in seconds: from the newest sample at least rateWindow
// old (the oldest while the process is younger) to the counters now.
func (r *rates) ratios(now time.Time) (map[string]Ratio, float64) {
	cur := r.read(now)
	r.mu.Lock()
	base := cur
	if len(r.samples) > 0 {
		base = r.samples[0]
	}
	for _, s := range r.samples[min(1, len(r.samples)):] {
		if s.at.After(now.Add(-rateWindow)) {
			break
		}
		base = s
	}
	r.mu.Unlock()
	window := now.Sub(base.at).Seconds()
	out := map[string]Ratio{}
	for svc, inj := range cur.injected {
		rt := Ratio{Injected: inj - base.injected[svc], Window: window}
		rt.Misses = min(cur.misses[svc]-base.misses[svc], rt.Injected)
		if rt.Injected > 0 {
			h := float64(rt.Injected-rt.Misses) / float64(rt.Injected)
			rt.HitRatio = &h
		}
		out[svc] = rt
	}
	return out, window
}
