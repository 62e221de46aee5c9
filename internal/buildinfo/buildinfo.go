// Package buildinfo names the running build: `tokenauthz version` prints it
// and the status page shows it.
package buildinfo

import (
	"cmp"
	"runtime"
	"runtime/debug"
)

// Build stamps for builds where Go cannot read VCS information itself (a
// docker build without .git, GOFLAGS=-buildvcs=false):
//
//	go build -ldflags "-X github.com/tokenauthz/tokenauthz/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/tokenauthz/tokenauthz/internal/buildinfo.commit=$(git rev-parse HEAD)"
//
// `make build` and the Dockerfile set them.
var version, commit string

// String names the module version, the commit and the Go version: from the
// build info, else from the build stamps.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = &debug.BuildInfo{}
	}
	ver, rev, modified := info.Main.Version, commit, false
	if version != "" {
		ver = version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	v := "tokenauthz " + cmp.Or(ver, "(unknown version)")
	if rev != "" {
		v += " commit " + rev
	}
	if modified {
		v += " (modified)"
	}
	return v + " " + cmp.Or(info.GoVersion, runtime.Version())
}
