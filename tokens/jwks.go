package tokens

import (
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// PublicJWKS is the JWK Set (RFC 7517 section 5) of the public half of the
// private_key_jwt key in keyFile, with kid (when set), alg (as SigningAlg
// chooses it) and use "sig": what an IdP registers for the client (Hydra's
// and Keycloak's "jwks", Okta's public keys). It holds no private part.
func PublicJWKS(keyFile, kid, alg string) ([]byte, error) {
	key, err := ReadPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	if alg, err = SigningAlg(key, alg); err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
	if !jwk.Valid() || !jwk.IsPublic() {
		return nil, fmt.Errorf("%w: %s: no public JWK", ErrKeyFile, keyFile)
	}
	return json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}}, "", "  ")
}
