// Package apptest serves tokenauthz in process for the tests of other
// packages: logs discarded, stopped when the test ends.
package apptest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/tokenauthz/tokenauthz/config"
	"github.com/tokenauthz/tokenauthz/internal/app"
)

// Start serves cfg until the test ends.
func Start(t testing.TB, cfg *config.Config) *app.App {
	t.Helper()
	a, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	return a
}

// Parse serves the configuration text, named name in its messages, until
// the test ends.
func Parse(t testing.TB, name, text string) *app.App {
	t.Helper()
	cfg, err := config.Parse(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, cfg)
}
