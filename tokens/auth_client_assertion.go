package tokens

import (
	"sync/atomic"
	"time"
)

// clientAssertion is a client assertion someone else signs (RFC 7521
// section 4.2): a projected service-account token for Entra ID workload
// identity or Keycloak's federated clients, a SPIFFE JWT-SVID. The current
// content of the file is sent with each request.
type clientAssertion struct {
	file *TokenFile
	typ  string // client_assertion_type
	id   atomic.Pointer[assertionID]
}

// assertionID is an Identity built for one state of the file.
type assertionID struct {
	from *fileIdentity
	id   string
}

// ClientAssertion sends the token in file as client_assertion, of type
// assertionType (RFC 7523's jwt-bearer or the SPIFFE profile's jwt-spiffe).
func ClientAssertion(file *TokenFile, assertionType string) ClientAuth {
	return &clientAssertion{file: file, typ: assertionType}
}

func (a *clientAssertion) Apply(o *Outgoing) error {
	tok, err := a.file.Read(o.Now)
	if err != nil {
		return err
	}
	o.setClientID()
	o.Form.Set("client_assertion_type", a.typ)
	o.Form.Set("client_assertion", tok)
	o.redact(tok)
	return nil
}

// Identity is the assertion type, the file's path and the subject of its
// last token (see TokenFile.Identity); built again only when they change.
func (a *clientAssertion) Identity() string {
	cur := a.file.seen.Load()
	if c := a.id.Load(); c != nil && c.from == cur {
		return c.id
	}
	c := &assertionID{from: cur, id: identity("client_assertion", a.typ, cur.id)}
	a.id.Store(c)
	return c.id
}

func (a *clientAssertion) String() string {
	return "client_assertion, the token in " + a.file.Path + " (redacted), client_assertion_type " + a.typ
}

// Usable reports why the assertion cannot be used now: a missing, empty or
// expired file.
func (a *clientAssertion) Usable(now time.Time) error { return a.file.Usable(now) }
