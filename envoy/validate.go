package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// The extensions the configurations name in typed_config: linked in so
	// their @type URLs resolve. A new extension in a config needs its
	// package here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// MaxCheckTimeout bounds the ext_authz timeout Policy accepts: Envoy holds
// the request that long when tokenauthz is slow.
const MaxCheckTimeout = 2 * time.Second

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

// Policy checks every ext_authz filter inside m against what tokenauthz
// needs: the v3 API, no request let through when tokenauthz cannot answer
// (failure_mode_allow false, status_on_error 503) and a bounded timeout.
func Policy(m proto.Message) error {
	return walk(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), func(path string, m proto.Message) error {
		if f, ok := m.(*extauthzv3.ExtAuthz); ok {
			return CheckExtAuthz(path, f)
		}
		return nil
	})
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
