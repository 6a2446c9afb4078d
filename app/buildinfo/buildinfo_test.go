package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Commit == "" {
		t.Fatalf("Read() = %+v", i)
	}
	s := Info{Version: "v1.2.3", Commit: "abc", Time: "2026-12-01T00:00:00Z", Modified: true, GoVersion: "go1.26.8"}.String()
	for _, want := range []string{"v1.2.3", "commit abc", "uncommitted", "go1.26.8"} {
		if !strings.Contains(s, want) {
			t.Fatalf("String() = %q, missing %q", s, want)
		}
	}
}
