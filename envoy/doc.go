// Package envoy holds example Envoy configurations for tokenauthz and the
// checks that keep them loadable: envoy*.yaml are Envoy v3 bootstraps (an
// egress sidecar with the gRPC ext_authz filter, an ingress sidecar that
// exchanges the caller's token, and an egress sidecar in ext_authz HTTP
// mode), tokenauthz*.yaml the tokenauthz configuration they route to.
//
// Decode, Validate and Policy load any Envoy message written in YAML the way
// Envoy would reject it: unknown fields, unresolvable @type URLs and values
// that break the API's validation rules all fail, inside typed_config too.
// The tests here and in deploy/ use them; tokenauthz itself does not.
package envoy
