// Package devidp is a development-only OpenID provider for the demo and tests;
// NOT for production.
//
// It serves a real OpenID provider (github.com/zitadel/oidc/v3/pkg/op) over
// HTTP on a local address, with confidential clients that authenticate by
// client_secret_basic or client_secret_post, or by a client certificate a
// TLS proxy in front has verified (tls_client_auth, see
// [Options.ClientCertHeader]), and two grants:
//
//   - client_credentials (RFC 6749 section 4.4): a JWT access token whose
//     subject is the client;
//   - token exchange (RFC 8693): a JWT access token for the user of the
//     subject_token, which must be an access token signed by this provider
//     (see [IdP.UserToken]). An actor_token, also signed by this provider
//     (of type access_token or jwt), is verified and named in the issued
//     token's "act" claim (RFC 8693 section 4.1).
//
// Any requested scope is granted and carried in the "scope" claim; the
// "audience" and "resource" parameters go into the "aud" claim. Every issued
// token is recorded (see [IdP.Issued]) so tests can assert on what the broker
// asked for. Keys live in memory and are new on every [Start].
package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Grant types recorded in [Issued.GrantType].
const (
	GrantClientCredentials = string(oidc.GrantTypeClientCredentials)
	GrantTokenExchange     = string(oidc.GrantTypeTokenExchange)
)

const (
	defaultAddr = "127.0.0.1:0"
	defaultTTL  = 5 * time.Minute
)

// Client is a confidential client registered with the provider: by a
// secret, or by the subject DN of its TLS client certificate.
type Client struct {
	ID, Secret string
	// TLSSubject, for a client without Secret, is the subject DN (as nginx's
	// $ssl_client_s_dn writes it, e.g. "CN=tokenauthz") that the proxy's
	// [Options.ClientCertHeader] must carry (RFC 8705 section 2.1.2).
	TLSSubject string
}

// Options configures [Start]. The zero value is usable but registers no client.
type Options struct {
	Addr           string        // listen address, default "127.0.0.1:0"
	Clients        []Client      // confidential clients, basic and post auth
	AccessTokenTTL time.Duration // default 5m; the expires_in the OP issues
	// ClientCertHeader names the header in which a TLS-terminating proxy in
	// front passes the subject DN of the client certificate it verified.
	// The provider trusts it as is: the proxy must overwrite what clients
	// send. Empty: no client authenticates by certificate.
	ClientCertHeader string
}

// Issued is one token issued by the token endpoint.
type Issued struct {
	AccessToken string
	GrantType   string   // GrantClientCredentials or GrantTokenExchange
	ClientID    string   // the authenticated client
	Subject     string   // the client id for client credentials, the user for exchanges
	Scope       []string // granted scopes: exactly the requested ones
	// Audience is the requested audience ("audience" then "resource"
	// parameters). When empty, the token's aud is the client id.
	Audience []string
	Actor    string // the actor token's subject of a delegation, else ""
}

// IdP is a running development OpenID provider.
type IdP struct {
	issuer   string
	tokenURL string
	storage  *storage
	srv      *http.Server
	served   chan struct{} // closed when Serve has returned
	stopCtx  func() bool   // unregisters the ctx watcher

	mu     sync.Mutex
	issued []Issued

	tokenRequests atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Start listens on opts.Addr and serves the provider until [IdP.Close] is
// called or ctx ends.
func Start(ctx context.Context, opts Options) (*IdP, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: signing key: %w", err)
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devidp: crypto key: %w", err)
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listen: %w", err)
	}
	issuer := "http://" + issuerHost(ln.Addr())

	p := &IdP{
		issuer:  issuer,
		storage: newStorage(opts.Clients, opts.AccessTokenTTL, key),
		served:  make(chan struct{}),
	}
	handler, tokenPath, err := p.handler(cryptoKey, opts.ClientCertHeader)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: provider: %w", err)
	}
	p.tokenURL = issuer + tokenPath
	p.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln) // always ErrServerClosed or a listener error
	}()
	p.stopCtx = context.AfterFunc(ctx, p.shutdown)
	return p, nil
}

func withDefaults(opts Options) (Options, error) {
	if opts.Addr == "" {
		opts.Addr = defaultAddr
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = defaultTTL
	}
	var errs []error
	if opts.AccessTokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("AccessTokenTTL %v: must be at least 1s", opts.AccessTokenTTL))
	}
	seen := make(map[string]bool, len(opts.Clients))
	for i, c := range opts.Clients {
		switch {
		case c.ID == "" || (c.Secret == "") == (c.TLSSubject == ""):
			errs = append(errs, fmt.Errorf("Clients[%d]: ID and one of Secret or TLSSubject are required", i))
		case seen[c.ID]:
			errs = append(errs, fmt.Errorf("Clients[%d]: duplicate ID %q", i, c.ID))
		}
		seen[c.ID] = true
	}
	return opts, errors.Join(errs...)
}

// issuerHost is the listener's host:port, with a wildcard host replaced by
// the loopback address so the issuer is a URL clients can reach.
func issuerHost(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// handler builds the OP's HTTP handler: the library's routes served by
// [server], behind a counter of token endpoint hits.
func (p *IdP) handler(cryptoKey [32]byte, certHeader string) (http.Handler, string, error) {
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:      cryptoKey,
		AuthMethodPost: true,
	}, p.storage, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, "", err
	}
	endpoints := op.Endpoints{
		Authorization: op.DefaultEndpoints.Authorization,
		Token:         op.DefaultEndpoints.Token,
		Introspection: op.DefaultEndpoints.Introspection,
		Userinfo:      op.DefaultEndpoints.Userinfo,
		JwksURI:       op.DefaultEndpoints.JwksURI,
	}
	srv := &server{LegacyServer: op.NewLegacyServer(provider, endpoints), provider: provider, idp: p, certHeader: certHeader}
	routes := op.RegisterLegacyServer(srv, http.NotFound)
	tokenPath := endpoints.Token.Relative()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenPath {
			p.tokenRequests.Add(1)
		}
		routes.ServeHTTP(w, r)
	}), tokenPath, nil
}

// Issuer is the issuer URL, e.g. "http://127.0.0.1:41234"; discovery is at
// Issuer()+"/.well-known/openid-configuration".
func (p *IdP) Issuer() string { return p.issuer }

// TokenEndpoint is the URL of the token endpoint.
func (p *IdP) TokenEndpoint() string { return p.tokenURL }

// UserToken returns a JWT access token for the user subject, signed by this
// provider and expiring ttl from now (a ttl <= 0 gives an expired token). The
// token endpoint accepts it as a subject_token of type
// urn:ietf:params:oauth:token-type:access_token. It is not recorded in
// [IdP.Issued].
func (p *IdP) UserToken(subject string, ttl time.Duration) (string, error) {
	if subject == "" {
		return "", errors.New("devidp: user token: empty subject")
	}
	claims := oidc.NewAccessTokenClaims(p.issuer, subject, []string{p.issuer},
		time.Now().Add(ttl), rand.Text(), "", 0)
	signer, err := op.SignerFromKey(p.storage.signingKey)
	if err != nil {
		return "", fmt.Errorf("devidp: user token: %w", err)
	}
	token, err := crypto.Sign(claims, signer)
	if err != nil {
		return "", fmt.Errorf("devidp: user token: %w", err)
	}
	return token, nil
}

// Issued returns a copy of the record of tokens issued by the token
// endpoint, oldest first.
func (p *IdP) Issued() []Issued {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Issued, len(p.issued))
	for i, is := range p.issued {
		is.Scope = slices.Clone(is.Scope)
		is.Audience = slices.Clone(is.Audience)
		out[i] = is
	}
	return out
}

// TokenRequests is how many requests reached the token endpoint, whatever
// their outcome.
func (p *IdP) TokenRequests() int { return int(p.tokenRequests.Load()) }

// Close stops the server, closing open connections, and waits for its
// goroutines to end. It is safe to call more than once.
func (p *IdP) Close() error {
	p.stopCtx()
	p.shutdown()
	return p.closeErr
}

func (p *IdP) shutdown() {
	p.closeOnce.Do(func() {
		p.closeErr = p.srv.Close()
		<-p.served
	})
}

func (p *IdP) record(is Issued) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issued = append(p.issued, is)
}
