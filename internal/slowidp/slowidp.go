// Package slowidp is a token endpoint that answers every request after a
// fixed latency and counts what reaches it: requests in flight, open
// connections and their peaks. It stands in for an overloaded IdP in the
// flood test and benchmark (a fault case, which is what fakes are for). It
// issues client-credentials tokens, exchanges subject tokens that start with
// "user-" and refuses every other subject with invalid_grant, as an IdP
// refuses a forged bearer token.
package slowidp

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// IdP is a running slow token endpoint.
type IdP struct {
	Latency time.Duration // before each answer
	TTL     time.Duration // expires_in of issued tokens

	srv  *http.Server
	addr string

	inFlight, peakInFlight atomic.Int64
	open, peakOpen         atomic.Int64
	cc, exchanged, refused atomic.Int64
}

// Counts is what reached the IdP so far.
type Counts struct {
	InFlight, PeakInFlight int64 // token requests being answered
	Open, PeakOpen         int64 // connections
	ClientCredentials      int64 // tokens issued for client credentials
	Exchanged, Refused     int64 // subject tokens exchanged, refused
}

// Start serves on a free loopback port until Close.
func Start(latency, ttl time.Duration) (*IdP, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &IdP{Latency: latency, TTL: ttl, addr: lis.Addr().String()}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.token), ConnState: p.connState, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(lis)
	return p, nil
}

// Addr is the host:port it listens on.
func (p *IdP) Addr() string { return p.addr }

// TokenURL is its token endpoint.
func (p *IdP) TokenURL() string { return "http://" + p.addr + "/token" }

// Close stops it and drops its connections.
func (p *IdP) Close() { p.srv.Close() }

// Counts reads the counters.
func (p *IdP) Counts() Counts {
	return Counts{
		InFlight: p.inFlight.Load(), PeakInFlight: p.peakInFlight.Load(),
		Open: p.open.Load(), PeakOpen: p.peakOpen.Load(),
		ClientCredentials: p.cc.Load(), Exchanged: p.exchanged.Load(), Refused: p.refused.Load(),
	}
}

func (p *IdP) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		raise(&p.peakOpen, p.open.Add(1))
	case http.StateClosed, http.StateHijacked:
		p.open.Add(-1)
	}
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	raise(&p.peakInFlight, p.inFlight.Add(1))
	defer p.inFlight.Add(-1)
	r.ParseForm()
	time.Sleep(p.Latency)
	w.Header().Set("Content-Type", "application/json")
	switch subject := r.PostForm.Get("subject_token"); {
	case r.PostForm.Get("grant_type") == "client_credentials":
		p.cc.Add(1)
	case strings.HasPrefix(subject, "user-"):
		p.exchanged.Add(1)
	default:
		p.refused.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"subject token is not valid"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("issued-%d", time.Now().UnixNano()),
		"token_type":   "Bearer", "expires_in": int(p.TTL / time.Second),
	})
}

// raise lifts peak to v if v is larger.
func raise(peak *atomic.Int64, v int64) {
	for cur := peak.Load(); v > cur && !peak.CompareAndSwap(cur, v); cur = peak.Load() {
	}
}
