package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxFuncLines is the house limit: a function a reader sees whole without
// scrolling.
const maxFuncLines = 80

// TestFunctionsFitOnAScreen fails on any non-test function longer than
// maxFuncLines, and logs the ten longest (go test -v -run
// TestFunctionsFitOnAScreen ./app/tests/archtest/ lists them).
func TestFunctionsFitOnAScreen(t *testing.T) {
	type fn struct {
		where string
		lines int
	}
	var all []fn
	fset := token.NewFileSet()
	root := filepath.Join("..", "..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
				rel, _ := filepath.Rel(root, p)
				all = append(all, fn{fmt.Sprintf("%s:%d %s", rel, start.Line, fd.Name.Name), end.Line - start.Line + 1})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 500 {
		t.Fatalf("found only %d functions: the walk missed the tree", len(all))
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lines > all[j].lines })
	for i, f := range all {
		if i < 10 {
			t.Logf("%4d lines  %s", f.lines, f.where)
		}
		if f.lines > maxFuncLines {
			t.Errorf("%s is %d lines, more than %d", f.where, f.lines, maxFuncLines)
		}
	}
}
