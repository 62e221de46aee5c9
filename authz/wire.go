package authz

// A CheckRequest read straight from its wire bytes: only the fields a check
// uses are taken (as strings into the bytes; the codec copies those the
// check keeps), the rest is checked and skipped, and nothing else is
// allocated. It must agree with
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
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

var errWire = errors.New("malformed CheckRequest")

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
