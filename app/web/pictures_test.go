package web

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPicturesAreNewerThanThePages fails when a committed picture of the
// pages (the README's docs/screenshot.png and docs/dashboard.png, the labs'
// docs/labs/dashboard-lingering.png) was taken before the last commit that
// changed app/web/static: the page may no longer look like its picture.
// `make screenshot` retakes all three and stamps each with its capture time
// (a PNG tEXt chunk, "Creation Time"). Skipped where git or the
// repository's history is not at hand.
func TestPicturesAreNewerThanThePages(t *testing.T) {
	root := filepath.Join("..", "..")
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git: cannot tell when app/web/static last changed")
	}
	out, err := exec.Command(git, "-C", root, "log", "-1", "--format=%ct", "--", "app/web/static").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Skipf("no git history for app/web/static (%v)", err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("git log: %q: %v", out, err)
	}
	changed := time.Unix(sec, 0)
	for _, pic := range []string{"docs/screenshot.png", "docs/dashboard.png", "docs/labs/dashboard-lingering.png"} {
		b, err := os.ReadFile(filepath.Join(root, pic))
		if err != nil {
			t.Fatal(err)
		}
		v, ok := pngText(b, "Creation Time")
		if !ok {
			t.Errorf("%s has no capture time: retake it with make screenshot", pic)
			continue
		}
		taken, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Errorf("%s: capture time %q: %v", pic, v, err)
			continue
		}
		if taken.Before(changed) {
			t.Errorf("%s was taken %s, before app/web/static last changed (%s): retake it with make screenshot",
				pic, taken.UTC().Format(time.RFC3339), changed.UTC().Format(time.RFC3339))
		}
	}
}

// pngText returns the text of the first tEXt chunk with this keyword.
func pngText(b []byte, keyword string) (string, bool) {
	const sig = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(b, []byte(sig)) {
		return "", false
	}
	for p := len(sig); p+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[p:]))
		typ := string(b[p+4 : p+8])
		if p+12+n > len(b) || n < 0 {
			return "", false
		}
		data := b[p+8 : p+8+n]
		if typ == "tEXt" {
			if k, v, ok := bytes.Cut(data, []byte{0}); ok && string(k) == keyword {
				return string(v), true
			}
		}
		if typ == "IEND" {
			break
		}
		p += 12 + n
	}
	return "", false
}
