package stack

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
	"time"
)

// jaegerConf is the native Jaeger's config; its header says what it keeps.
//
//go:embed jaeger.yaml
var jaegerConf string

var jaegerTmpl = template.Must(template.New("jaeger.yaml").Option("missingkey=error").Parse(jaegerConf))

// JaegerParams are the addresses the native Jaeger listens on.
type JaegerParams struct {
	OTLP      string // OTLP/HTTP receiver, host:port
	Query     string // UI and HTTP API, host:port
	QueryGRPC string // query gRPC API, host:port
	UI        string // a jaeger-ui build directory to serve at /, or ""
}

// RenderJaeger returns the native Jaeger's config for p; every address must
// be set, or Jaeger would fall back to its fixed default port.
func RenderJaeger(p JaegerParams) ([]byte, error) {
	if p.OTLP == "" || p.Query == "" || p.QueryGRPC == "" {
		return nil, fmt.Errorf("render jaeger.yaml: every address must be set: %+v", p)
	}
	var b bytes.Buffer
	if err := jaegerTmpl.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("render jaeger.yaml: %w", err)
	}
	return b.Bytes(), nil
}

// JaegerTools is the directory of the Go module that pins Jaeger, relative
// to the repository root: a module of its own, so Jaeger's dependencies stay
// out of seckill's go.mod.
const JaegerTools = "deploy/tools/jaeger"

// JaegerPackage is the main package of the all-in-one Jaeger binary.
const JaegerPackage = "github.com/jaegertracing/jaeger/cmd/jaeger"

// BuildJaeger builds the Jaeger binary that deploy/tools/jaeger pins into
// out. root is the repository root. On a machine whose Go build cache
// already holds Jaeger's packages this is a link (seconds); the first build
// compiles them all (minutes, see docs/OPERATIONS.md#tracing).
func BuildJaeger(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, JaegerPackage)
	cmd.Dir = filepath.Join(root, JaegerTools)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (in %s): %w\n%s", JaegerPackage, cmd.Dir, err, b)
	}
	return nil
}

// startJaeger runs Jaeger first of all (it is stopped last, after every
// seckill process flushed its spans) and returns the OTLP/HTTP address the
// seckill processes export to.
func (s *Stack) startJaeger(ctx context.Context, o Options) (otlp string, err error) {
	p := JaegerParams{UI: o.JaegerUI}
	for _, a := range []*string{&p.OTLP, &p.Query, &p.QueryGRPC} {
		if *a, err = freeAddr(); err != nil {
			return "", err
		}
	}
	conf, err := RenderJaeger(p)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(o.Dir, "jaeger")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	confPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return "", err
	}
	proc, err := s.spawn("jaeger", o.Jaeger, []string{"--config", confPath}, nil, 5*time.Second)
	if err != nil {
		return "", err
	}
	s.JaegerURL = "http://" + p.Query
	ready := func() error {
		if err := dialTCP(p.OTLP); err != nil {
			return err
		}
		return httpOK(s.JaegerURL + "/api/services")
	}
	if err := waitFor(ctx, proc, "jaeger "+s.JaegerURL, ready); err != nil {
		return "", err
	}
	return p.OTLP, nil
}
