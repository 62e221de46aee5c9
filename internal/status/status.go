// Package status is tokenauthz's read-only status page, /status (HTML) and
// /status.json (the same data): the build, the configuration and its last
// reload, issuers, services with the settings in effect, the token cache by
// service, the last denials, and an explain form answering as `tokenauthz
// explain` does. Everything is read when the page is asked for, from what
// the metrics count already: checks pay nothing more, but a denial its
// place in the ring of the last ones (ObserveDenial). No token, secret, assertion or key is ever part of it, and
// everything a request supplied is escaped by html/template.
package status

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/metrics"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// What the page reads, each declared as small as it is used.
type (
	// Discovery tells which issuers' token endpoints are not known yet.
	Discovery interface {
		Pending(issuers []string) []tokens.Pending
	}
	// Cache sums the token cache by service.
	Cache interface {
		ServiceCaches() map[string]tokens.ServiceCache
	}
	// Checks reads the checks counted by reason and service, and their
	// misses.
	Checks interface {
		CheckCounts() []metrics.CheckCount
	}
	// SharedCache tells whether the shared cache in Redis is in use, and
	// with how many keys (a reload may have rotated them).
	SharedCache interface {
		Up() bool
		Keys() int
	}
)

// Options are where the page reads its data. Every field but Shared and
// Now is required.
type Options struct {
	Version   string
	Config    func() *config.Config         // the configuration in effect
	Issuers   func(*config.Config) []string // the issuers it discovers
	NotReady  func() string                 // "" when ready, else why not (as /readyz)
	Discovery Discovery
	Cache     Cache
	Checks    Checks
	Shared    SharedCache      // nil without cache.shared
	Now       func() time.Time // default time.Now
	Denials   int              // how many to keep, default DefaultDenials
}

// Page is the status page of one running tokenauthz.
type Page struct {
	o       Options
	denials *denials
	rates   *rates
	load    atomic.Pointer[Load]
}

// Load is the outcome of the latest configuration load.
type Load struct {
	Time    time.Time `json:"time"`
	Trigger string    `json:"trigger"` // start, sighup, file or call
	OK      bool      `json:"ok"`
	Error   string    `json:"error"` // why it was rejected; the previous configuration kept serving
}

// New returns the page; Run starts its sampling.
func New(o Options) *Page {
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Page{o: o, denials: newDenials(o.Denials)}
	p.rates = &rates{read: p.sample}
	p.ObserveLoad("start", nil)
	return p
}

// Run samples the counters for the hit ratios until ctx ends.
func (p *Page) Run(ctx context.Context) { p.rates.run(ctx, p.o.Now) }

// ObserveDenial keeps d among the last denials; metrics.OnDenial calls it
// for denied checks only.
func (p *Page) ObserveDenial(d authz.Decision) { p.denials.add(d, p.o.Now()) }

// ObserveLoad records a configuration load: trigger says what caused it,
// err why it was rejected (nil: accepted).
func (p *Page) ObserveLoad(trigger string, err error) {
	l := &Load{Time: p.o.Now(), Trigger: trigger, OK: err == nil}
	if err != nil {
		l.Error = err.Error()
	}
	p.load.Store(l)
}

// sample reads the counters the hit ratios are made of.
func (p *Page) sample(now time.Time) sample {
	s := sample{at: now, injected: map[string]uint64{}, misses: map[string]uint64{}}
	for _, c := range p.o.Checks.CheckCounts() {
		if c.Reason == authz.ReasonTokenInjected {
			s.injected[c.Service] += c.Count
			s.misses[c.Service] += c.Misses
		}
	}
	return s
}
