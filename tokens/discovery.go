package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

// failureLogInterval bounds how often one issuer's discovery failures are
// logged: the first at once, then at most one line per interval.
const failureLogInterval = 30 * time.Second

// Discovery finds the token endpoint of an issuer from its metadata:
// <issuer>/.well-known/openid-configuration (OpenID Connect Discovery 1.0
// section 4), else the RFC 8414 document. A document is believed only when
// its "issuer" is exactly the configured issuer (OIDC Discovery section
// 4.3, RFC 8414 section 3.3) and, for an https issuer, its token endpoint is
// https too: a document served for another issuer, or one that would send
// the client secret and subject tokens over plain http, is refused. A found
// endpoint is kept for the life of the Discovery. The zero value is ready to
// use; it must not be copied after first use.
type Discovery struct {
	// HTTP sends the requests; nil means http.DefaultClient. Redirects are
	// never followed, whatever its CheckRedirect says.
	HTTP *http.Client
	// MaxBody bounds how much of a metadata document is read; 0 means DefaultMaxBody.
	MaxBody int64
	// Timeout bounds one attempt (both documents); 0 means DefaultDiscoveryTimeout.
	Timeout time.Duration
	// Log, if set, gets a line when background discovery of an issuer
	// fails (rate-limited per issuer) and when it succeeds after failing.
	Log *slog.Logger

	known   sync.Map // configured issuer -> token endpoint
	mtls    sync.Map // configured issuer -> mtls_endpoint_aliases.token_endpoint, when given
	lastErr sync.Map // configured issuer -> error of the latest failed attempt
	group   singleflight.Group
	mu      sync.Mutex
	tracked map[string]context.CancelFunc // issuers discovered in the background
}

// Pending is an issuer whose token endpoint is not known yet, and why.
type Pending struct {
	Issuer    string
	LastError string // "" before the first attempt ended
}

// Endpoint returns the token endpoint of issuer: the one already found, or
// the result of one attempt now. Concurrent first calls for an issuer share
// one attempt, which outlives a caller that gives up; each caller waits at
// most until its ctx is done. Failures wrap ErrUnavailable, except an
// empty issuer: ErrClientRejected.
func (d *Discovery) Endpoint(ctx context.Context, issuer string) (string, error) {
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

// Track makes issuers the set discovered in the background: each one not
// known yet is retried with backoff (250ms doubling to 5s, jittered) until
// it is found, ctx is done, or a later Track no longer lists it.
func (d *Discovery) Track(ctx context.Context, issuers []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[string]bool{}
	for _, iss := range issuers {
		want[iss] = true
		if _, running := d.tracked[iss]; !running {
			if d.tracked == nil {
				d.tracked = map[string]context.CancelFunc{}
			}
			loopCtx, cancel := context.WithCancel(ctx)
			d.tracked[iss] = cancel
			go d.retry(loopCtx, iss)
		}
	}
	for iss, cancel := range d.tracked {
		if !want[iss] {
			cancel()
			delete(d.tracked, iss)
		}
	}
}

// Ready reports whether the token endpoint of every issuer is known.
func (d *Discovery) Ready(issuers []string) bool { return len(d.Pending(issuers)) == 0 }

// Pending lists the issuers whose token endpoint is not known, in order,
// each with the error of its latest attempt.
func (d *Discovery) Pending(issuers []string) []Pending {
	var out []Pending
	for _, iss := range issuers {
		if _, ok := d.known.Load(iss); ok {
			continue
		}
		p := Pending{Issuer: iss}
		if err, ok := d.lastErr.Load(iss); ok {
			p.LastError = err.(error).Error()
		}
		out = append(out, p)
	}
	return out
}

func (d *Discovery) retry(ctx context.Context, issuer string) {
	var lastLog time.Time
	failed := 0
	for n := 1; ; n++ {
		_, err := d.Endpoint(ctx, issuer)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if failed > 0 && d.Log != nil {
				d.Log.Info("token endpoint discovered", "issuer", issuer, "failed_attempts", failed)
			}
			return
		}
		failed++
		if d.Log != nil && time.Since(lastLog) >= failureLogInterval {
			lastLog = time.Now()
			d.Log.Warn("discovery failed; retrying", "issuer", issuer, "attempts", failed, "err", err)
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

// discover makes one attempt and remembers its outcome.
func (d *Discovery) discover(ctx context.Context, issuer string) (string, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDiscoveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	docs, err := metadataURLs(issuer)
	if err != nil {
		return "", d.failed(issuer, err.Error())
	}
	var errs []string
	for _, doc := range docs {
		u, alias, err := d.fetch(ctx, issuer, doc)
		if err == nil {
			if alias != "" {
				d.mtls.Store(issuer, alias)
			}
			d.known.Store(issuer, u)
			d.lastErr.Delete(issuer)
			return u, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return "", d.failed(issuer, strings.Join(errs, "; "))
}

func (d *Discovery) failed(issuer, why string) error {
	err := &Error{Class: ErrUnavailable, Description: "discovery for " + issuer + ": " + why}
	d.lastErr.Store(issuer, error(err))
	return err
}

// metadataURLs lists where issuer's metadata may be: OIDC Discovery's
// <issuer>/.well-known/openid-configuration, RFC 8414's
// <scheme://host>/.well-known/oauth-authorization-server<path>, and, for
// an issuer with a path, the same name appended to it, which some servers
// use instead.
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("issuer is not an absolute http(s) URL")
	}
	base := strings.TrimSuffix(issuer, "/")
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	urls := []string{base + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path}
	if path != "" {
		urls = append(urls, base+"/.well-known/oauth-authorization-server")
	}
	return urls, nil
}

// fetch reads one metadata document and returns its token_endpoint, and
// its mtls_endpoint_aliases.token_endpoint when it has a usable one, if the
// document is issuer's own.
func (d *Discovery) fetch(ctx context.Context, issuer, docURL string) (endpoint, mtlsAlias string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", "", errors.New("invalid issuer URL")
	}
	req.Header.Set("Accept", "application/json")
	ans, err := do(ctx, d.HTTP, req, d.MaxBody)
	if err != nil {
		if e, ok := errors.AsType[*Error](err); ok {
			return "", "", fmt.Errorf("%s: %s", docURL, e.detail())
		}
		return "", "", fmt.Errorf("%s: %w", docURL, err)
	}
	if ans.status != http.StatusOK {
		return "", "", fmt.Errorf("%s: HTTP %d", docURL, ans.status)
	}
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		MTLSAliases   struct {
			TokenEndpoint string `json:"token_endpoint"`
		} `json:"mtls_endpoint_aliases"` // RFC 8705 section 5
	}
	if json.Unmarshal(ans.body, &meta) != nil {
		return "", "", fmt.Errorf("%s: not a JSON object", docURL)
	}
	if meta.Issuer != issuer {
		return "", "", fmt.Errorf("%s: issuer mismatch: the document names %q, the configuration %q (they must be equal, trailing slash included)",
			docURL, clipText(printable(meta.Issuer)), issuer)
	}
	u, err := url.Parse(meta.TokenEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", fmt.Errorf("%s: no usable token_endpoint", docURL)
	}
	if strings.HasPrefix(issuer, "https:") && u.Scheme != "https" {
		return "", "", fmt.Errorf("%s: token_endpoint %s://%s is not https, while the issuer is", docURL, u.Scheme, clipText(printable(u.Host)))
	}
	if a := meta.MTLSAliases.TokenEndpoint; usableEndpoint(a) {
		mtlsAlias = a
	}
	return meta.TokenEndpoint, mtlsAlias, nil
}
