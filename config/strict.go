package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkTree walks the YAML tree beside the Go type it will decode into and
// reports, each with its full key path and line, every mapping key the type
// has no field for, every key repeated in one mapping and every value the type
// cannot hold. The decoder stops at its first hard error and names no key
// paths; users want every problem at once, each pointing at its key.
func checkTree(n *yaml.Node, t reflect.Type, path string) []error {
	c := checker{done: map[checked]bool{}}
	return c.check(n, t, path)
}

// checker remembers the mappings it has checked, so a mapping reused through
// an alias or a merge key ("<<: *base") is reported once, where it is written.
type checker struct{ done map[checked]bool }

type checked struct {
	node *yaml.Node
	typ  reflect.Type
}

func (c *checker) check(n *yaml.Node, t reflect.Type, path string) []error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // recursion follows t, which is finite, so cycles end at a leaf
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || (t.Kind() != reflect.Struct && t.Kind() != reflect.Map) {
		return checkValue(n, t, path)
	}
	if c.done[checked{n, t}] {
		return nil
	}
	c.done[checked{n, t}] = true
	var errs []error
	var fields map[string]reflect.Type
	if t.Kind() == reflect.Struct {
		fields = yamlFields(t)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" { // "<<: *base" or "<<: [*a, *b]"
			merged := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				merged = v.Content
			}
			for _, m := range merged {
				errs = append(errs, c.check(m, t, path)...)
			}
			continue
		}
		key := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			errs = append(errs, problem(key, k.Line, ErrSyntax, "repeats the key set at line %d", first))
			continue
		}
		seen[k.Value] = k.Line
		var ft reflect.Type
		if fields == nil {
			ft = t.Elem()
		} else if ft = fields[k.Value]; ft == nil {
			errs = append(errs, problem(key, k.Line, ErrUnknownKey, "unknown key"))
			continue
		}
		errs = append(errs, c.check(v, ft, key)...)
	}
	return errs
}

// checkValue decodes one value into a fresh t and reports why it cannot.
func checkValue(n *yaml.Node, t reflect.Type, path string) []error {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	key := path
	if key == "" {
		key = "(top level)"
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{problem(key, n.Line, ErrInvalidValue, "%v", err)}
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, problem(key, n.Line, ErrInvalidValue, "%s", stripLine(msg)))
	}
	return errs
}

// stripLine drops the decoder's "line N: " prefix; keyError prints the line.
func stripLine(msg string) string {
	var line int
	if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			return rest
		}
	}
	return msg
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
