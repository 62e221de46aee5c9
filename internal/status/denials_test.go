package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
)

func TestDenialsKeepTheLastNewestFirst(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		denials int
		wantIDs []string
	}{
		{"none", 0, nil},
		{"fewer-than-kept", 2, []string{"req-2", "req-1"}},
		{"ring-keeps-the-last-three", 5, []string{"req-5", "req-4", "req-3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Options{Denials: 3, Now: func() time.Time { return at }})
			for i := 1; i <= tc.denials; i++ {
				p.ObserveDenial(authz.Decision{Reason: authz.ReasonNoMatch, RequestID: fmt.Sprint("req-", i), Message: "no service matches"})
			}
			var ids []string
			for _, d := range p.denials.list() {
				ids = append(ids, d.RequestID)
				if d.Time != at || d.Status != 403 || d.Reason != string(authz.ReasonNoMatch) || d.Message != "no service matches" {
					t.Errorf("denial %+v: want time, status 403, reason and message recorded", d)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("denials %v, want %v", ids, tc.wantIDs)
			}
		})
	}
}

func TestDenialMessageIsBounded(t *testing.T) {
	r := newDenials(1)
	r.add(authz.Decision{Reason: authz.ReasonInternal, Message: strings.Repeat("é", maxMessage)}, time.Now())
	got := r.list()[0].Message
	if len(got) > maxMessage+len("...") || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "éé") {
		t.Errorf("message of %d bytes kept as %d bytes: %.20q...", 2*maxMessage, len(got), got)
	}
	if !strings.HasSuffix(strings.TrimSuffix(got, "..."), "é") {
		t.Errorf("clipped inside a character: %q", got[len(got)-8:])
	}
}
