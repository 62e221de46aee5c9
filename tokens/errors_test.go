package tokens

import "testing"

func TestSanitizeWithholdsTextFullOfAShortCredential(t *testing.T) {
	got := sanitize("a secret a", []string{"a"})
	if got != "[withheld: it echoes a credential]" {
		t.Fatalf("sanitize = %q", got)
	}
}
