package authz

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tokenauthz/tokenauthz/scopes"
)

// Route metadata read from the wire: the few strings a check takes from
// google.protobuf.Struct values, without building the Structs.
//
// Protobuf merges a message that is given more than once as if its
// encodings were concatenated, so a message here is a list of parts, read
// in order. The other rules are protobuf-go's: a map's later entry of a
// key replaces the earlier; an entry's key is its last; a oneof holds its
// last member, message members given one after another merging; a known
// field of the wrong wire type is an unknown field. The walk (wire.go) has
// checked every byte before these run.

// Field numbers of struct.proto and of map entries.
const (
	entryKey, entryValue = 1, 2
	structFields         = 1
	listValues           = 1
	valueNull            = 1
	valueNumber          = 2
	valueString          = 3
	valueBool            = 4
	valueStruct          = 5
	valueList            = 6
)

// valueTypes are the wire types of Value's members, by field number.
var valueTypes = [...]protowire.Type{
	valueNull: protowire.VarintType, valueNumber: protowire.Fixed64Type, valueString: protowire.BytesType,
	valueBool: protowire.VarintType, valueStruct: protowire.BytesType, valueList: protowire.BytesType,
}

// maxParts is how many parts a message is expected to come in: lists of
// parts start in arrays of this size on the stack, and only unusual
// encodings append beyond it.
const maxParts = 4

type parts = [][]byte

// field is one field: its number, wire type, and value (a length-delimited
// value's contents, else its encoding).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
}

// readField reads the field b starts with, and returns its length. (The
// loops over parts and fields are written out in each reader: an iterator
// holding the parts would move every parts array to the heap.)
func readField(b []byte) (field, int) {
	num, typ, n := protowire.ConsumeTag(b)
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	f := field{num, typ, b[n : n+m]}
	if typ == protowire.BytesType {
		f.v, _ = protowire.ConsumeBytes(f.v)
	}
	return f, n + m
}

// readEntry appends the value parts of a map entry to into, and returns
// them and the entry's key (its last).
func readEntry(into parts, entry []byte) (parts, string) {
	var key string
	for b := entry; len(b) > 0; {
		f, n := readField(b)
		b = b[n:]
		switch {
		case f.typ != protowire.BytesType:
		case f.num == entryKey:
			key = view(f.v)
		case f.num == entryValue:
			into = append(into, f.v)
		}
	}
	return into, key
}

// entryKeyOf is a map entry's key: its last.
func entryKeyOf(entry []byte) string {
	var key string
	for b := entry; len(b) > 0; {
		f, n := readField(b)
		b = b[n:]
		if f.num == entryKey && f.typ == protowire.BytesType {
			key = view(f.v)
		}
	}
	return key
}

// lastEntries sets entries[i] to the entry of keys[i] in the string-keyed
// map field num of msg: its last; nil when there is none.
func lastEntries(msg parts, num protowire.Number, keys []string, entries [][]byte) {
	for _, b := range msg {
		for len(b) > 0 {
			f, n := readField(b)
			b = b[n:]
			if f.num != num || f.typ != protowire.BytesType {
				continue
			}
			key := entryKeyOf(f.v)
			for i, k := range keys {
				if k == key {
					entries[i] = f.v
				}
			}
		}
	}
}

// firstField is the value of the first length-delimited field num.
func firstField(msg parts, num protowire.Number) ([]byte, bool) {
	for _, b := range msg {
		for len(b) > 0 {
			f, n := readField(b)
			b = b[n:]
			if f.num == num && f.typ == protowire.BytesType {
				return f.v, true
			}
		}
	}
	return nil, false
}

// member reads a Value: the member in effect (0 for none), its string
// when it is string_value, and when it is struct_value or list_value the
// parts of that message, appended to into.
func member(value parts, into parts) (kind protowire.Number, s string, msg parts) {
	for _, b := range value {
		for len(b) > 0 {
			f, n := readField(b)
			b = b[n:]
			if f.num <= 0 || int(f.num) >= len(valueTypes) || f.typ != valueTypes[f.num] {
				continue // not a member: an unknown field
			}
			if f.num != kind {
				into = into[:0] // another member replaces the message, not merges
			}
			kind = f.num
			switch f.num {
			case valueString:
				s = view(f.v)
			case valueStruct, valueList:
				into = append(into, f.v)
			}
		}
	}
	return kind, s, into
}

// entryString is the string of a Struct entry's Value: "" when its member
// in effect is another, or it has none.
func entryString(entry []byte) string {
	var scratch [maxParts][]byte
	value, _ := readEntry(scratch[:0], entry)
	if kind, s, _ := member(value, nil); kind == valueString {
		return s
	}
	return ""
}

// structStrings sets out[i] to the string under keys[i] in a Struct (at
// most maxParts keys).
func structStrings(st parts, keys []string, out []string) {
	var entries [maxParts][]byte
	lastEntries(st, structFields, keys, entries[:len(keys)])
	for i, e := range entries[:len(keys)] {
		if e != nil {
			out[i] = entryString(e)
		}
	}
}

// The keys read in the tokenauthz and Envoy Gateway namespaces.
var (
	routeKeys    = []string{"service", "endpoint"}
	resourcesKey = []string{"resources"}
	gatewayKeys  = []string{routeKind, routeNamespace, routeName, routeSection}
)

// routeFields is the tokenauthz namespace's service and endpoint.
func routeFields(st parts) (service, endpoint string) {
	var out [2]string
	structStrings(st, routeKeys, out[:])
	return out[0], out[1]
}

// gatewayRoute is the route of Envoy Gateway's namespace: the first of its
// resources (see fromProto).
func gatewayRoute(st parts) scopes.RouteRef {
	var resources [1][]byte
	lastEntries(st, structFields, resourcesKey, resources[:])
	if resources[0] == nil {
		return scopes.RouteRef{}
	}
	var valueParts, listParts, resParts [maxParts][]byte
	value, _ := readEntry(valueParts[:0], resources[0])
	kind, _, list := member(value, listParts[:0])
	if kind != valueList {
		return scopes.RouteRef{}
	}
	first, ok := firstField(list, listValues)
	if !ok {
		return scopes.RouteRef{}
	}
	// Elements of a repeated field never merge: the first is one part.
	kind, _, res := member(parts{first}, resParts[:0])
	if kind != valueStruct {
		return scopes.RouteRef{}
	}
	var out [4]string
	structStrings(res, gatewayKeys, out[:])
	return scopes.RouteRef{Kind: out[0], Namespace: out[1], Name: out[2], Section: out[3]}
}
