package hydra

import (
	"net/http"
	"net/url"
	"sync/atomic"
)

// TokenRequests counts the POSTs to the token endpoint seen by the proxy.
func (h *Hydra) TokenRequests() int { return int(h.tokenRequests.Load()) }

// TokenRequestsFor counts those of one client (authenticated with HTTP
// Basic, client_secret_basic), so that tests sharing a Hydra count apart.
func (h *Hydra) TokenRequestsFor(clientID string) int {
	if n, ok := h.byClient.Load(clientID); ok {
		return int(n.(*atomic.Int64).Load())
	}
	return 0
}

// count wraps the proxy's handler to count token requests.
func (h *Hydra) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/oauth2/token" {
			h.tokenRequests.Add(1)
			if id, _, ok := r.BasicAuth(); ok {
				if id, err := url.QueryUnescape(id); err == nil {
					n, _ := h.byClient.LoadOrStore(id, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
