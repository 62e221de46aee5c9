package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where a result was measured.
type machine struct {
	ID        string `json:"id"` // short hash of /etc/machine-id (or hostname)
	NumCPU    int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	LoadAvg   string `json:"loadavg_at_start"`
	Date      string `json:"date"`
	// Commit is the code measured: the module's commit, "-dirty" with
	// changes not committed, "" outside git.
	Commit string `json:"commit"`
}

func describeMachine(ctx context.Context) machine {
	m := machine{NumCPU: runtime.NumCPU(), Date: time.Now().UTC().Format(time.RFC3339)}
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(strings.TrimSpace(string(id))) == 0 {
		h, _ := os.Hostname()
		id = []byte(h)
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(id))))
	m.ID = hex.EncodeToString(sum[:4])
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	} else {
		m.GoVersion = runtime.Version()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += "-dirty"
		}
	}
	return m
}

func (m machine) markdown() string {
	return fmt.Sprintf("| machine | |\n|---|---|\n| id | %s |\n| nproc | %d |\n| CPU | %s |\n| memory | %s |\n| Go | %s |\n| kernel | %s |\n| load average at start | %s |\n| date (UTC) | %s |\n| commit measured | %s |\n",
		m.ID, m.NumCPU, m.CPUModel, m.MemTotal, m.GoVersion, m.Kernel, m.LoadAvg, m.Date, m.Commit)
}

// writeResults stores name.json and name.md under dir (created if need be),
// name being <date>-<machine id>[-<commit>][-suffix]: a rerun of the same
// code on the same day replaces its results, other code's stay.
func writeResults(dir string, m machine, suffix string, data any, md string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := time.Now().UTC().Format("2006-01-02") + "-" + m.ID
	if m.Commit != "" {
		name += "-" + m.Commit
	}
	if suffix != "" {
		name += "-" + suffix
	}
	js, err := json.MarshalIndent(map[string]any{"machine": m, "results": data}, "", "  ")
	if err != nil {
		return "", err
	}
	base := filepath.Join(dir, name)
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return "", err
	}
	return base + ".md", os.WriteFile(base+".md", []byte(md), 0o644)
}

// resultsDir is bench/results of the module unless --results says otherwise.
func resultsDir(ctx context.Context, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bench", "results"), nil
}

// pinSelf pins every thread of this process (the load generator) to cpus.
func pinSelf(ctx context.Context, cpus string) error {
	if cpus == "" {
		return nil
	}
	out, err := exec.CommandContext(ctx, "taskset", "-a", "-cp", cpus, fmt.Sprint(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset: %v: %s", err, out)
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// report prints md and, unless noWrite, stores md and data as the results
// named suffix in the results directory (flagValue, or bench/results).
func report(ctx context.Context, out io.Writer, flagValue string, noWrite bool, m machine, suffix string, data any, md string) error {
	fmt.Fprint(out, "\n"+md)
	if noWrite {
		return nil
	}
	dir, err := resultsDir(ctx, flagValue)
	if err != nil {
		return err
	}
	path, err := writeResults(dir, m, suffix, data, md)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nwrote %s (and .json)\n", path)
	return nil
}
