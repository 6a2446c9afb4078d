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
	// Test imports count for the naive rule only.
	TestImports  []string
	XTestImports []string
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
				// The tools (the labs, the bench) wire systems of their own:
				// they may build adapters too.
				wiring := strings.HasPrefix(p.ImportPath, "seckill/app/bootstrap") || strings.HasPrefix(p.ImportPath, "seckill/app/cmd/") ||
					p.ImportPath == "seckill/app/tools/lab" || p.ImportPath == "seckill/app/tools/benchsale"
				if strings.HasPrefix(imp, "seckill/infra/") && !wiring {
					t.Errorf("%s imports %s: only app/bootstrap, app/cmd and the tools build adapters", p.ImportPath, imp)
				}
			}
		}
	}
}

// naivePkg holds the labs' components that are wrong on purpose.
const naivePkg = "seckill/app/tools/lab/naive"

// TestNaiveStaysInTheLab keeps production wiring from ever reaching the
// naive components: only the lab package (and the naive package's own
// tests) may import them, never bootstrap, serve or worker code.
func TestNaiveStaysInTheLab(t *testing.T) {
	t.Parallel()
	pkgs := listAll(t)
	seen := false
	for _, p := range pkgs {
		if p.ImportPath == naivePkg {
			seen = true
		}
		for _, imp := range append(append(p.Imports, p.TestImports...), p.XTestImports...) {
			if imp == naivePkg && p.ImportPath != "seckill/app/tools/lab" && p.ImportPath != naivePkg {
				t.Errorf("%s imports %s: only app/tools/lab may use the wrong-on-purpose components", p.ImportPath, naivePkg)
			}
		}
	}
	if !seen {
		t.Fatalf("%s not found by go list: the rule would guard nothing", naivePkg)
	}
	// bootstrap must not import the lab package either, or a lab's wiring
	// could leak into serve and worker.
	for _, p := range pkgs {
		if strings.HasPrefix(p.ImportPath, "seckill/app/bootstrap") {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, "seckill/app/tools/lab") {
					t.Errorf("%s imports %s: production wiring must not know the labs", p.ImportPath, imp)
				}
			}
		}
	}
}
