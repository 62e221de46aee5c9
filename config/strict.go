package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownKeys walks the YAML tree beside the Go type it will decode into and
// reports every mapping key the type has no field for, with its full key path
// and line. Decoders stop at the first problem; users want them all at once.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) []error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) && n.Kind != yaml.MappingNode {
		return nil // a custom scalar or short form
	}
	if n.Kind != yaml.MappingNode {
		return nil // type mismatches are the decoder's to report
	}
	var errs []error
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, unknownKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
	case reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, problem(join(path, k.Value), k.Line, ErrUnknownKey, "unknown key"))
				continue
			}
			errs = append(errs, unknownKeys(n.Content[i+1], ft, join(path, k.Value))...)
		}
	}
	return errs
}

// yamlFields maps yaml key names to field types, flattening ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keyError is one configuration problem, naming its key path (and line when known).
type keyError struct {
	Key  string
	Line int
	Msg  string
	Kind error
}

func (e *keyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

func (e *keyError) Unwrap() error { return e.Kind }

func problem(key string, line int, kind error, format string, args ...any) error {
	return &keyError{Key: key, Line: line, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
