package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func listAll(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "seckill/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func isStd(path string) bool {
	return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") && !strings.HasPrefix(path, "seckill")
}

func TestDependencyRule(t *testing.T) {
	t.Parallel()
	for _, p := range listAll(t) {
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(p.ImportPath, "seckill/domain/"):
				if !isStd(imp) && !strings.HasPrefix(imp, "seckill/domain/") {
					t.Errorf("%s imports %s: domain may import only the standard library", p.ImportPath, imp)
				}
			case strings.HasPrefix(p.ImportPath, "seckill/infra/"):
				if strings.HasPrefix(imp, "seckill/app/") {
					t.Errorf("%s imports %s: infra must not import app", p.ImportPath, imp)
				}
			case strings.HasPrefix(p.ImportPath, "seckill/app/"):
				wiring := strings.HasPrefix(p.ImportPath, "seckill/app/bootstrap") || strings.HasPrefix(p.ImportPath, "seckill/app/cmd/")
				if strings.HasPrefix(imp, "seckill/infra/") && !wiring {
					t.Errorf("%s imports %s: only app/bootstrap and app/cmd build adapters", p.ImportPath, imp)
				}
			}
		}
	}
}
