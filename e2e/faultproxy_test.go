package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultProxy is a reverse proxy on loopback in front of a real IdP that
// breaks token requests on demand. Discovery passes through, with the
// document's issuer and token_endpoint pointed at the proxy (it republishes
// the IdP's metadata as its own: a broker believes only a document naming
// the issuer it was configured with), so a broker configured with the
// proxy as issuer sends its token requests through it.
type faultProxy struct {
	upstream  *url.URL // the IdP's issuer
	addr      string   // host:port the proxy listens on, kept across refuse
	url       string   // http://addr
	srv       *http.Server
	transport *http.Transport
	served    sync.WaitGroup // Serve loops

	mu      sync.Mutex
	fault   fault
	lis     net.Listener // nil while refusing
	conns   map[net.Conn]struct{}
	hits    []time.Time // token requests received
	written int64       // body bytes written by the last huge-body fault
}

// A fault changes how the proxy answers token requests. The zero fault
// forwards them.
type fault struct {
	// refuse closes the listener and every connection: new connections
	// are refused until the fault is cleared.
	refuse bool
	// answer, if set, answers a token request instead of the IdP.
	answer func(p *faultProxy, w http.ResponseWriter, r *http.Request)
	// edit, if set, changes the IdP's JSON answer to a token request.
	edit func(m map[string]any)
}

// startFaultProxy listens on a free loopback port and forwards to the IdP
// whose issuer is upstream. stop ends it and every connection it holds.
func startFaultProxy(t *testing.T, upstream string) (p *faultProxy, stop func()) {
	t.Helper()
	u, err := url.Parse(strings.TrimRight(upstream, "/"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	p = &faultProxy{upstream: u, addr: lis.Addr().String(), transport: transport, conns: map[net.Conn]struct{}{}}
	p.url = "http://" + p.addr
	p.srv = &http.Server{Handler: p, ConnState: p.track, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: newDiscardLogger()}
	p.serve(lis)
	stop = sync.OnceFunc(func() {
		p.srv.Close()
		p.mu.Lock()
		p.closeConns()
		p.mu.Unlock()
		p.served.Wait()
		transport.CloseIdleConnections()
	})
	t.Cleanup(stop) // in case the test ends before calling it
	return p, stop
}

// set makes f the fault for the requests that start from now on.
func (p *faultProxy) set(t *testing.T, f fault) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	switch {
	case f.refuse && p.lis != nil:
		p.lis.Close()
		p.lis = nil
		p.closeConns()
	case !f.refuse && p.lis == nil:
		lis, err := net.Listen("tcp", p.addr) // the same port: the broker knows it
		if err != nil {
			t.Fatalf("fault proxy: listen again on %s: %v", p.addr, err)
		}
		p.lis = lis
		p.served.Go(func() { p.srv.Serve(lis) })
	}
}

func (p *faultProxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	p.served.Go(func() { p.srv.Serve(lis) })
}

// tokenRequests is how many token requests reached the proxy.
func (p *faultProxy) tokenRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.hits)
}

// hitTimes are the arrival times of the token requests.
func (p *faultProxy) hitTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.hits...)
}

// waitBytesWritten waits for a huge-body fault to end and returns how
// many bytes it wrote before the client hung up.
func (p *faultProxy) waitBytesWritten(t *testing.T) int64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := p.written
		p.mu.Unlock()
		if n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("the huge body is still being written 5 s later: the client keeps reading")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// track keeps the open connections, for refuse to close.
func (p *faultProxy) track(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

// closeConns closes every connection; p.mu is held.
func (p *faultProxy) closeConns() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.fault
	isToken := r.Method == http.MethodPost && r.URL.Path == "/oauth2/token"
	if isToken {
		p.hits = append(p.hits, time.Now())
	}
	p.mu.Unlock()
	if isToken && f.answer != nil {
		f.answer(p, w, r)
		return
	}
	p.forward(w, r, f.edit)
}

// forward sends r to the IdP. Discovery documents get the proxy as token
// endpoint; answers to token requests are changed by edit when it is set.
//
// The IdP's request is not canceled when the client gives up: Hydra keeps
// its database in memory (DSN=memory), and a request canceled within a
// transaction can take that database down for the rest of the test.
func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request, edit func(map[string]any)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	r = r.WithContext(ctx)
	isToken := r.Method == http.MethodPost && r.URL.Path == "/oauth2/token"
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(p.upstream) },
		Transport: p.transport,
		ErrorLog:  newDiscardLogger(),
		ModifyResponse: func(resp *http.Response) error {
			switch {
			case strings.HasPrefix(r.URL.Path, "/.well-known/"):
				return rewriteJSON(resp, func(m map[string]any) {
					for _, k := range []string{"issuer", "token_endpoint"} {
						if v, ok := m[k].(string); ok {
							m[k] = strings.Replace(v, p.upstream.String(), p.url, 1)
						}
					}
				})
			case isToken && edit != nil && resp.StatusCode == http.StatusOK:
				return rewriteJSON(resp, edit)
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// rewriteJSON replaces resp's JSON object body by edit's change of it.
func rewriteJSON(resp *http.Response, edit func(map[string]any)) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("fault proxy: IdP answer is not a JSON object: %w", err)
	}
	edit(m)
	if body, err = json.Marshal(m); err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// Faults.

var faultRefuse = fault{refuse: true}

// faultStatus answers code, with Retry-After when retryAfter is set, and body.
func faultStatus(code int, retryAfter, body string) fault {
	return fault{answer: func(_ *faultProxy, w http.ResponseWriter, _ *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}}
}

// faultPage answers 200 with body of the content type.
func faultPage(contentType, body string) fault {
	return fault{answer: func(_ *faultProxy, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		io.WriteString(w, body)
	}}
}

// faultDelay holds the request d, then forwards it (if the client still waits).
func faultDelay(d time.Duration) fault {
	return fault{answer: func(p *faultProxy, w http.ResponseWriter, r *http.Request) {
		// Read the form first: only then does the server watch the
		// connection and cancel r's context when the client hangs up.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		p.forward(w, r, nil)
	}}
}

// faultReset takes the connection over, writes prefix (raw HTTP, possibly
// nothing) and resets the connection.
func faultReset(prefix string) fault {
	return fault{answer: func(_ *faultProxy, w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err) // HTTP/1.1 only: the proxy serves nothing else
		}
		if prefix != "" { // let the client read it before the reset
			io.WriteString(conn, prefix)
			time.Sleep(50 * time.Millisecond)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}}
}

// faultHuge streams a 200 of size bytes without holding it, declaring its length
// when declareLength, and records how much of it the client took.
func faultHuge(size int64, declareLength bool) fault {
	return fault{answer: func(p *faultProxy, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if declareLength {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		w.WriteHeader(http.StatusOK)
		n, _ := io.WriteString(w, `{"access_token":"`)
		written := int64(n)
		chunk := bytes.Repeat([]byte("a"), 32<<10)
		for written < size {
			n, err := w.Write(chunk[:min(int64(len(chunk)), size-written)])
			written += int64(n)
			if err != nil {
				break
			}
		}
		p.mu.Lock()
		p.written = written
		p.mu.Unlock()
	}}
}

// faultRewrite forwards to the IdP and changes its JSON answer with edit.
func faultRewrite(edit func(m map[string]any)) fault { return fault{edit: edit} }

func faultSet(key string, v any) fault {
	return faultRewrite(func(m map[string]any) { m[key] = v })
}

func faultDrop(key string) fault {
	return faultRewrite(func(m map[string]any) { delete(m, key) })
}

// startFaultBroker is newBroker, waiting until its issuers are discovered.
// The caller stops it: the goroutine count is taken after.
func startFaultBroker(t *testing.T, yaml string) (*broker, func()) {
	t.Helper()
	b := newBroker(t, yaml)
	if err := waitReady(b.app.HTTPAddr(), 10*time.Second); err != nil {
		b.stop()
		t.Fatal(err)
	}
	return b, b.stop
}

// waitReady polls /readyz until the broker has discovered its issuers.
func waitReady(addr string, within time.Duration) error {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker not ready after %v (last error: %v)", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noGoroutineLeak runs body, which must stop everything it starts, then
// waits for the goroutine count to come back to what it was before.
func noGoroutineLeak(t *testing.T, body func()) {
	t.Helper()
	before := runtime.NumGoroutine()
	body()
	if t.Failed() {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC() // lets finalizers stop what unreachable values started
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines after stopping the broker and the proxy, %d before:\n%s", n, before, stacks.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newDiscardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
