package e2e

import (
	"context"
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/internal/hydra"
)

const purgeConfig = `
defaults: {issuer: %s, client_id: tokenauthz, client_secret: hydra-secret, grant_type: client_credentials}
services:
  orders: {hosts: [orders.internal], scope: orders.read}
  inventory: {hosts: [inventory.internal], scope: orders.write}
`

// tokenID checks host and returns the injected token and the token_id its
// dynamic metadata names.
func tokenID(t *testing.T, client authv3.AuthorizationClient, host string) (token, id string) {
	t.Helper()
	resp, err := client.Check(context.Background(), request("GET", host, "/", ""))
	if err != nil {
		t.Fatal(err)
	}
	id, _ = resp.GetDynamicMetadata().AsMap()[authz.MetaTokenID].(string)
	return resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue(), id
}

// entry is an HTTPAccessLogEntry as Envoy's http_grpc logger fills it for
// a request ext_authz allowed: the stream's dynamic metadata in
// common_properties.metadata (grpc_access_log_utils.cc,
// extractCommonAccessLogProperties), the upstream's answer in response.
func entry(status uint32, id string) *datav3.HTTPAccessLogEntry {
	md, _ := structpb.NewStruct(map[string]any{authz.MetaTokenID: id, authz.MetaService: "orders", authz.MetaCache: "hit"})
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{Metadata: &corev3.Metadata{
			FilterMetadata: map[string]*structpb.Struct{authz.ExtAuthzMetadataNamespace: md}}},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status)},
	}
}

// streamLogs sends what Envoy's logger sends: the identifier with the
// first message, then batches of entries.
func streamLogs(t *testing.T, conn *grpc.ClientConn, batches ...[]*datav3.HTTPAccessLogEntry) {
	t.Helper()
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range batches {
		msg := &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: b}}}
		if i == 0 {
			msg.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{
				Node: &corev3.Node{Id: "sidecar~10.0.0.7~app.shop~shop.svc.cluster.local", Cluster: "app"}, LogName: "tokenauthz"}
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
}

// rawCodec sends bytes as they are: a malformed access log stream.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// TestBackendRefusalPurgesToken: real Hydra behind its counting proxy; a
// backend's 401 streamed as Envoy's access log makes exactly one new token
// request on the next check, however many arrive within the purge
// interval; a 200, an unknown id or garbage make none.
func TestBackendRefusalPurgesToken(t *testing.T) {
	h := hydra.Start(t)
	h.CreateClient(t, hydra.Client{ID: "tokenauthz", Secret: "hydra-secret", Scopes: []string{"orders.read", "orders.write"}})
	b := startBroker(t, fmt.Sprintf(purgeConfig, h.Issuer()))
	ordersToken, ordersID := tokenID(t, b.client, "orders.internal")
	inventoryToken, inventoryID := tokenID(t, b.client, "inventory.internal")
	if ordersID == "" || inventoryID == "" || ordersID == inventoryID {
		t.Fatalf("token ids %q and %q, want two", ordersID, inventoryID)
	}
	requests := func() int { return h.TokenRequests() }
	base := requests()

	nothing := []struct {
		name string
		send func()
	}{
		{"200-entry", func() { streamLogs(t, b.conn, []*datav3.HTTPAccessLogEntry{entry(200, ordersID)}) }},
		{"403-entry", func() { streamLogs(t, b.conn, []*datav3.HTTPAccessLogEntry{entry(403, ordersID)}) }},
		{"unknown-id", func() { streamLogs(t, b.conn, []*datav3.HTTPAccessLogEntry{entry(401, "AAAAAAAAAAAAAAAA")}) }},
		{"no-metadata", func() {
			streamLogs(t, b.conn, []*datav3.HTTPAccessLogEntry{{Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(401)}}})
		}},
		{"garbage", func() {
			stream, err := b.conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true},
				"/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs", grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			stream.SendMsg([]byte("\xff\xff\xff garbage, not a protobuf \x00\x01"))
			stream.CloseSend()
			if err := stream.RecvMsg(new([]byte)); err == nil {
				t.Error("the service took garbage for a stream")
			}
		}},
	}
	for _, tt := range nothing {
		t.Run(tt.name, func(t *testing.T) {
			tt.send()
			if tok, _ := tokenID(t, b.client, "orders.internal"); tok != ordersToken || requests() != base {
				t.Fatalf("after %s: token changed %v, %d new token requests; want the cached token, none", tt.name, tok != ordersToken, requests()-base)
			}
		})
	}
	t.Run("one-401-one-new-token-request", func(t *testing.T) {
		streamLogs(t, b.conn, []*datav3.HTTPAccessLogEntry{entry(401, ordersID)})
		tok, _ := tokenID(t, b.client, "orders.internal")
		tokenID(t, b.client, "orders.internal")
		if tok == ordersToken || requests() != base+1 {
			t.Fatalf("token changed %v, %d new token requests; want a new token from 1", tok != ordersToken, requests()-base)
		}
	})
	t.Run("1000-401s-in-the-purge-interval-one-new-token-request", func(t *testing.T) {
		before := requests()
		batch := make([]*datav3.HTTPAccessLogEntry, 100)
		for i := range batch {
			batch[i] = entry(401, inventoryID)
		}
		for range 10 { // ten streams of ten batches: 1,000 entries
			streamLogs(t, b.conn, batch, batch, batch, batch, batch, batch, batch, batch, batch, batch)
			tokenID(t, b.client, "inventory.internal")
		}
		tok, _ := tokenID(t, b.client, "inventory.internal")
		if tok == inventoryToken || requests() != before+1 {
			t.Fatalf("token changed %v, %d new token requests; want a new token from 1", tok != inventoryToken, requests()-before)
		}
	})
}
