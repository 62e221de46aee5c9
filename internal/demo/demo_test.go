package demo

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
)

func TestDemoPrintsRealInjectedTokens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, out, slog.New(slog.DiscardHandler), Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", IdPAddr: "127.0.0.1:0"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "try it yourself") {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not finish its checks:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, want := range []string{
		"sub=tokenauthz scope=orders.read",
		"sub=tokenauthz scope=orders.write",
		"sub=alice scope=orders.history aud=[orders]",
		"sub=alice scope=profile.read",
		`denied 403: {"error":"no_matching_service"`,
		"grpcurl -plaintext",
		"/forward-auth",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
