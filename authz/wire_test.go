package authz

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Field numbers of the CheckRequest messages (external_auth.proto,
// attribute_context.proto, base.proto, struct.proto).
const (
	fCheckAttributes = 1

	fAttrSource, fAttrDestination, fAttrRequest = 1, 2, 4
	fAttrContextExtensions, fAttrMetadata       = 10, 11
	fAttrRouteMetadata                          = 13

	fPeerPrincipal = 4
	fRequestHTTP   = 2

	fHTTPID, fHTTPMethod, fHTTPHeaders, fHTTPPath, fHTTPHost = 1, 2, 3, 4, 5
	fHTTPScheme, fHTTPBody, fHTTPRawBody, fHTTPHeaderMap     = 6, 11, 12, 13

	fHeaderMapHeaders                    = 1
	fHeaderKey, fHeaderValue, fHeaderRaw = 1, 2, 3

	fMetadataFilter = 1
)

// Wire builders: each appends one field.
func bytesField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func strField(num protowire.Number, v string) []byte { return bytesField(num, []byte(v)) }

func msgField(num protowire.Number, parts ...[]byte) []byte {
	return bytesField(num, bytes.Join(parts, nil))
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func entry(num protowire.Number, key string, value ...[]byte) []byte {
	return msgField(num, append([][]byte{strField(1, key)}, value...)...)
}

// inHTTP wraps the fields of an HttpRequest into a CheckRequest.
func inHTTP(fields ...[]byte) []byte {
	return msgField(fCheckAttributes, msgField(fAttrRequest, msgField(fRequestHTTP, fields...)))
}

// inAttrs wraps the fields of an AttributeContext into a CheckRequest.
func inAttrs(fields ...[]byte) []byte { return msgField(fCheckAttributes, fields...) }

// routeMeta is route_metadata_context with one filter_metadata entry.
func routeMeta(namespace string, structFields ...[]byte) []byte {
	return msgField(fAttrRouteMetadata, msgField(fMetadataFilter, strField(1, namespace), msgField(2, structFields...)))
}

func stringEntry(key, value string) []byte {
	return entry(structFields, key, msgField(entryValue, strField(valueString, value)))
}

// Value builders: a member of a google.protobuf.Value each.
func strV(s string) []byte { return strField(valueString, s) }

func numV(f float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, valueNumber, protowire.Fixed64Type), math.Float64bits(f))
}

func structV(entries ...[]byte) []byte { return msgField(valueStruct, entries...) }

func listV(elems ...[]byte) []byte {
	var b []byte
	for _, e := range elems {
		b = append(b, bytesField(listValues, e)...)
	}
	return bytesField(valueList, b)
}

// sEntry is a Struct entry whose Value has the members given, in order.
func sEntry(key string, members ...[]byte) []byte {
	return entry(structFields, key, msgField(entryValue, members...))
}

// resource is an Envoy Gateway resource Value naming kind/ns/name.
func resource(kind, ns, name string) []byte {
	return structV(sEntry(routeKind, strV(kind)), sEntry(routeNamespace, strV(ns)), sEntry(routeName, strV(name)))
}

// withRoute is a CheckRequest with HTTP attributes and the route metadata
// fields (routeMeta's) given.
func withRoute(meta ...[]byte) []byte {
	return inAttrs(append(meta, msgField(fAttrRequest, msgField(fRequestHTTP)))...)
}

// routeCases are route metadata encodings probing the merge rules of
// Struct, Value and ListValue, with what the check must read from them.
func routeCases() []struct {
	name             string
	b                []byte
	service, section string
	route            string // kind/namespace/name
} {
	tz := func(entries ...[]byte) []byte { return routeMeta(MetadataNamespace, entries...) }
	gw := func(members ...[]byte) []byte {
		return routeMeta(EnvoyGatewayMetadataNamespace, sEntry("resources", members...))
	}
	return []struct {
		name             string
		b                []byte
		service, section string
		route            string
	}{
		{"service", withRoute(tz(sEntry("service", strV("a")))), "a", "", ""},
		{"service-string-then-number", withRoute(tz(sEntry("service", strV("a"), numV(1)))), "", "", ""},
		{"service-number-then-string", withRoute(tz(sEntry("service", numV(1), strV("b")))), "b", "", ""},
		{"service-value-twice-in-entry", withRoute(tz(entry(structFields, "service", msgField(entryValue, strV("a")), msgField(entryValue, numV(2), strV("b"))))), "b", "", ""},
		{"service-member-of-wrong-type-is-unknown", withRoute(tz(sEntry("service", strV("a"), varintField(valueString, 1)))), "a", "", ""},
		{"service-key-twice-later-wins", withRoute(tz(sEntry("service", strV("a")), sEntry("service", strV("b")))), "b", "", ""},
		{"service-in-struct-value-not-read", withRoute(tz(sEntry("service", structV(sEntry("service", strV("x")))))), "", "", ""},
		{"namespace-entry-twice-later-wins", withRoute(tz(sEntry("service", strV("a"))), tz(sEntry("endpoint", strV("e")))), "", "", ""},
		{"namespace-struct-twice-merges", withRoute(msgField(fAttrRouteMetadata, msgField(fMetadataFilter, strField(entryKey, MetadataNamespace), msgField(entryValue, sEntry("service", strV("a"))), msgField(entryValue, sEntry("service", strV("b")))))), "b", "", ""},
		{"route-metadata-twice-merges", withRoute(tz(sEntry("service", strV("a"))), gw(listV(resource("HTTPRoute", "shop", "orders")))), "a", "", "HTTPRoute/shop/orders"},
		{"resources", withRoute(gw(listV(resource("HTTPRoute", "shop", "orders"), resource("GRPCRoute", "x", "y")))), "", "", "HTTPRoute/shop/orders"},
		{"resources-lists-merge", withRoute(gw(listV(), listV(resource("HTTPRoute", "shop", "b")), listV(resource("HTTPRoute", "shop", "c")))), "", "", "HTTPRoute/shop/b"},
		{"resources-list-replaced-by-string", withRoute(gw(listV(resource("HTTPRoute", "shop", "a")), strV("x"), listV(resource("HTTPRoute", "shop", "c")))), "", "", "HTTPRoute/shop/c"},
		{"resources-list-then-string", withRoute(gw(listV(resource("HTTPRoute", "shop", "a")), strV("x"))), "", "", ""},
		{"resources-empty-list", withRoute(gw(listV())), "", "", ""},
		{"resources-first-not-struct", withRoute(gw(listV(strV("HTTPRoute"), resource("HTTPRoute", "shop", "a")))), "", "", ""},
		{"resources-first-empty", withRoute(gw(listV(nil, resource("HTTPRoute", "shop", "a")))), "", "", ""},
		{"resource-structs-merge", withRoute(gw(listV(append(resource("HTTPRoute", "shop", "a"), structV(sEntry(routeName, strV("b")), sEntry(routeSection, strV("rule")))...)))), "", "rule", "HTTPRoute/shop/b"},
		{"resource-struct-then-list", withRoute(gw(listV(append(resource("HTTPRoute", "shop", "a"), listV()...)))), "", "", ""},
		{"resource-list-then-struct", withRoute(gw(listV(append(listV(strV("x")), resource("HTTPRoute", "shop", "a")...)))), "", "", "HTTPRoute/shop/a"},
		{"resources-value-twice-in-entry", withRoute(routeMeta(EnvoyGatewayMetadataNamespace, entry(structFields, "resources", msgField(entryValue, listV(resource("HTTPRoute", "shop", "a"))), msgField(entryValue, listV(resource("HTTPRoute", "shop", "b")))))), "", "", "HTTPRoute/shop/a"},
		{"resources-key-twice-later-wins", withRoute(routeMeta(EnvoyGatewayMetadataNamespace, sEntry("resources", listV(resource("HTTPRoute", "shop", "a"))), sEntry("resources", listV(resource("HTTPRoute", "shop", "b"))))), "", "", "HTTPRoute/shop/b"},
		{"many-parts", withRoute(gw(listV(), listV(), listV(), listV(), listV(), listV(resource("HTTPRoute", "shop", "f")))), "", "", "HTTPRoute/shop/f"},
	}
}

// nestedStructs is route metadata whose value nests n Structs deep.
func nestedStructs(n int) []byte {
	v := strField(valueString, "leaf")
	for range n {
		v = msgField(valueStruct, entry(structFields, "a", bytesField(2, v)))
	}
	return inAttrs(routeMeta(MetadataNamespace, entry(structFields, "service", bytesField(2, v))))
}

// nestedLists is route metadata whose value nests n ListValues deep.
func nestedLists(n int) []byte {
	v := strField(valueString, "leaf")
	for range n {
		v = msgField(valueList, bytesField(listValues, v))
	}
	return inAttrs(routeMeta(MetadataNamespace, entry(structFields, "service", bytesField(2, v))))
}

// group is an unknown group field around fields.
func group(num protowire.Number, fields ...[]byte) []byte {
	b := append(protowire.AppendTag(nil, num, protowire.StartGroupType), bytes.Join(fields, nil)...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullCheck is a CheckRequest with every field the check reads and many
// it does not.
func fullCheck() *authv3.CheckRequest {
	req := benchLikeRequest()
	attrs := req.GetAttributes()
	attrs.Source.Principal = "spiffe://cluster.local/ns/shop/sa/web"
	attrs.Destination.Principal = "spiffe://cluster.local/ns/shop/sa/orders"
	attrs.ContextExtensions = map[string]string{"service": "orders", "endpoint": "history", "other": "x"}
	attrs.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		MetadataNamespace: {Fields: map[string]*structpb.Value{"service": structpb.NewStringValue("not-the-route")}},
	}}
	attrs.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		MetadataNamespace: {Fields: map[string]*structpb.Value{"service": structpb.NewStringValue("orders"), "endpoint": structpb.NewStringValue("history")}},
		EnvoyGatewayMetadataNamespace: {Fields: map[string]*structpb.Value{"resources": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
			structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"kind": structpb.NewStringValue("HTTPRoute"), "namespace": structpb.NewStringValue("shop"), "name": structpb.NewStringValue("orders"),
			}}),
		}})}},
		"other": {Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(1)}},
	}}
	h := attrs.GetRequest().GetHttp()
	h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":authority", Value: "orders.internal"}, {Key: "Authorization", RawValue: []byte("Bearer raw")}, {Key: "x-bin", RawValue: []byte{0xff, 0}},
	}}
	h.Body, h.RawBody = "body", []byte{0xff}
	attrs.Request.Time = timestamppb.New(timestamppb.Now().AsTime())
	return req
}

// benchLikeRequest is a CheckRequest as Envoy sends one for a browser.
func benchLikeRequest() *authv3.CheckRequest {
	peer := func(ip string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}, Labels: map[string]string{"app": ip}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: peer("10.0.0.7", 48512), Destination: peer("10.0.3.21", 8443),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1234", Method: "GET", Host: "orders.internal", Path: "/v1/orders/history", Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{
				":authority": "orders.internal", ":method": "GET", ":path": "/v1/orders/history", "x-request-id": "req-7",
				"authorization": "Bearer alice", "accept": "*/*", "host": "orders.internal",
			},
		}},
	}}
}

// wireCases are CheckRequest encodings, valid and not, each probing one
// rule the wire decoder shares with proto.Unmarshal. They are the fuzz
// target's seeds too.
func wireCases(t testing.TB) []struct {
	name string
	b    []byte
} {
	full := marshal(t, fullCheck())
	bench := marshal(t, benchLikeRequest())
	type c = struct {
		name string
		b    []byte
	}
	cases := []c{
		{"empty", nil},
		{"full-request", full},
		{"bench-request", bench},
		{"no-http", inAttrs(msgField(fAttrRequest))},
		{"empty-http", inHTTP()},
		{"two-requests-merge", append(append([]byte{}, bench...), full...)},
		{"request-then-later-scalars", append(append([]byte{}, full...), inHTTP(strField(fHTTPMethod, "POST"), strField(fHTTPPath, "/later"))...)},
		{"header-key-twice-later-wins", inHTTP(entry(fHTTPHeaders, "authorization", strField(2, "Bearer a")), entry(fHTTPHeaders, "authorization", strField(2, "Bearer b")))},
		{"header-entry-value-before-key", inHTTP(msgField(fHTTPHeaders, strField(2, "Bearer v"), strField(1, "authorization")))},
		{"header-entry-key-twice", inHTTP(msgField(fHTTPHeaders, strField(1, "x-request-id"), strField(2, "v"), strField(1, "authorization")))},
		{"header-entry-without-value", inHTTP(entry(fHTTPHeaders, "authorization", strField(2, "Bearer a")), entry(fHTTPHeaders, "authorization"))},
		{"header-entry-without-key", inHTTP(msgField(fHTTPHeaders, strField(2, "v")))},
		{"header-entry-unknown-field", inHTTP(msgField(fHTTPHeaders, strField(1, ":path"), varintField(9, 1), strField(2, "/x")))},
		{"header-entry-key-wrong-type", inHTTP(msgField(fHTTPHeaders, varintField(1, 7), strField(2, "v")))},
		{"header-entry-value-wrong-type", inHTTP(entry(fHTTPHeaders, ":method", varintField(2, 7)))},
		{"header-entry-truncated", inHTTP(msgField(fHTTPHeaders, []byte{0x0a, 0x05, 'a'}))},
		{"header-map-raw-and-value", inHTTP(msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "authorization"), strField(fHeaderValue, "Bearer v"), bytesField(fHeaderRaw, []byte("Bearer r")))))},
		{"header-map-key-twice-in-entry", inHTTP(msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "x"), strField(fHeaderKey, ":Path"), bytesField(fHeaderRaw, []byte("/raw")))))},
		{"header-map-twice-appends", inHTTP(msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "x-request-id"), bytesField(fHeaderRaw, nil))), msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "X-Request-Id"), bytesField(fHeaderRaw, []byte("second")))))},
		{"header-map-raw-not-utf8", inHTTP(msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "authorization"), bytesField(fHeaderRaw, []byte{'B', 0xff}))))},
		{"header-map-value-not-utf8", inHTTP(msgField(fHTTPHeaderMap, msgField(fHeaderMapHeaders, strField(fHeaderKey, "authorization"), bytesField(fHeaderValue, []byte{'B', 0xff}))))},
		{"method-wrong-wire-type-is-unknown", inHTTP(strField(fHTTPMethod, "GET"), varintField(fHTTPMethod, 1))},
		{"http-wrong-wire-type-is-unknown", msgField(fCheckAttributes, msgField(fAttrRequest, varintField(fRequestHTTP, 1)))},
		{"method-not-utf8", inHTTP(bytesField(fHTTPMethod, []byte{0xc3}))},
		{"unread-string-not-utf8", inHTTP(bytesField(fHTTPScheme, []byte{0xff}))},
		{"body-not-utf8", inHTTP(bytesField(fHTTPBody, []byte{0xff}))},
		{"raw-body-not-utf8", inHTTP(bytesField(fHTTPRawBody, []byte{0xff}))},
		{"header-name-not-utf8", inHTTP(msgField(fHTTPHeaders, bytesField(1, []byte{0xff}), strField(2, "v")))},
		{"context-extensions", inAttrs(entry(fAttrContextExtensions, "service", strField(2, "orders")), entry(fAttrContextExtensions, "endpoint", strField(2, "history")), msgField(fAttrRequest, msgField(fRequestHTTP)))},
		{"context-extension-later-wins", inAttrs(entry(fAttrContextExtensions, "service", strField(2, "a")), entry(fAttrContextExtensions, "service", strField(2, "b")), msgField(fAttrRequest, msgField(fRequestHTTP)))},
		{"source-and-destination-principals", inAttrs(msgField(fAttrDestination, strField(fPeerPrincipal, "dest")), msgField(fAttrSource, strField(fPeerPrincipal, "src")), msgField(fAttrRequest, msgField(fRequestHTTP)))},
		{"destination-principal-only", inAttrs(msgField(fAttrDestination, strField(fPeerPrincipal, "dest")), msgField(fAttrRequest, msgField(fRequestHTTP)))},
		{"metadata-context-is-not-route-metadata", inAttrs(msgField(fAttrMetadata, msgField(fMetadataFilter, strField(1, MetadataNamespace), msgField(2, stringEntry("service", "x")))), msgField(fAttrRequest, msgField(fRequestHTTP)))},
		{"route-metadata", append(inAttrs(routeMeta(MetadataNamespace, stringEntry("service", "orders"), stringEntry("endpoint", "history"))), inHTTP()...)},
		{"route-metadata-entry-later-replaces", inAttrs(routeMeta(MetadataNamespace, stringEntry("service", "a"), stringEntry("endpoint", "e")), routeMeta(MetadataNamespace, stringEntry("service", "b")))},
		{"route-metadata-value-twice-merges", inAttrs(msgField(fAttrRouteMetadata, msgField(fMetadataFilter, strField(1, MetadataNamespace), msgField(2, stringEntry("service", "a")), msgField(2, stringEntry("endpoint", "e")))))},
		{"route-metadata-entry-without-value", inAttrs(msgField(fAttrRouteMetadata, msgField(fMetadataFilter, strField(1, EnvoyGatewayMetadataNamespace))))},
		{"route-metadata-value-before-key", inAttrs(msgField(fAttrRouteMetadata, msgField(fMetadataFilter, msgField(2, stringEntry("service", "a")), strField(1, MetadataNamespace))))},
		{"route-metadata-not-utf8-deep", inAttrs(routeMeta("other", entry(structFields, "k", msgField(2, bytesField(valueString, []byte{0xff})))))},
		{"route-metadata-struct-unknown-field", inAttrs(routeMeta(MetadataNamespace, stringEntry("service", "a"), varintField(7, 3)))},
		{"unknown-fields-every-wire-type", bytes.Join([][]byte{bench,
			varintField(99, 1<<40), protowire.AppendFixed32(protowire.AppendTag(nil, 98, protowire.Fixed32Type), 1),
			protowire.AppendFixed64(protowire.AppendTag(nil, 97, protowire.Fixed64Type), 1), strField(96, "x"), group(95, varintField(1, 1)),
		}, nil)},
		{"unknown-group-in-http", inHTTP(strField(fHTTPMethod, "GET"), group(90, group(91, strField(2, "x"))))},
		{"unknown-group-wrong-end", append(protowire.AppendTag(nil, 95, protowire.StartGroupType), protowire.AppendTag(nil, 94, protowire.EndGroupType)...)},
		{"unknown-group-unterminated", protowire.AppendTag(nil, 95, protowire.StartGroupType)},
		{"known-field-as-group", append(protowire.AppendTag(nil, fCheckAttributes, protowire.StartGroupType), protowire.AppendTag(nil, fCheckAttributes, protowire.EndGroupType)...)},
		{"end-group-at-top", protowire.AppendTag(nil, 5, protowire.EndGroupType)},
		{"end-group-in-header-entry", inHTTP(msgField(fHTTPHeaders, protowire.AppendTag(nil, 1, protowire.EndGroupType)))},
		{"wire-type-6", protowire.AppendTag(nil, 5, 6)},
		{"wire-type-7", inHTTP(protowire.AppendTag(nil, 5, 7))},
		{"field-number-zero", []byte{0x02, 0x00}},
		{"field-number-too-large", protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3|2)},
		{"field-number-largest", append(protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.VarintType), 0)},
		{"truncated-length", []byte{0x0a, 0x10, 0x22}},
		{"truncated-varint", []byte{0x08, 0x80}},
		{"overlong-varint", []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"truncated-fixed64", []byte{0x09, 1, 2, 3}},
		{"truncated-inside-http", inHTTP([]byte{0x12, 0x03, 'G'})},
	}
	for _, r := range routeCases() {
		cases = append(cases, c{"route-" + r.name, r.b})
	}
	// The recursion limit, on both sides of it: a Struct level is three
	// messages (Value, Struct, map entry), a list level two.
	for _, n := range []int{3330, 3331, 3332, 3333} {
		cases = append(cases, c{fmt.Sprintf("structs-%d-deep", n), nestedStructs(n)})
	}
	for _, n := range []int{4995, 4996, 4997, 4998} {
		cases = append(cases, c{fmt.Sprintf("lists-%d-deep", n), nestedLists(n)})
	}
	return cases
}

// assertWireAgrees decodes b with the wire decoder and with proto.Unmarshal
// (the oracle): both accept or both refuse, and what they accept gives the
// same fields, and so the same Input.
func assertWireAgrees(t testing.TB, b []byte) (accepted bool) {
	t.Helper()
	var m authv3.CheckRequest
	perr := proto.Unmarshal(b, &m)
	var got checkFields
	buf := bytes.Clone(b) // as gRPC's buffer: reused once decoded
	werr := decodeCheck(buf, &got)
	if (perr == nil) != (werr == nil) {
		t.Fatalf("proto.Unmarshal: %v; wire decoder: %v", perr, werr)
	}
	if perr != nil {
		return false
	}
	got.own()
	for i := range buf {
		buf[i] = '#' // a string own missed would now read as #s
	}
	var want checkFields
	want.fromProto(&m)
	if got != want {
		t.Fatalf("fields differ:\nwire  %+v\nproto %+v", got, want)
	}
	return true
}

func TestWireDecoderAgreesWithProto(t *testing.T) {
	accepted := 0
	for _, tt := range wireCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if assertWireAgrees(t, tt.b) {
				accepted++
			}
		})
	}
	// Both outcomes must be exercised, or the table proves half.
	if n := len(wireCases(t)); accepted == 0 || accepted == n {
		t.Fatalf("%d of %d cases accepted", accepted, n)
	}
}

// TestWireDecoderReadsFields pins what the decoder takes from known
// requests, so that agreement is not agreement on nothing.
func TestWireDecoderReadsFields(t *testing.T) {
	decode := func(b []byte) Input {
		var f checkFields
		if err := decodeCheck(b, &f); err != nil {
			t.Fatal(err)
		}
		in, _ := f.input()
		return in
	}
	in := decode(marshal(t, fullCheck()))
	want := Input{RequestID: "req-7", Method: "GET", Host: "orders.internal", Path: "/v1/orders/history",
		Service: "orders", Endpoint: "history", SelectedBy: ByContextExtensions, Authorization: "Bearer alice",
		Principal: "spiffe://cluster.local/ns/shop/sa/web"}
	want.Route.Kind, want.Route.Namespace, want.Route.Name = "HTTPRoute", "shop", "orders"
	if in != want {
		t.Fatalf("full request: %+v, want %+v", in, want)
	}
	raw := decode(inHTTP(msgField(fHTTPHeaderMap,
		msgField(fHeaderMapHeaders, strField(fHeaderKey, ":Method"), bytesField(fHeaderRaw, []byte("PUT"))),
		msgField(fHeaderMapHeaders, strField(fHeaderKey, "authorization"), strField(fHeaderValue, "Bearer v"), bytesField(fHeaderRaw, []byte("Bearer r"))))))
	if raw.Method != "PUT" || raw.Authorization != "Bearer v" {
		t.Fatalf("header_map: %+v", raw)
	}
	for _, r := range routeCases() {
		t.Run(r.name, func(t *testing.T) {
			in := decode(r.b)
			route := ""
			if in.Route.Kind != "" {
				route = in.Route.Kind + "/" + in.Route.Namespace + "/" + in.Route.Name
			}
			if in.Service != r.service || in.Route.Section != r.section || route != r.route {
				t.Fatalf("service %q route %q section %q, want %q %q %q", in.Service, route, in.Route.Section, r.service, r.route, r.section)
			}
		})
	}
}

// TestWireWalkAgreesOnPackedScalars holds the walk's handling of repeated
// scalars (packed or not) to proto.Unmarshal on a message that has them:
// no CheckRequest message does yet.
func TestWireWalkAgreesOnPackedScalars(t *testing.T) {
	schema := schemas{}.compile((&routev3.RetryPolicy{}).ProtoReflect().Descriptor())
	const codes = 7 // retriable_status_codes: repeated uint32
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"marshaled", marshal(t, &routev3.RetryPolicy{RetryOn: "5xx", RetriableStatusCodes: []uint32{500, 503}})},
		{"unpacked", append(varintField(codes, 500), varintField(codes, 503)...)},
		{"packed-truncated", bytesField(codes, []byte{0x80})},
		{"packed-empty", bytesField(codes, nil)},
		{"fixed32-for-varint-is-unknown", protowire.AppendFixed32(protowire.AppendTag(nil, codes, protowire.Fixed32Type), 1)},
		{"packed-length-truncated", []byte{codes<<3 | 2, 0x05, 0x01}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			perr := proto.Unmarshal(tt.b, &routev3.RetryPolicy{})
			werr := (&wireDecoder{f: &checkFields{}}).message(tt.b, schema, pathNone, protowire.DefaultRecursionLimit)
			if (perr == nil) != (werr == nil) {
				t.Fatalf("proto.Unmarshal: %v; walk: %v", perr, werr)
			}
		})
	}
}

// TestOwnCoversEveryString: own copies every string of checkFields, or
// one would point into a buffer gRPC reuses.
func TestOwnCoversEveryString(t *testing.T) {
	var f checkFields
	owned := map[*string]bool{}
	for _, p := range f.stringFields() {
		if p == nil || owned[p] {
			t.Fatalf("stringFields has a nil or repeated pointer")
		}
		owned[p] = true
	}
	var walk func(v reflect.Value, name string)
	walk = func(v reflect.Value, name string) {
		switch v.Kind() {
		case reflect.String:
			if !owned[(*string)(v.Addr().UnsafePointer())] {
				t.Errorf("own does not copy %s", name)
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i), name+"."+v.Type().Field(i).Name)
			}
		case reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", name, i))
			}
		case reflect.Bool:
		default:
			t.Errorf("%s is a %v: own knows strings only", name, v.Kind())
		}
	}
	walk(reflect.ValueOf(&f).Elem(), "checkFields")
}

// TestWireSchemaIsBuilt builds the schema: it panics on a CheckRequest
// message the decoder has no rules for (a group, a required field, a map
// of other kinds), as a go-control-plane upgrade could bring.
func TestWireSchemaIsBuilt(t *testing.T) {
	if s := checkSchema(); s.field(fCheckAttributes).msg == nil {
		t.Fatal("attributes has no schema")
	}
}

// FuzzWireCheck is the differential fuzz target: arbitrary bytes, decoded
// by the wire decoder and by proto.Unmarshal, must agree (see
// assertWireAgrees).
func FuzzWireCheck(f *testing.F) {
	for _, tt := range wireCases(f) {
		if len(tt.b) < 4096 { // the deep ones make the corpus slow to mutate
			f.Add(tt.b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { assertWireAgrees(t, b) })
}
