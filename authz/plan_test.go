package authz

import (
	"testing"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/tokens"
)

// TestPlanTakesCredentialsBuiltAtLoad: every check of a level gets the one
// ClientAuth and the token_params the configuration built, not new ones.
func TestPlanTakesCredentialsBuiltAtLoad(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Method: "GET", Host: "orders.internal", Path: "/v1/orders/obo", Authorization: "Bearer alice"}
	first, err := PlanFor(cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	second, err := PlanFor(cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	creds := cfg.Credentials(first.Settings)
	if creds == nil || first.Request.Auth != creds.Auth || second.Request.Auth != creds.Auth {
		t.Fatal("the plan's client authentication is not the one built at load")
	}
	if p := first.Request.Params; len(p) != 1 || p[0] != (tokens.Param{Name: "requested_token_use", Value: "on_behalf_of"}) {
		t.Errorf("params %v", p)
	}
	if first.Request.GrantType != tokens.GrantJWTBearer || first.Request.SubjectToken != "alice" {
		t.Errorf("request %+v", first.Request)
	}
	if tokens.Key(first.Request) != tokens.Key(second.Request) {
		t.Error("two checks of one user got two cache keys")
	}
}
