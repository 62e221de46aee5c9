package tokens

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestJWTExpiry(t *testing.T) {
	seg := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name   string
		token  string
		want   time.Time
		wantOK bool
	}{
		{"integer-exp", "h." + seg([]byte(`{"exp":1900000000}`)) + ".s", time.Unix(1900000000, 0), true},
		{"fractional-exp", "h." + seg([]byte(`{"exp":1900000000.5}`)) + ".s", time.Unix(1900000000, 5e8), true},
		{"padded-payload", "h." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1900000000}`)) + ".s", time.Unix(1900000000, 0), true},
		{"no-exp", "h." + seg([]byte(`{"sub":"a"}`)) + ".s", time.Time{}, false},
		{"string-exp", "h." + seg([]byte(`{"exp":"1900000000"}`)) + ".s", time.Time{}, false},
		{"negative-exp", "h." + seg([]byte(`{"exp":-1}`)) + ".s", time.Time{}, false},
		{"not-json", "h." + seg([]byte(`nope`)) + ".s", time.Time{}, false},
		{"not-base64", "h.***.s", time.Time{}, false},
		{"one-segment", "opaque", time.Time{}, false},
		{"two-segments", "h.p", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := jwtExpiry(tt.token)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("jwtExpiry = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
