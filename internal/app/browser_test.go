package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tokenauthz/tokenauthz/authz"
	"github.com/tokenauthz/tokenauthz/internal/explain"
	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

// browserConfig is what the status page's screenshot shows.
const browserConfig = `
listen: {grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
defaults: {issuer: %s, client_id: app, client_secret: app-secret}
services:
  orders:
    hosts: [orders.internal]
    path_prefix: /v1
    grant_type: client_credentials
    scope: orders.read
    endpoints:
      create: {path: /orders, methods: [POST], scope: orders.write}
      history: {path: /orders/history, grant_type: token_exchange, scope: orders.history, audience: orders}
  billing:
    hosts: [billing.internal]
    routes: [HTTPRoute/shop/billing]
    grant_type: client_credentials
    scope: [billing.read]
    callers: ["spiffe://cluster.local/ns/shop/*"]
  profile: {hosts: [profile.internal], grant_type: auto, scope: profile.read}
  public: {hosts: [public.internal]}
`

// Markup and script a request can put in what the page shows.
const (
	hostileHost = `<img src=x onerror=alert(1)>`
	hostilePath = `/</script><script>alert(1)</script>`
	hostileID   = `"><svg onload=alert(1)>`
)

// browser is one headless Chromium, and what its page said to the console.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	dialogs  []string // every dialog a page opened
	messages []string // console API calls, uncaught exceptions, browser log entries
}

// startBrowser runs Debian's Chromium headless with a fresh profile, with
// the flags this machine's closed network needs (no background
// connections), for at most a minute; it is stopped when the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := testtools.Path(t, "chromium", "TOKENAUTHZ_CHROMIUM")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1400, 1000))
	bounded, stop := context.WithTimeout(context.Background(), time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(bounded, opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { chromedp.Cancel(ctx); cancel(); cancelAlloc(); stop() })
	b := &browser{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) // dismiss: a dialog blocks the page
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.messages = append(b.messages, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			if d.Exception != nil {
				d.Text += " " + d.Exception.Description
			}
			b.messages = append(b.messages, "exception: "+d.Text)
		case *log.EventEntryAdded:
			b.messages = append(b.messages, "log "+string(ev.Entry.Level)+": "+ev.Entry.Text)
		}
	})
	if err != nil {
		t.Fatalf("chromium %s: %v", path, err)
	}
	return b
}

func (b *browser) seen() (dialogs, messages []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dialogs), slices.Clone(b.messages)
}

// texts evaluates an expression listing the text of elements.
func (b *browser) texts(t *testing.T, js string) []string {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// TestStatusPageInABrowser loads the status page in a real, headless
// Chromium: it shows the configured services, answers the explain form as
// `tokenauthz explain` does, shows markup a request sent as text and runs
// none of it (no element, no dialog), and writes nothing to the console,
// whose every message (console API, uncaught exception, browser log: a
// CSP violation among them) fails the test. A screenshot goes to
// test-output/status.png.
func TestStatusPageInABrowser(t *testing.T) {
	f := &fixture{idp: startIdP(t), path: filepath.Join(t.TempDir(), "tokenauthz.yaml")}
	writeFile(t, f.path, fmt.Sprintf(browserConfig, f.idp.Issuer()))
	f.serve(t, slog.LevelInfo)
	alice, err := f.idp.UserToken("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []authz.Input{
		{RequestID: "o-1", Method: "GET", Host: "orders.internal", Path: "/v1/orders/42"},
		{RequestID: "o-2", Method: "GET", Host: "orders.internal", Path: "/v1/orders/43"},
		{RequestID: "o-3", Method: "POST", Host: "orders.internal", Path: "/v1/orders"},
		{RequestID: "o-4", Method: "GET", Host: "orders.internal", Path: "/v1/orders/history", Authorization: "Bearer " + alice},
		{RequestID: "o-5", Method: "GET", Host: "orders.internal", Path: "/v1/orders/44"},
		{RequestID: "p-1", Method: "GET", Host: "profile.internal", Path: "/me", Authorization: "Bearer " + alice},
		{RequestID: "o-6", Method: "GET", Host: "orders.internal", Path: "/v1/orders/history"},
		{RequestID: "b-1", Method: "GET", Host: "billing.internal", Path: "/invoices", Principal: "spiffe://cluster.local/ns/web/sa/frontend"},
		{RequestID: hostileID, Method: "GET", Host: hostileHost, Path: hostilePath},
	} {
		f.app.Authz.Decide(context.Background(), in)
	}
	b := startBrowser(t)
	statusURL := "http://" + f.app.AdminAddr() + "/status"
	if err := chromedp.Do(b.ctx, chromedp.Navigate(statusURL), chromedp.WaitVisible(chromedp.ID("explain"))); err != nil {
		t.Fatalf("load %s: %v", statusURL, err)
	}
	// explainAs submits the explain form and returns its answer, and what
	// `tokenauthz explain` says of the same request.
	explainAs := func(t *testing.T, req explain.Request, principal string) (got, want string) {
		t.Helper()
		in, err := req.Input()
		if err != nil {
			t.Fatal(err)
		}
		in.Principal = principal
		var cli strings.Builder
		explain.Write(&cli, f.app.Authz.Config(), in)
		_, err = chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Steps(
			chromedp.SetValue(chromedp.ID("method"), req.Method),
			chromedp.SetValue(chromedp.ID("url"), req.URL),
			chromedp.SetValue(chromedp.ID("headers"), strings.Join(req.Headers, "\n")),
			chromedp.SetValue(chromedp.ID("principal"), principal),
			chromedp.Click(chromedp.ID("explain-submit")),
		)))
		if err != nil {
			t.Fatal(err)
		}
		got, err = chromedp.Run(b.ctx, chromedp.Text(chromedp.ID("explain-answer")))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(got), strings.TrimSpace(cli.String())
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"renders-the-configured-services", func(t *testing.T) {
			var want []string
			for _, svc := range f.app.Authz.Config().Routes.Services() {
				want = append(want, svc.Name)
			}
			if got := b.texts(t, `[...document.querySelectorAll(".service h3")].map(e => e.textContent)`); !slices.Equal(got, want) {
				t.Errorf("services %v, want %v", got, want)
			}
			if got := b.texts(t, `[...document.querySelectorAll("#cache td:first-child")].map(e => e.textContent)`); !slices.Equal(got, want) {
				t.Errorf("cache rows %v, want %v", got, want)
			}
		}},
		{"hostile-denial-shows-as-text", func(t *testing.T) {
			ids := b.texts(t, `[...document.querySelectorAll(".denial td:nth-child(2)")].map(e => e.textContent)`)
			msgs := b.texts(t, `[...document.querySelectorAll(".denial .message")].map(e => e.textContent)`)
			if len(ids) == 0 || ids[0] != hostileID || !strings.Contains(msgs[0], hostileHost) || !strings.Contains(msgs[0], hostilePath) {
				t.Errorf("newest denial: id %q, message %q; want the request's markup as text", ids, msgs)
			}
			if n := b.texts(t, `[...document.querySelectorAll("#denials img, #denials script, #denials svg, body script")].map(e => e.tagName)`); len(n) > 0 {
				t.Errorf("the page holds %v elements a request made", n)
			}
		}},
		{"explain-form-shows-what-it-was-sent-as-text", func(t *testing.T) {
			got, want := explainAs(t, explain.Request{Method: "GET", URL: "https://billing.internal/invoices",
				Headers: []string{"x-request-id: " + hostileID}}, hostileHost)
			if got != want || !strings.Contains(got, `"`+hostileHost+`" is not among the callers`) {
				t.Errorf("the form answered\n%s\nwant what tokenauthz explain prints, the principal as text:\n%s", got, want)
			}
		}},
		{"explain-form-answers-as-the-command", func(t *testing.T) {
			got, want := explainAs(t, explain.Request{Method: "GET", URL: "https://orders.internal/v1/orders/history",
				Headers: []string{"authorization: Bearer " + alice, "x-request-id: " + hostileID}}, "spiffe://cluster.local/ns/shop/sa/web")
			if got != want || !strings.Contains(got, "decision:  allow (token_injected)") {
				t.Errorf("the form answered\n%s\nwant what tokenauthz explain prints:\n%s", got, want)
			}
		}},
		{"screenshot", func(t *testing.T) {
			png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			root, err := testtools.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(root, "test-output", "status.png")
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", out)
		}},
		{"no-dialog-and-no-console-message", func(t *testing.T) {
			// A console call of our own, last: every message before it
			// has been seen once it is.
			if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`console.debug("end of test"), true`)); err != nil {
				t.Fatal(err)
			}
			if n := b.texts(t, `[...document.querySelectorAll("img, svg, script, iframe")].map(e => e.tagName)`); len(n) > 0 {
				t.Errorf("the page holds %v elements", n)
			}
			dialogs, messages := b.seen()
			if len(dialogs) > 0 {
				t.Errorf("dialogs opened: %q", dialogs)
			}
			if len(messages) != 1 || !strings.Contains(messages[0], "end of test") {
				t.Errorf("console messages: %q, want only our own", messages)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, st.run)
	}
}
