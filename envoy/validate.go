package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// The extensions the configurations name in typed_config: linked in so
	// their @type URLs resolve. A new extension in a config needs its
	// package here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// MaxCheckTimeout bounds the ext_authz timeout Policy accepts: Envoy holds
// the request that long when tokenauthz is slow.
const MaxCheckTimeout = 5 * time.Second

// Decode reads YAML into m strictly: an unknown field or an @type URL no
// linked package registers is an error, as it is for Envoy.
func Decode(data []byte, m proto.Message) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err // "yaml: line N: ..."
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("yaml to json: %w", err)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, m)
}

// Validate runs the API's validation rules (ValidateAll) on m and on every
// message packed in an Any inside it, at any depth: ValidateAll alone stops
// at an Any, so it never sees a typed_config.
func Validate(m proto.Message) error {
	return walk(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), func(path string, m proto.Message) error {
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
}

// Policy checks every ext_authz filter and HTTP connection manager inside
// m against what tokenauthz needs (CheckExtAuthz, CheckConnectionManager).
func Policy(m proto.Message) error {
	return walk(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), func(path string, m proto.Message) error {
		switch m := m.(type) {
		case *extauthzv3.ExtAuthz:
			return CheckExtAuthz(path, m)
		case *hcmv3.HttpConnectionManager:
			return CheckConnectionManager(path, m)
		}
		return nil
	})
}

// CheckConnectionManager requires the path and host normalisation that
// makes Envoy route on what tokenauthz decides on: dot segments resolved
// (normalize_path), slashes merged (merge_slashes), escaped slashes
// unescaped with a redirect or refused, and a trailing host dot dropped.
// Without them /v1/orders/history/../../x is routed by the history route
// while tokenauthz resolves the path to another endpoint's settings.
func CheckConnectionManager(path string, m *hcmv3.HttpConnectionManager) error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: http_connection_manager: "+format, append([]any{path}, args...)...))
	}
	if !m.GetNormalizePath().GetValue() {
		fail("normalize_path must be true")
	}
	if !m.GetMergeSlashes() {
		fail("merge_slashes must be true")
	}
	switch a := m.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_REJECT_REQUEST:
	default:
		fail("path_with_escaped_slashes_action is %s, want UNESCAPE_AND_REDIRECT or REJECT_REQUEST", a)
	}
	if !m.GetStripTrailingHostDot() {
		fail("strip_trailing_host_dot must be true")
	}
	return errors.Join(errs...)
}

// CheckExtAuthz is Policy for one ext_authz filter configuration.
func CheckExtAuthz(path string, f *extauthzv3.ExtAuthz) error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: ext_authz: "+format, append([]any{path}, args...)...))
	}
	if v := f.GetTransportApiVersion(); v.String() != "V3" {
		fail("transport_api_version is %s, want V3", v)
	}
	if f.GetFailureModeAllow() {
		fail("failure_mode_allow: true lets requests through without a token")
	}
	if !f.GetValidateMutations() {
		fail("validate_mutations must be true: header values tokenauthz returns are checked by Envoy too")
	}
	if c := f.GetStatusOnError().GetCode(); c != 503 {
		fail("status_on_error is %d, want 503", c)
	}
	timeout := f.GetGrpcService().GetTimeout()
	if f.GetHttpService() != nil {
		timeout = f.GetHttpService().GetServerUri().GetTimeout()
	}
	if d := timeout.AsDuration(); timeout == nil || d <= 0 || d > MaxCheckTimeout {
		fail("timeout is %v, want one in (0, %v]", d, MaxCheckTimeout)
	}
	return errors.Join(errs...)
}

// walk calls visit on m and on every message packed in an Any under it
// (ValidateAll covers the rest); path names the fields that led there.
func walk(m protoreflect.Message, path string, visit func(path string, m proto.Message) error) error {
	return errors.Join(visit(path, m.Interface()), walkFields(m, path, visit))
}

func walkFields(m protoreflect.Message, path string, visit func(path string, m proto.Message) error) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return walk(inner.ProtoReflect(), path+"("+string(inner.ProtoReflect().Descriptor().Name())+")", visit)
	}
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				errs = append(errs, walkFields(v.Message(), p+"["+k.String()+"]", visit))
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				errs = append(errs, walkFields(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), visit))
			}
		case !fd.IsMap() && !fd.IsList() && fd.Message() != nil:
			errs = append(errs, walkFields(v.Message(), p, visit))
		}
		return true
	})
	return errors.Join(errs...)
}
