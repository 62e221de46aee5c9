package authz

// The schema the wire decoder (wire.go) walks: CheckRequest's messages as
// protobuf-go decodes them, compiled once from their descriptors, with the
// fields a check reads marked.

import (
	"fmt"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

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
