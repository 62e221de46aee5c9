package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
)

// TestServeWithUnreachableIdPThenSIGTERM runs `serve` as a user does: it
// starts although the issuer cannot be reached, answers 503 for checks that
// need it, and exits 0 on SIGTERM.
func TestServeWithUnreachableIdPThenSIGTERM(t *testing.T) {
	path := writeConfig(t, `
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0"}
defaults: {issuer: "http://127.0.0.1:1/", client_id: x, client_secret: y}
services:
  orders: {hosts: [orders.internal], grant_type: client_credentials}
`)
	logs := &syncbuf.Buffer{}
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"serve", "--config", path}, logs, logs) }()

	var grpcAddr string
	deadline := time.Now().Add(10 * time.Second)
	for grpcAddr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, GRPC string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				grpcAddr = rec.GRPC
			}
		}
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "orders.internal", Path: "/"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 503 {
		t.Errorf("check while the IdP is unreachable: HTTP %d, want 503", got)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("serve exited %d after SIGTERM:\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
}
