package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slowIdP is a token endpoint that answers after a fixed latency and counts
// what reaches it: requests in flight, open connections and their peaks. It
// issues client-credentials tokens, exchanges subject tokens that start with
// "user-" and refuses every other subject with invalid_grant, as an IdP
// refuses a forged bearer token. It runs in the bench process; only
// tokenauthz runs as a separate process.
type slowIdP struct {
	latency time.Duration
	ttl     time.Duration
	srv     *http.Server
	addr    string

	inFlight, peakInFlight atomic.Int64
	open, peakOpen         atomic.Int64
	cc, exchanges, refused atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startSlowIdP(latency, ttl time.Duration) (*slowIdP, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &slowIdP{latency: latency, ttl: ttl, addr: lis.Addr().String(), conns: map[net.Conn]bool{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.token), ConnState: s.connState}
	go s.srv.Serve(lis)
	return s, nil
}

func (s *slowIdP) TokenURL() string { return "http://" + s.addr + "/token" }

func (s *slowIdP) Close() { s.srv.Close() }

func (s *slowIdP) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = true
		peak(&s.peakOpen, s.open.Add(1))
	case http.StateClosed, http.StateHijacked:
		if s.conns[c] {
			delete(s.conns, c)
			s.open.Add(-1)
		}
	}
}

func (s *slowIdP) token(w http.ResponseWriter, r *http.Request) {
	peak(&s.peakInFlight, s.inFlight.Add(1))
	defer s.inFlight.Add(-1)
	r.ParseForm()
	time.Sleep(s.latency)
	w.Header().Set("Content-Type", "application/json")
	switch subject := r.PostForm.Get("subject_token"); {
	case r.PostForm.Get("grant_type") == "client_credentials":
		s.cc.Add(1)
	case strings.HasPrefix(subject, "user-"):
		s.exchanges.Add(1)
	default:
		s.refused.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"subject token is not valid"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("issued-%d", time.Now().UnixNano()),
		"token_type":   "Bearer", "expires_in": int(s.ttl / time.Second),
	})
}

// peak raises p to v if v is larger.
func peak(p *atomic.Int64, v int64) {
	for {
		cur := p.Load()
		if v <= cur || p.CompareAndSwap(cur, v) {
			return
		}
	}
}
