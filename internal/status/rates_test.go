package status

import (
	"testing"
	"time"
)

func TestHitRatiosOverTheLastMinute(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	// counters at each 10 s tick: orders injects 10 tokens per tick, one of
	// them a miss; billing 4 misses in the first tick, then nothing.
	counts := func(tick int) sample {
		billing := uint64(4 * min(tick, 1))
		return sample{
			injected: map[string]uint64{"orders": uint64(10 * tick), "billing": billing},
			misses:   map[string]uint64{"orders": uint64(tick), "billing": billing},
		}
	}
	tests := []struct {
		name       string
		ticks      int // samples taken, one per 10 s from start
		wantWindow float64
		ratio      map[string]float64 // -1: none
	}{
		{
			name: "first-minute-is-since-start", ticks: 3, wantWindow: 25,
			ratio: map[string]float64{"orders": 0.9, "billing": 0},
		},
		{
			name: "then-the-last-minute", ticks: 12, wantWindow: 65,
			ratio: map[string]float64{"orders": 0.9, "billing": -1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &rates{read: func(now time.Time) sample {
				s := counts(int(now.Sub(start) / sampleEvery))
				s.at = now
				return s
			}}
			for tick := range tc.ticks {
				r.tick(start.Add(time.Duration(tick) * sampleEvery))
			}
			if len(r.samples) > keepSamples {
				t.Errorf("%d samples kept, want at most %d", len(r.samples), keepSamples)
			}
			now := start.Add(time.Duration(tc.ticks-1)*sampleEvery + 5*time.Second)
			got, window := r.ratios(now)
			if window != tc.wantWindow {
				t.Errorf("window %vs, want %vs", window, tc.wantWindow)
			}
			for svc, want := range tc.ratio {
				g := got[svc]
				switch {
				case want < 0 && g.HitRatio != nil:
					t.Errorf("%s: hit ratio %v, want none (no token injected in the window)", svc, *g.HitRatio)
				case want >= 0 && (g.HitRatio == nil || *g.HitRatio != want):
					t.Errorf("%s: hit ratio %v, want %v (%+v)", svc, g.HitRatio, want, g)
				}
			}
		})
	}
}
