package authz

// A CheckRequest read straight from its wire bytes: only the fields a check
// uses are taken (as strings into the bytes, not copies), the rest is
// checked and skipped, and nothing else is allocated. It must agree with
// proto.Unmarshal on every input: the same values of every field it takes
// (merged messages, the last of repeated scalars, the later of two map
// entries with one key, both header encodings), and the same rejection of
// malformed bytes, for which it walks every field of the message the way
// protobuf-go's decoder does (internal/impl/decode.go, codec_map.go): wire
// types, lengths, UTF-8 of proto3 strings, field numbers, the recursion
// limit; a known field of the wrong wire type is an unknown field. The
// differential fuzz target FuzzWireCheck holds it to that.

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var errWire = errors.New("malformed CheckRequest")

// wireKind is how a field's value is encoded.
type wireKind uint8

const (
	kindVarint wireKind = iota + 1 // zero: no such field
	kindFixed32
	kindFixed64
	kindBytes
	kindString
	kindMessage
	kindMap
)

// wireField is a field of a schema: its kind, whether it repeats (a
// repeated scalar may come packed), whether its strings must be UTF-8, and
// the schema of a message (or of a map's message values).
type wireField struct {
	kind     wireKind
	repeated bool
	utf8     bool
	msg      *wireSchema
	key, val wireKind // maps
	keyUTF8  bool
	valUTF8  bool
	// A field the check reads is marked with the path of the message it
	// is read in and the path it leads to: a message type may come in
	// several places (source and destination are both Peers,
	// metadata_context and route_metadata_context both Metadata), and
	// only one is the check's.
	in, path wirePath
}

// wireSchema is a message type, its fields indexed by number.
type wireSchema struct {
	fields []wireField
}

func (s *wireSchema) field(n protowire.Number) *wireField {
	if int(n) < len(s.fields) {
		return &s.fields[n]
	}
	return nil
}

// wirePath names the messages and fields on the way to what a check reads;
// everything else is pathNone, walked only to be checked.
type wirePath uint8

const (
	pathNone wirePath = iota
	pathRequest
	pathAttributes
	pathSource
	pathAttrRequest
	pathHTTP
	pathHeaderMap
	pathHeaderValue
	pathRouteMeta
	// fields
	pathID
	pathMethod
	pathPath
	pathHost
	pathPrincipal
	pathHeaders
	pathContextExtensions
	pathFilterMetadata
	pathKey
	pathValue
	pathRawValue
)

// schemas compiles message descriptors into schemas, once each.
type schemas map[protoreflect.FullName]*wireSchema

func (c schemas) compile(md protoreflect.MessageDescriptor) *wireSchema {
	if s, ok := c[md.FullName()]; ok {
		return s
	}
	s := &wireSchema{}
	c[md.FullName()] = s
	fds := md.Fields()
	top := 0
	for i := range fds.Len() {
		top = max(top, int(fds.Get(i).Number()))
	}
	s.fields = make([]wireField, top+1)
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := &s.fields[fd.Number()]
		f.repeated, f.utf8 = fd.Cardinality() == protoreflect.Repeated, enforceUTF8(fd)
		if fd.Cardinality() == protoreflect.Required {
			panic(fmt.Sprintf("authz: wire decoder: field %s is required", fd.FullName()))
		}
		if fd.IsMap() {
			f.kind = kindMap
			f.key, f.keyUTF8 = kindOf(fd.MapKey()), enforceUTF8(fd.MapKey())
			f.val, f.valUTF8 = kindOf(fd.MapValue()), enforceUTF8(fd.MapValue())
			if f.key != kindString || f.val != kindString && f.val != kindMessage {
				panic(fmt.Sprintf("authz: wire decoder: map %s is not of strings to strings or messages", fd.FullName()))
			}
			if f.val == kindMessage {
				f.msg = c.compile(fd.MapValue().Message())
			}
			continue
		}
		f.kind = kindOf(fd)
		if f.kind == kindMessage {
			f.msg = c.compile(fd.Message())
		}
	}
	return s
}

// checkSchema is CheckRequest's schema with the check's paths marked,
// built once from the descriptors protobuf-go decodes with.
var checkSchema = sync.OnceValue(func() *wireSchema {
	c := schemas{}
	desc := func(m proto.Message) *wireSchema { return c.compile(m.ProtoReflect().Descriptor()) }
	check := desc(&authv3.CheckRequest{})
	attrs := desc(&authv3.AttributeContext{})
	peer := desc(&authv3.AttributeContext_Peer{})
	req := desc(&authv3.AttributeContext_Request{})
	http := desc(&authv3.AttributeContext_HttpRequest{})
	hmap := desc(&corev3.HeaderMap{})
	hval := desc(&corev3.HeaderValue{})
	meta := desc(&corev3.Metadata{})
	mark := func(s *wireSchema, in wirePath, n protowire.Number, p wirePath) {
		s.fields[n].in, s.fields[n].path = in, p
	}
	mark(check, pathRequest, 1, pathAttributes)
	mark(attrs, pathAttributes, 1, pathSource)
	mark(attrs, pathAttributes, 4, pathAttrRequest)
	mark(attrs, pathAttributes, 10, pathContextExtensions)
	mark(attrs, pathAttributes, 13, pathRouteMeta)
	mark(peer, pathSource, 4, pathPrincipal)
	mark(req, pathAttrRequest, 2, pathHTTP)
	mark(http, pathHTTP, 1, pathID)
	mark(http, pathHTTP, 2, pathMethod)
	mark(http, pathHTTP, 3, pathHeaders)
	mark(http, pathHTTP, 4, pathPath)
	mark(http, pathHTTP, 5, pathHost)
	mark(http, pathHTTP, 13, pathHeaderMap)
	mark(hmap, pathHeaderMap, 1, pathHeaderValue)
	mark(hval, pathHeaderValue, 1, pathKey)
	mark(hval, pathHeaderValue, 2, pathValue)
	mark(hval, pathHeaderValue, 3, pathRawValue)
	mark(meta, pathRouteMeta, 1, pathFilterMetadata)
	return check
})

func kindOf(fd protoreflect.FieldDescriptor) wireKind {
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return kindVarint
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return kindFixed32
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return kindFixed64
	case protoreflect.StringKind:
		return kindString
	case protoreflect.BytesKind:
		return kindBytes
	case protoreflect.MessageKind:
		return kindMessage
	}
	// Groups and proto2's required fields: the messages of a CheckRequest
	// have none, and the decoder would need their rules if one came.
	panic(fmt.Sprintf("authz: wire decoder: field %s is a %v", fd.FullName(), fd.Kind()))
}

// enforceUTF8 is protobuf-go's rule (internal/strs.EnforceUTF8) for the
// proto3 files these messages come from.
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.StringKind && fd.Syntax() == protoreflect.Proto3
}

func wireType(k wireKind) protowire.Type {
	switch k {
	case kindVarint:
		return protowire.VarintType
	case kindFixed32:
		return protowire.Fixed32Type
	case kindFixed64:
		return protowire.Fixed64Type
	}
	return protowire.BytesType
}

// decodeCheck reads a CheckRequest's wire bytes into f. The strings of f
// point into b, which must not change while they are used.
func decodeCheck(b []byte, f *checkFields) error {
	d := wireDecoder{f: f}
	if err := d.message(b, checkSchema(), pathRequest, protowire.DefaultRecursionLimit); err != nil {
		return err
	}
	d.finish()
	return nil
}

// wireDecoder walks the message and keeps what the paths lead to.
type wireDecoder struct {
	f *checkFields
	// The header_map entry being read: its fields, the last of each.
	hvKey, hvValue string
	hvRaw          []byte
	// The last filter_metadata entry of each namespace the check reads,
	// read once the walk has checked every byte (wiremeta.go).
	routeEntry, gatewayEntry []byte
}

func (d *wireDecoder) finish() {
	var scratch [maxParts][]byte
	if d.routeEntry != nil {
		st, _ := readEntry(scratch[:0], d.routeEntry)
		d.f.routeService, d.f.routeEndpoint = routeFields(st)
	}
	if d.gatewayEntry != nil {
		st, _ := readEntry(scratch[:0], d.gatewayEntry)
		d.f.route = gatewayRoute(st)
	}
}

// message walks one message of schema s at p, depth levels from the
// recursion limit (decremented here, as protobuf-go's unmarshalPointer).
func (d *wireDecoder) message(b []byte, s *wireSchema, p wirePath, depth int) error {
	if depth--; depth < 0 {
		return errWire
	}
	if p == pathHeaderValue {
		d.hvKey, d.hvValue, d.hvRaw = "", "", nil
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if typ == protowire.EndGroupType {
			return errWire // no group is open in a message
		}
		f := s.field(num)
		if f == nil || f.kind == 0 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errWire
			}
			b = b[n:]
			continue
		}
		at := pathNone
		if f.in == p {
			at = f.path
		}
		n, err := d.field(b, f, at, num, typ, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if p == pathHeaderValue {
		d.f.rawHeader(d.hvKey, d.hvValue, view(d.hvRaw))
	}
	return nil
}

// consumeTag is protobuf-go's tag check: numbers from 1 to MaxValidNumber.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 || v>>3 < uint64(protowire.MinValidNumber) || v>>3 > uint64(protowire.MaxValidNumber) {
		return 0, 0, -1
	}
	return protowire.Number(v >> 3), protowire.Type(v & 7), n
}

// field reads one occurrence of f, whose value starts b and leads to at,
// and returns its length. A wire type other than f's makes it an unknown
// field.
func (d *wireDecoder) field(b []byte, f *wireField, at wirePath, num protowire.Number, typ protowire.Type, depth int) (int, error) {
	want := wireType(f.kind)
	if f.kind == kindMap {
		want = protowire.BytesType
	}
	if typ != want {
		if f.repeated && typ == protowire.BytesType && f.kind <= kindFixed64 {
			return packed(b, f.kind)
		}
		return skip(b, num, typ)
	}
	switch f.kind {
	case kindVarint:
		_, n := protowire.ConsumeVarint(b)
		return n, okIf(n >= 0)
	case kindFixed32:
		_, n := protowire.ConsumeFixed32(b)
		return n, okIf(n >= 0)
	case kindFixed64:
		_, n := protowire.ConsumeFixed64(b)
		return n, okIf(n >= 0)
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errWire
	}
	switch f.kind {
	case kindString:
		if f.utf8 && !utf8.Valid(v) {
			return 0, errWire
		}
		d.str(at, view(v))
	case kindBytes:
		if at == pathRawValue {
			d.hvRaw = v
		}
	case kindMessage:
		if at == pathHTTP {
			d.f.http = true
		}
		if err := d.message(v, f.msg, at, depth); err != nil {
			return 0, err
		}
	case kindMap:
		if err := d.mapEntry(v, f, at, depth); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (d *wireDecoder) str(p wirePath, s string) {
	switch p {
	case pathID:
		d.f.id = s
	case pathMethod:
		d.f.method = s
	case pathPath:
		d.f.path = s
	case pathHost:
		d.f.host = s
	case pathPrincipal:
		d.f.principal = s
	case pathKey:
		d.hvKey = s
	case pathValue:
		d.hvValue = s
	}
}

// mapEntry reads one map entry (protobuf-go's consumeMap and
// consumeMapOfMessage: the entry counts a recursion level, its message
// value another; key and value may come in any order, the last of each
// counting, and a message value given twice is merged).
func (d *wireDecoder) mapEntry(entry []byte, f *wireField, at wirePath, depth int) error {
	if depth--; depth < 0 {
		return errWire
	}
	var key, val string
	for b := entry; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		known := num == 1 && typ == wireType(f.key) || num == 2 && typ == wireType(f.val)
		if !known {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errWire
			}
			b = b[n:]
			continue
		}
		kind, enforce := f.key, f.keyUTF8
		if num == 2 {
			kind, enforce = f.val, f.valUTF8
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		switch {
		case kind == kindMessage:
			if err := d.message(v, f.msg, pathNone, depth); err != nil {
				return err
			}
		case enforce && !utf8.Valid(v):
			return errWire
		case num == 1:
			key = view(v)
		default:
			val = view(v)
		}
	}
	switch at {
	case pathHeaders:
		for i, name := range headerNames {
			if key == name {
				d.f.headers[i].inMap, d.f.headers[i].mapValue = true, val
			}
		}
	case pathContextExtensions:
		switch key {
		case "service":
			d.f.service = val
		case "endpoint":
			d.f.endpoint = val
		}
	case pathFilterMetadata:
		// The later entry of a key replaces the earlier, whole.
		switch key {
		case MetadataNamespace:
			d.routeEntry = entry
		case EnvoyGatewayMetadataNamespace:
			d.gatewayEntry = entry
		}
	}
	return nil
}

// packed reads a packed repeated scalar.
func packed(b []byte, k wireKind) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errWire
	}
	for len(v) > 0 {
		var m int
		switch k {
		case kindVarint:
			_, m = protowire.ConsumeVarint(v)
		case kindFixed32:
			_, m = protowire.ConsumeFixed32(v)
		default:
			_, m = protowire.ConsumeFixed64(v)
		}
		if m < 0 {
			return 0, errWire
		}
		v = v[m:]
	}
	return n, nil
}

func skip(b []byte, num protowire.Number, typ protowire.Type) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	return n, okIf(n >= 0)
}

func okIf(ok bool) error {
	if ok {
		return nil
	}
	return errWire
}

// view is b as a string without a copy: b is the message's own buffer,
// never changed after it is decoded.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
