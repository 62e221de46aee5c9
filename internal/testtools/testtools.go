// Package testtools finds the external programs tests run (Hydra, nginx,
// Caddy, grpcurl, docker-compose, Helm, promtool, Chromium), which scripts/tools.sh installs
// into the repository's .tools/bin.
package testtools

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Path returns the program name: $env when set, else .tools/bin/name, else
// name on PATH. A missing program skips the test, or fails it when
// TOKENAUTHZ_E2E=1 (as scripts/test.sh sets): there, a skip would hide a
// broken install step.
func Path(t testing.TB, name, env string) string {
	t.Helper()
	p, err := Find(name, env)
	if err == nil {
		return p
	}
	if os.Getenv("TOKENAUTHZ_E2E") == "1" {
		t.Fatalf("%s: %v (run scripts/tools.sh)", name, err)
	}
	t.Skipf("%s: %v (run scripts/tools.sh, or set TOKENAUTHZ_E2E=1 to make this a failure)", name, err)
	return ""
}

// Find is Path without the test: where name is, or why it is not found.
func Find(name, env string) (string, error) {
	if p := os.Getenv(env); env != "" && p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", err
		}
		return p, nil
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// RepoRoot is the folder holding go.mod, above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
