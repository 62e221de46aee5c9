package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenauthz/tokenauthz/devidp"
)

// The IdP runs as its own process so that its CPU and memory (devidp keeps a
// record of every token it issues) never count against tokenauthz or the
// load generator.
const (
	idpClientID     = "tokenauthz"
	idpClientSecret = "bench-secret"
)

// idpCmd serves devidp plus a small admin API the harness uses:
//
//	GET /user-tokens?prefix=u&n=100&ttl=1h  user JWTs for u0..u99, one per line
//	GET /token-requests                      requests that reached the token endpoint
//
// It prints one JSON line {"issuer": ..., "admin": ...} once serving.
func idpCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("idp", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "devidp listen address")
	adminAddr := fs.String("admin-addr", "127.0.0.1:0", "admin API listen address")
	ttl := fs.Duration("ttl", time.Hour, "expires_in of issued access tokens")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	idp, err := devidp.Start(ctx, devidp.Options{
		Addr:           *addr,
		Clients:        []devidp.Client{{ID: idpClientID, Secret: idpClientSecret}},
		AccessTokenTTL: *ttl,
	})
	if err != nil {
		return err
	}
	defer idp.Close()
	lis, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token-requests", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, idp.TokenRequests())
	})
	mux.HandleFunc("GET /user-tokens", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		ttl, err := time.ParseDuration(q.Get("ttl"))
		if err != nil || n <= 0 {
			http.Error(w, "n and ttl required", http.StatusBadRequest)
			return
		}
		toks, err := mintUsers(idp, q.Get("prefix"), n, ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, strings.Join(toks, "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	b, _ := json.Marshal(map[string]string{"issuer": idp.Issuer(), "admin": "http://" + lis.Addr().String()})
	fmt.Fprintf(out, "%s\n", b)
	if err := srv.Serve(lis); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// mintUsers signs n user tokens (subjects prefix0..prefix<n-1>) on every core.
func mintUsers(idp *devidp.IdP, prefix string, n int, ttl time.Duration) ([]string, error) {
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				toks[i], errs[i] = idp.UserToken(fmt.Sprintf("%s%d", prefix, i), ttl)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// idpClient talks to a running `bench idp`.
type idpClient struct {
	Issuer string `json:"issuer"`
	Admin  string `json:"admin"`
}

func (c *idpClient) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Admin+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// TokenRequests is the IdP's count of token endpoint requests.
func (c *idpClient) TokenRequests(ctx context.Context) (int, error) {
	s, err := c.get(ctx, "/token-requests")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// UserTokens returns n user JWTs, valid for ttl, for subjects prefix0...
func (c *idpClient) UserTokens(ctx context.Context, prefix string, n int, ttl time.Duration) ([]string, error) {
	s, err := c.get(ctx, fmt.Sprintf("/user-tokens?prefix=%s&n=%d&ttl=%s", prefix, n, ttl))
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if len(out) != n {
		return nil, fmt.Errorf("user tokens: got %d, want %d", len(out), n)
	}
	return out, nil
}
