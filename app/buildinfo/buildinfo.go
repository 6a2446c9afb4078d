// Package buildinfo says which build of seckill is running: its version,
// the commit it was built from and the Go toolchain, read from what the Go
// linker stamps into every binary (runtime/debug.ReadBuildInfo), so nothing
// has to remember to pass flags at build time.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version can be set at link time (-ldflags "-X seckill/app/buildinfo.version=v1.2.3")
// for a release; otherwise the module version Go recorded is used.
var version = ""

// Info is one build's identity.
type Info struct {
	// Version is the release version, or "devel" for a build from a
	// checkout.
	Version string
	// Commit is the VCS revision the binary was built from, or "unknown"
	// (go run, or a build outside a git checkout); Modified is true when
	// the work tree had uncommitted changes.
	Commit   string
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns this binary's Info; it never fails, filling what it cannot
// learn with "unknown".
func Read() Info {
	info := Info{Version: version, Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// String is the one line `seckill version` prints.
func (i Info) String() string {
	s := "seckill " + i.Version + " commit " + i.Commit
	if i.Time != "" {
		s += " (" + i.Time + ")"
	}
	if i.Modified {
		s += " with uncommitted changes"
	}
	return s + ", built with " + i.GoVersion
}
