package demo

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/syncbuf"
	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

func TestDemoPrintsRealInjectedTokens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, out, slog.New(slog.DiscardHandler), Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", IdPAddr: "127.0.0.1:0"})
	}()
	waitForOutput(t, out, "try it yourself")
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
		"go install github.com/fullstorydev/grpcurl/cmd/grpcurl@" + toolVersion(t, "GRPCURL_VERSION"),
		"valid only while this demo runs",
		"open http://127.0.0.1:",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestDemoGrpcurlLinesWork runs the grpcurl commands the demo prints, as a
// user pasting them would: through a shell, with the real grpcurl.
func TestDemoGrpcurlLinesWork(t *testing.T) {
	grpcurl := testtools.Path(t, "grpcurl", "TOKENAUTHZ_GRPCURL")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, out, slog.New(slog.DiscardHandler), Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", IdPAddr: "127.0.0.1:0"})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitForOutput(t, out, "try it yourself")

	var lines []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "grpcurl ") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 grpcurl lines, got %d:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		cmd := exec.Command("bash", "-c", line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH"))
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", line[:60], err, got)
		}
		if !strings.Contains(string(got), `"okResponse"`) || !strings.Contains(string(got), `"value": "Bearer ey`) {
			t.Errorf("grpcurl answered without an injected token:\n%s", got)
		}
	}
}

func waitForOutput(t *testing.T, out *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not print %q:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// toolVersion is a version pinned in scripts/tools.sh, so that what the demo
// tells users to install is what the tests run.
func toolVersion(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../../scripts/tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("scripts/tools.sh sets no %s", name)
	return ""
}
