package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every subcommand in its shortest form and checks only what
// is correctness: exit status (each subcommand fails on errors, wrong token
// request counts, cache misses across expiry, growth), never wall-clock
// figures. It builds tokenauthz and this program, so it takes a while; -short
// skips it.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs servers")
	}
	tests := []struct {
		name string
		args []string
		want []string // in the output
	}{
		{"run-short", []string{"run", "--short"}, []string{"made 0 token requests"}},
		{"run-short-shared", []string{"run", "--short", "--shared"}, []string{"made 0 token requests", "--shared"}},
		{"fleet-1-and-2-replicas", []string{"fleet", "--replicas", "1,2", "--cc-keys", "2", "--exchange-keys", "2", "--ttl", "3s", "--lifetimes", "1",
			"--rate", "50", "--latency-keys", "5", "--skew", "500ms", "--refresh-before", "1s", "--no-write"},
			[]string{" 2 replicas, shared true : ", "(4 cold)", "second-tier (Redis) hit p50"}},
		{"cold-500-users", []string{"cold", "--users", "500", "--concurrent", "200", "--no-write"},
			[]string{"200 concurrent checks, one cold key: 1 token request (client credentials), 1 (token exchange)", "500 exchanges"}},
		{"expiry-short", []string{"expiry", "--duration", "5s", "--ttl", "4s", "--skew", "1s", "--refresh-before", "2s", "--rate", "200", "--users", "10", "--nice", "0", "--no-write"},
			[]string{"0 errors", "0 checks waited"}},
		{"flood-short", []string{"flood", "--attackers", "100", "--duration", "2s", "--latency", "200ms", "--deadline", "150ms", "--ttl", "2s", "--no-write"},
			[]string{"0 failed", "allowed true"}},
		{"soak-5s", []string{"soak", "--duration", "5s", "--ttl", "3s", "--skew", "1s", "--refresh-before", "2s", "--rate", "200", "--users", "20", "--sample", "500ms", "--warmup", "1s", "--nice", "0", "--no-write"},
			[]string{"**passed**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("bench %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(tt.args, " "), code, stderr.String(), stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no-subcommand", nil, 2},
		{"unknown-subcommand", []string{"nope"}, 2},
		{"bad-flag", []string{"run", "--nope"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := Main(tt.args, &out, &out); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
		})
	}
}

func TestQuantileAndWindows(t *testing.T) {
	var r loadResult
	for i := 1; i <= 100; i++ {
		r.samples = append(r.samples, sample{at: 0, lat: timeUS(i)})
	}
	for _, tt := range []struct {
		q    float64
		want int
	}{{.5, 50}, {.9, 90}, {.99, 99}, {.999, 100}, {1, 100}} {
		if got := r.Quantile(tt.q); got != timeUS(tt.want) {
			t.Errorf("q%v = %v, want %v", tt.q, got, timeUS(tt.want))
		}
	}
	if w := r.Windows(timeUS(1000)); len(w) != 1 || w[0].N != 100 || w[0].Max != timeUS(100) {
		t.Errorf("windows = %+v", w)
	}
}

func timeUS(n int) time.Duration { return time.Duration(n) * time.Microsecond }
