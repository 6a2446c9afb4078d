package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The layout of app/: the service's packages, then app/tools (the bench,
// the labs: tooling that drives the service) and app/tests (suites with no
// production code). cmd/seckill is the one binary that ships.
const (
	toolsPrefix = "seckill/app/tools/"
	testsPrefix = "seckill/app/tests/"
)

// TestToolsAndTestsStayOutOfTheService: no package of the service imports
// a tool or a test suite, so nothing built for the bench, a lab or a test
// can reach a running instance. Only the seckill command may reach the
// labs, to offer `seckill lab`.
func TestToolsAndTestsStayOutOfTheService(t *testing.T) {
	t.Parallel()
	service := 0
	for _, p := range listAll(t) {
		if strings.HasPrefix(p.ImportPath, toolsPrefix) || strings.HasPrefix(p.ImportPath, testsPrefix) {
			continue
		}
		service++
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, testsPrefix) {
				t.Errorf("%s imports %s: test suites are not part of the service", p.ImportPath, imp)
			}
			if strings.HasPrefix(imp, toolsPrefix) && p.ImportPath != "seckill/app/cmd/seckill" {
				t.Errorf("%s imports %s: tools are not part of the service", p.ImportPath, imp)
			}
		}
	}
	if service < 20 {
		t.Fatalf("only %d service packages found: the rule would guard little", service)
	}
}

// TestTheAssemblyIsPlain: the wiring is Build then Start, with ports
// swapped between the two; no type named Overrides or Hooks brings back
// a second, hidden way to change it.
func TestTheAssemblyIsPlain(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "bootstrap")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok && (ts.Name.Name == "Overrides" || ts.Name.Name == "Hooks") {
						t.Errorf("bootstrap declares type %s: swap a port of Parts between Build and Start instead", ts.Name.Name)
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil {
					funcs[d.Name.Name] = true
				}
			}
		}
	}
	for _, want := range []string{"Build", "Start"} {
		if !funcs[want] {
			t.Errorf("bootstrap has no func %s: the assembly is Build(ctx, cfg, roles, log) then Start(ctx, parts)", want)
		}
	}
}
