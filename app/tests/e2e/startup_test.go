package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBusyPortIsReportedBeforeAnythingStarts: a second instance on a busy
// --http-addr fails with the helpful message before it starts an embedded
// backend or seeds a demo sale, and logs no shutdown of things it never
// started.
func TestBusyPortIsReportedBeforeAnythingStarts(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default()
	cfg.HTTPAddr = busy.Addr().String()
	cfg.SQLitePath = filepath.Join(t.TempDir(), "seckill.db")
	cfg.SeedDemo = true
	var logs lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := bootstrap.Build(ctx, cfg, bootstrap.Roles{API: true, Worker: true}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		p.Close()
		t.Fatal("Build on a busy port succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "listen on "+cfg.HTTPAddr) || !strings.Contains(msg, "--http-addr") {
		t.Errorf("error %q: want the address and the --http-addr hint", msg)
	}
	for _, s := range []string{"started embedded", "seeded demo", "using embedded SQLite", "stopped cleanly"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log mentions %q before reporting the busy port:\n%s", s, logs.String())
		}
	}
}

// TestStartupLogSaysGeneratedSecrets: with no --admin-token and no
// --token-secret the start-up line says each was generated, and still
// never shows a value.
func TestStartupLogSaysGeneratedSecrets(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.SQLitePath = filepath.Join(t.TempDir(), "seckill.db")
	var logs lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bootstrap.Open(ctx, cfg, bootstrap.Roles{API: true, Worker: true}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer scancel()
		_ = m.Shutdown(sctx)
	}()
	var started string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="seckill started"`) {
			started = line
		}
	}
	if started == "" {
		t.Fatalf("no start-up line in:\n%s", logs.String())
	}
	for _, want := range []string{"config.admin_token=generated", "config.token_secret=generated"} {
		if !strings.Contains(started, want) {
			t.Errorf("start-up line lacks %s: %s", want, started)
		}
	}
	if strings.Contains(started, m.AdminToken) {
		t.Errorf("start-up line shows the admin token: %s", started)
	}
	// No log line at all shows it: the banner prints it once, and logs
	// are shipped and kept where a secret must not be.
	if strings.Contains(logs.String(), m.AdminToken) {
		t.Errorf("the log shows the generated admin token:\n%s", logs.String())
	}
	if !m.AdminTokenGenerated {
		t.Error("AdminTokenGenerated is false for a generated token")
	}
}
