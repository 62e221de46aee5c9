package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultDiscoveryTimeout bounds one discovery attempt when
// Discovery.Timeout is zero.
const DefaultDiscoveryTimeout = 5 * time.Second

// Discovery finds the token endpoint of an issuer from its metadata:
// <issuer>/.well-known/openid-configuration (OpenID Connect Discovery 1.0),
// else <issuer>/.well-known/oauth-authorization-server (RFC 8414). A found
// endpoint is kept for the life of the Discovery. The zero value is ready to
// use; it must not be copied after first use.
type Discovery struct {
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// MaxBody bounds how much of a metadata document is read; 0 means DefaultMaxBody.
	MaxBody int64
	// Timeout bounds one attempt (both documents); 0 means DefaultDiscoveryTimeout.
	Timeout time.Duration

	known   sync.Map // issuer without trailing slash -> token endpoint
	mtls    sync.Map // issuer without trailing slash -> mtls_endpoint_aliases.token_endpoint, when given
	group   singleflight.Group
	mu      sync.Mutex
	started map[string]bool // issuers given to Start
}

// Endpoint returns the token endpoint of issuer: the one already found, or
// the result of one attempt now. Concurrent first calls for an issuer share
// one attempt, which outlives a caller that gives up; each caller waits at
// most until its ctx is done. Failures wrap ErrUnavailable, except an
// empty issuer: ErrClientRejected.
func (d *Discovery) Endpoint(ctx context.Context, issuer string) (string, error) {
	issuer = strings.TrimRight(issuer, "/")
	if u, ok := d.known.Load(issuer); ok {
		return u.(string), nil
	}
	if issuer == "" {
		return "", &Error{Class: ErrClientRejected, Description: "no token URL and no issuer"}
	}
	ch := d.group.DoChan(issuer, func() (any, error) {
		if u, ok := d.known.Load(issuer); ok { // found by an attempt that just ended
			return u, nil
		}
		return d.discover(context.WithoutCancel(ctx), issuer)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return "", fmt.Errorf("tokens: discovery for %s canceled: %w", issuer, context.Canceled)
		}
		return "", &Error{Class: ErrUnavailable, Description: "discovery for " + issuer + ": timeout"}
	}
}

// Start discovers issuers in the background, retrying each with backoff
// (250ms doubling to 5s, jittered) until it is found or ctx is done.
func (d *Discovery) Start(ctx context.Context, issuers []string) {
	for _, iss := range issuers {
		iss = strings.TrimRight(iss, "/")
		d.mu.Lock()
		if d.started == nil {
			d.started = make(map[string]bool)
		}
		seen := d.started[iss]
		d.started[iss] = true
		d.mu.Unlock()
		if !seen {
			go d.retry(ctx, iss)
		}
	}
}

// Ready reports whether the token endpoint of every issuer is known.
func (d *Discovery) Ready(issuers []string) bool {
	for _, iss := range issuers {
		if _, ok := d.known.Load(strings.TrimRight(iss, "/")); !ok {
			return false
		}
	}
	return true
}

func (d *Discovery) retry(ctx context.Context, issuer string) {
	for n := 1; ; n++ {
		if _, err := d.Endpoint(ctx, issuer); err == nil {
			return
		}
		t := time.NewTimer(backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// discover makes one attempt and remembers a success.
func (d *Discovery) discover(ctx context.Context, issuer string) (string, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDiscoveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []string
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		u, alias, err := d.fetch(ctx, issuer+path)
		if err == nil {
			if alias != "" {
				d.mtls.Store(issuer, alias)
			}
			d.known.Store(issuer, u)
			return u, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return "", &Error{Class: ErrUnavailable, Description: "discovery for " + issuer + ": " + strings.Join(errs, "; ")}
}

// fetch reads one metadata document and returns its token_endpoint, and
// its mtls_endpoint_aliases.token_endpoint when it has a usable one.
func (d *Discovery) fetch(ctx context.Context, docURL string) (endpoint, mtlsAlias string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", "", errors.New("invalid issuer URL")
	}
	req.Header.Set("Accept", "application/json")
	ans, err := do(ctx, d.HTTP, req, d.MaxBody)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return "", "", fmt.Errorf("%s: %s", docURL, e.Description)
		}
		return "", "", fmt.Errorf("%s: %w", docURL, err)
	}
	if ans.status != http.StatusOK {
		return "", "", fmt.Errorf("%s: HTTP %d", docURL, ans.status)
	}
	var meta struct {
		TokenEndpoint string `json:"token_endpoint"`
		MTLSAliases   struct {
			TokenEndpoint string `json:"token_endpoint"`
		} `json:"mtls_endpoint_aliases"` // RFC 8705 section 5
	}
	if json.Unmarshal(ans.body, &meta) != nil {
		return "", "", fmt.Errorf("%s: not a JSON object", docURL)
	}
	u, err := url.Parse(meta.TokenEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", fmt.Errorf("%s: no usable token_endpoint", docURL)
	}
	if a := meta.MTLSAliases.TokenEndpoint; usableEndpoint(a) {
		mtlsAlias = a
	}
	return meta.TokenEndpoint, mtlsAlias, nil
}
