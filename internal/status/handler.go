package status

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthz/tokenauthz/internal/explain"
)

//go:embed page.html
var pageSource string

// page renders the status page. Every value goes through html/template's
// contextual escaping: none is typed template.HTML, and the page holds no
// script, so a host or path written as markup shows as text.
var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"join": strings.Join,
	"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
}).Parse(pageSource))

// csp lets the page use its own inline style and nothing else: no script
// at all, no image, no request elsewhere, forms posted to itself only. A
// slip in escaping would still run nothing.
var csp = "default-src 'none'; style-src " + styleHash() + "; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func styleHash() string {
	start, end := strings.Index(pageSource, "<style>")+len("<style>"), strings.Index(pageSource, "</style>")
	sum := sha256.Sum256([]byte(pageSource[start:end]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// maxForm bounds an explain form's body.
const maxForm = 64 << 10

// Handler serves GET /status (the page), POST /status (the page with the
// explain form's answer) and GET /status.json.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", p.servePage)
	mux.HandleFunc("POST /status", p.servePage)
	mux.HandleFunc("GET /status.json", p.serveJSON)
	mux.Handle("GET /{$}", http.RedirectHandler("/status", http.StatusFound))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

func (p *Page) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w) // escapes <, > and & too
	enc.SetIndent("", "  ")
	enc.Encode(p.Snapshot())
}

// view is what the template renders: the snapshot and the explain form.
type view struct {
	Snapshot
	Explain explainForm
}

// explainForm is the explain form as submitted, and its answer.
type explainForm struct {
	Method, URL, Principal string
	Headers                string // as submitted, less the credential headers
	Dropped                bool   // credential headers were left out of Headers
	Asked                  bool
	Answer                 string // as `tokenauthz explain` prints it
	Error                  string
}

// credentialHeaders are never written back into the form: the page would
// carry the caller's token.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie"}

func (p *Page) servePage(w http.ResponseWriter, r *http.Request) {
	v := view{Snapshot: p.Snapshot(), Explain: explainForm{Method: "GET"}}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "explain form: "+err.Error(), http.StatusBadRequest)
			return
		}
		v.Explain = p.explain(r.PostFormValue("method"), r.PostFormValue("url"), r.PostFormValue("headers"), r.PostFormValue("principal"))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, v); err != nil {
		// Headers are sent: the page ends where it failed.
		fmt.Fprintf(w, "\n<p>rendering failed: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

// explain answers the form as `tokenauthz explain --method M --url U
// --header H...` does, against the configuration in effect, with the
// principal Envoy would have verified. Nothing is sent anywhere.
func (p *Page) explain(method, url, headers, principal string) explainForm {
	f := explainForm{Method: method, URL: url, Principal: principal, Asked: true}
	var hs, echo []string
	for line := range strings.Lines(headers) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		hs = append(hs, line)
		name, _, _ := strings.Cut(line, ":")
		if slices.Contains(credentialHeaders, strings.ToLower(strings.TrimSpace(name))) {
			f.Dropped = true
			continue
		}
		echo = append(echo, line)
	}
	f.Headers = strings.Join(echo, "\n")
	in, err := explain.Request{Method: method, URL: url, Headers: hs, Principal: strings.TrimSpace(principal)}.Input()
	if err != nil {
		f.Error = err.Error()
		return f
	}
	var b strings.Builder
	explain.Write(&b, p.o.Config(), in)
	f.Answer = b.String()
	return f
}

// Rel says how far t is from the snapshot: "12s ago", "in 4m10s".
func (v view) Rel(t time.Time) string {
	d := t.Sub(v.Generated).Round(time.Second)
	switch {
	case d < 0:
		return (-d).String() + " ago"
	case d == 0:
		return "now"
	}
	return "in " + d.String()
}

// Window names the hit ratios' window: the last minute and a little more,
// or the time since start while the process is younger.
func (v view) Window() string {
	for _, s := range v.Services {
		if w := s.Cache.Window; w < rateWindow.Seconds() {
			return fmt.Sprintf("the %.0fs since start", w)
		}
		return fmt.Sprintf("the last %.0fs", s.Cache.Window)
	}
	return "the last minute"
}

// At is t in UTC with its distance from the snapshot.
func (v view) At(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05Z") + " (" + v.Rel(t) + ")"
}

// When is At for a time that may be none: "-".
func (v view) When(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return v.At(*t)
}
