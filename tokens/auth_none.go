package tokens

// noAuth authenticates nothing (a public client, RFC 6749 section 2.1;
// Google's STS): client_id goes in the form when set.
type noAuth struct{}

// NoClientAuth sends no client credentials.
func NoClientAuth() ClientAuth { return noAuth{} }

func (noAuth) Apply(o *Outgoing) error { o.setClientID(); return nil }

func (noAuth) Identity() string { return "none" }

func (noAuth) String() string { return "none (no client credentials)" }
