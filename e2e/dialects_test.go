package e2e

import (
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// No Entra ID or Google STS can run here: a recording server stands in for
// each and checks the request field by field against the IdP's public
// documentation, as cited on each dialect.

// Entra ID on-behalf-of with a certificate credential:
//   - https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-on-behalf-of-flow
//     ("Second case: Access token request with a certificate"): grant_type
//     jwt-bearer, client_id, client_assertion_type, client_assertion,
//     assertion, scope, requested_token_use=on_behalf_of.
//   - https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials:
//     header alg PS256, typ JWT, x5t#S256 (base64url SHA-256 of the
//     certificate's DER); claims aud (the v2.0 token endpoint), exp, iss
//     and sub (the client id), jti, nbf.
const entraConfig = `
defaults:
  token_url: %[1]s/contoso.onmicrosoft.com/oauth2/v2.0/token
  client_id: 6731de76-14a6-49ae-97bc-6eba6914391e
services:
  graph:
    hosts: [graph.internal]
    grant_type: jwt_bearer
    client_auth: private_key_jwt
    client_key_file: %[2]s/entra.key
    client_cert_file: %[2]s/entra.crt
    client_assertion_alg: PS256
    scope: https://graph.microsoft.com/.default
    token_params: {requested_token_use: on_behalf_of}
  graph-secret:
    hosts: [graph-secret.internal]
    grant_type: jwt_bearer
    client_auth: post
    client_secret: entra-client-secret
    scope: https://graph.microsoft.com/user.read
    token_params: {requested_token_use: on_behalf_of}
`

// Google STS, workload identity federation, no client authentication:
//   - https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token:
//     grant type token-exchange, audience (the provider's full resource
//     name), scope, requested token type access_token, subject token and
//     its type (jwt or id_token); "do not send the Authorization header".
//   - Google's own clients post these form-encoded with their RFC 8693
//     names (google-auth-library-python, google/oauth2/sts.py).
const googleConfig = `
services:
  gcs:
    hosts: [gcs.internal]
    token_url: %[1]s/v1/token
    grant_type: token_exchange
    client_auth: none
    audience: //iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/my-pool/providers/my-provider
    scope: https://www.googleapis.com/auth/cloud-platform
    subject_token_type: urn:ietf:params:oauth:token-type:jwt
    requested_token_type: urn:ietf:params:oauth:token-type:access_token
`

// recorder is a token endpoint that keeps each request and answers with
// answer.
type recorder struct {
	srv    *httptest.Server
	answer string
	mu     sync.Mutex
	got    []*http.Request // with PostForm parsed
}

func newRecorder(t *testing.T, answer string) *recorder {
	rec := &recorder{answer: answer}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("form: %v", err)
		}
		rec.mu.Lock()
		rec.got = append(rec.got, r)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, rec.answer)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) last(t *testing.T) *http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) == 0 {
		t.Fatal("the token endpoint got no request")
	}
	return rec.got[len(rec.got)-1]
}

// exactForm fails unless r's form is want: no field missing, none extra.
func exactForm(t *testing.T, r *http.Request, want url.Values) {
	t.Helper()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("%s with Content-Type %q, want a form POST", r.Method, r.Header.Get("Content-Type"))
	}
	if got := r.PostForm.Encode(); got != want.Encode() {
		t.Errorf("form\n %s\nwant\n %s", got, want.Encode())
	}
}

func TestEntraOnBehalfOf(t *testing.T) {
	entra := newRecorder(t, `{"token_type":"Bearer","scope":"https://graph.microsoft.com/.default","expires_in":3599,"ext_expires_in":3599,"access_token":"graph-token"}`)
	dir := t.TempDir()
	key := testkeys.RSA(t)
	testkeys.Write(t, dir, "entra.key", testkeys.PKCS8(t, key))
	cert := testkeys.NewCA(t, "Entra test CA").Issue(t, key, "tokenauthz", 9)
	testkeys.Write(t, dir, "entra.crt", cert)
	client := startBroker(t, fmt.Sprintf(entraConfig, entra.srv.URL, dir)).client
	const clientID = "6731de76-14a6-49ae-97bc-6eba6914391e"
	tokenURL := entra.srv.URL + "/contoso.onmicrosoft.com/oauth2/v2.0/token"
	user := testkeys.SignJWT(t, testkeys.EC(t, elliptic.P256()), jose.ES256, "", testkeys.Claims("https://login.microsoftonline.com/contoso/v2.0", "alice", "api://tokenauthz", time.Hour))

	t.Run("certificate-credential", func(t *testing.T) {
		if tok := injected(t, client, request("GET", "graph.internal", "/v1.0/me", user)); tok != "graph-token" {
			t.Fatalf("injected %q", tok)
		}
		r := entra.last(t)
		if r.URL.Path != "/contoso.onmicrosoft.com/oauth2/v2.0/token" || r.Header.Get("Authorization") != "" {
			t.Errorf("POST %s with Authorization %q", r.URL.Path, r.Header.Get("Authorization"))
		}
		assertion := r.PostForm.Get("client_assertion")
		exactForm(t, r, url.Values{
			"grant_type":            {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
			"client_id":             {clientID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
			"assertion":             {user},
			"scope":                 {"https://graph.microsoft.com/.default"},
			"requested_token_use":   {"on_behalf_of"},
		})
		jws, err := jose.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.PS256})
		if err != nil {
			t.Fatalf("client_assertion is not a PS256 JWS: %v", err)
		}
		payload, err := jws.Verify(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Protected
		sum := sha256.Sum256(cert.Bytes)
		if h.ExtraHeaders["typ"] != "JWT" || h.ExtraHeaders["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("header %+v: want typ JWT and x5t#S256 of the certificate", h.ExtraHeaders)
		}
		var c struct {
			Aud, Iss, Sub, Jti string
			Exp, Nbf           int64
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		now := time.Now().Unix()
		if c.Aud != tokenURL || c.Iss != clientID || c.Sub != clientID || c.Jti == "" || c.Nbf > now || c.Exp <= now || c.Exp > now+600 {
			t.Errorf("claims %+v", c)
		}
	})
	t.Run("shared-secret", func(t *testing.T) {
		injected(t, client, request("GET", "graph-secret.internal", "/v1.0/me", user))
		exactForm(t, entra.last(t), url.Values{
			"grant_type":          {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
			"client_id":           {clientID},
			"client_secret":       {"entra-client-secret"},
			"assertion":           {user},
			"scope":               {"https://graph.microsoft.com/user.read"},
			"requested_token_use": {"on_behalf_of"},
		})
	})
}

func TestGoogleSTS(t *testing.T) {
	sts := newRecorder(t, `{"access_token":"ya29.federated","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3599}`)
	client := startBroker(t, fmt.Sprintf(googleConfig, sts.srv.URL)).client
	workload := testkeys.SignJWT(t, testkeys.EC(t, elliptic.P256()), jose.ES256, "", testkeys.Claims("https://kubernetes.default.svc", "system:serviceaccount:ns:app", "//iam.googleapis.com/...", time.Hour))
	if tok := injected(t, client, request("GET", "gcs.internal", "/storage/v1/b", workload)); tok != "ya29.federated" {
		t.Fatalf("injected %q", tok)
	}
	r := sts.last(t)
	if r.URL.Path != "/v1/token" || r.Header.Get("Authorization") != "" {
		t.Errorf("POST %s with Authorization %q: Google says to send none", r.URL.Path, r.Header.Get("Authorization"))
	}
	exactForm(t, r, url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"audience":             {"//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/my-pool/providers/my-provider"},
		"scope":                {"https://www.googleapis.com/auth/cloud-platform"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"subject_token":        {workload},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:jwt"},
	})
}
