package status

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenauthz/tokenauthz/authz"
)

// DefaultDenials is how many recent denials the page keeps.
const DefaultDenials = 50

// maxMessage bounds a kept denial's message: a ring of them must stay
// small whatever a request put in its host and path (scopes clips those,
// this bounds the rest).
const maxMessage = 1024

// Denial is one denied check as the page shows it. Everything in it but
// Time, Reason and Status came from the request or the IdP: the page
// escapes it.
type Denial struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Service   string    `json:"service"`
	Endpoint  string    `json:"endpoint"`
	Reason    string    `json:"reason"`
	Status    int       `json:"status"`
	Message   string    `json:"message"`
	seq       uint64
}

// denials is a ring of the last denials. Writers never wait for each other
// or for a reader: a denial takes a slot by an atomic counter and swaps
// its record in, so a flood of denials costs each one an allocation and
// two atomic operations.
type denials struct {
	next  atomic.Uint64
	slots []atomic.Pointer[Denial]
}

func newDenials(n int) *denials {
	if n <= 0 {
		n = DefaultDenials
	}
	return &denials{slots: make([]atomic.Pointer[Denial], n)}
}

func (r *denials) add(d authz.Decision, now time.Time) {
	seq := r.next.Add(1)
	msg := d.Message
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "..."
	}
	r.slots[seq%uint64(len(r.slots))].Store(&Denial{
		Time: now, RequestID: d.RequestID, Service: d.Service, Endpoint: d.Endpoint,
		Reason: string(d.Reason), Status: d.HTTPStatus(), Message: msg, seq: seq,
	})
}

// list returns the denials kept, newest first.
func (r *denials) list() []Denial {
	out := make([]Denial, 0, len(r.slots))
	for i := range r.slots {
		if d := r.slots[i].Load(); d != nil {
			out = append(out, *d)
		}
	}
	slices.SortFunc(out, func(a, b Denial) int { return cmp.Compare(b.seq, a.seq) })
	return out
}
