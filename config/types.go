package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// rawFile mirrors the YAML file. Pointers tell "unset" from a zero value.
type rawFile struct {
	Listen       rawListen             `yaml:"listen"`
	Unmatched    string                `yaml:"unmatched"`
	Cache        rawCache              `yaml:"cache"`
	TokenRequest rawTokenRequest       `yaml:"token_request"`
	Defaults     rawAuth               `yaml:"defaults"`
	Services     map[string]rawService `yaml:"services"`
}

type rawListen struct {
	GRPC  string `yaml:"grpc"`
	HTTP  string `yaml:"http"`
	Admin string `yaml:"admin"`
	Pprof bool   `yaml:"pprof"`
}

type rawCache struct {
	ExpirySkew    *duration  `yaml:"expiry_skew"`
	RefreshBefore *duration  `yaml:"refresh_before"`
	MaxEntries    *int       `yaml:"max_entries"`
	PurgeInterval *duration  `yaml:"purge_interval"`
	Prewarm       *bool      `yaml:"prewarm"`
	Shared        *rawShared `yaml:"shared"`
}

type rawTokenRequest struct {
	Timeout     *duration `yaml:"timeout"`
	CAFile      *string   `yaml:"ca_file"`
	MaxInFlight *int      `yaml:"max_in_flight"`
}

// rawAuth holds the auth keys allowed at every level.
type rawAuth struct {
	Issuer             *string   `yaml:"issuer"`
	TokenURL           *string   `yaml:"token_url"`
	ClientID           *string   `yaml:"client_id"`
	ClientSecret       *string   `yaml:"client_secret"`
	ClientSecretFile   *string   `yaml:"client_secret_file"`
	ClientAuth         *string   `yaml:"client_auth"`
	GrantType          *string   `yaml:"grant_type"`
	Scope              *wordList `yaml:"scope"`
	Audience           *string   `yaml:"audience"`
	Resource           *string   `yaml:"resource"`
	SubjectTokenType   *string   `yaml:"subject_token_type"`
	RequestedTokenType *string   `yaml:"requested_token_type"`
	Header             *string   `yaml:"header"`

	// Client authentication without shared secrets (see credentials.go).
	ClientKeyFile           *string           `yaml:"client_key_file"`
	ClientKeyID             *string           `yaml:"client_key_id"`
	ClientCertFile          *string           `yaml:"client_cert_file"`
	ClientAssertionAlg      *string           `yaml:"client_assertion_alg"`
	ClientAssertionAudience *string           `yaml:"client_assertion_audience"`
	ClientAssertionFile     *string           `yaml:"client_assertion_file"`
	ClientAssertionType     *string           `yaml:"client_assertion_type"`
	TokenParams             map[string]string `yaml:"token_params"`
	ActorTokenFile          *string           `yaml:"actor_token_file"`
	ActorTokenType          *string           `yaml:"actor_token_type"`
	HeaderFormat            *string           `yaml:"header_format"`
	Callers                 *strList          `yaml:"callers"`
	RemoveHeaders           *strList          `yaml:"remove_headers"`
	// AllowInsecureHTTP permits an http:// issuer or token_url set at the
	// same level to name a host that is not loopback.
	AllowInsecureHTTP *bool `yaml:"allow_insecure_http"`
}

type rawService struct {
	rawAuth    `yaml:",inline"`
	Hosts      []string               `yaml:"hosts"`
	Routes     []string               `yaml:"routes"`
	PathPrefix string                 `yaml:"path_prefix"`
	Endpoints  map[string]rawEndpoint `yaml:"endpoints"`
}

type rawEndpoint struct {
	rawAuth `yaml:",inline"`
	Path    string   `yaml:"path"`
	Methods wordList `yaml:"methods"`
}

// UnmarshalYAML accepts the short form `name: /path` as well as a mapping.
func (e *rawEndpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.Path = n.Value
		return nil
	}
	type plain rawEndpoint
	return n.Decode((*plain)(e))
}

// duration is a time.Duration written as "30s", "1m30s".
type duration time.Duration

// Errors are *yaml.TypeError so the decoder reports them and keeps going
// (any other error aborts the whole decode).
func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return typeError(n, "%q is not a duration (like 30s or 1m)", n.Value)
	}
	*d = duration(v)
	return nil
}

// wordList is a YAML list, or one string of space-separated words. Commas do
// not separate: RFC 6749 scope tokens may contain them.
type wordList []string

func (w *wordList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*w = strings.Fields(n.Value)
		if *w == nil {
			*w = []string{}
		}
		return nil
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*w = append(wordList{}, list...)
		return nil
	}
	return typeError(n, "want a list or a space-separated string")
}

// strList is a YAML list of strings, and only that: principals and header
// names are never split on spaces. An empty list is kept (non-nil), so
// "set to nothing" differs from "not set".
type strList []string

func (l *strList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return typeError(n, "want a list")
	}
	var items []string
	if err := n.Decode(&items); err != nil {
		return err
	}
	*l = append(strList{}, items...)
	return nil
}

// typeError is a decoding problem the yaml decoder collects instead of
// stopping at, written like its own ("line N: ...").
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
