package chaos

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// proc is one OS process the harness started. It can be SIGKILLed and
// started again with the same argv and env; every incarnation logs to a file
// of its own, so a failure can show what each one said.
type proc struct {
	name string
	path string
	args []string
	env  []string
	dir  string
	url  string // http://host:port for seckill processes, else ""

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current incarnation has exited
	exitErr error
	logs    []string
	faulted bool // the test killed it on purpose
}

// start runs a new incarnation. It fails if one is still running.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, len(p.logs)+1))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a kill reaches any child it forks (an AOF
	// rewrite of redis-server) and nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done, p.exitErr = cmd, done, nil
	p.logs = append(p.logs, logPath)
	return nil
}

// running reports whether the current incarnation has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// exited returns a channel closed when the current incarnation exits.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// signal sends sig to the process group of the current incarnation.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// kill SIGKILLs the process on purpose and waits (at most 10 s) until it is
// gone, so a restart can take its port.
func (p *proc) kill() error {
	p.mu.Lock()
	p.faulted = true
	p.mu.Unlock()
	return p.halt(syscall.SIGKILL, 10*time.Second)
}

// halt sends sig and waits up to grace for the exit, then SIGKILLs.
func (p *proc) halt(sig syscall.Signal, grace time.Duration) error {
	if !p.running() {
		return nil
	}
	done := p.exited()
	p.signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit 10s after SIGKILL", p.name)
	}
}

// unexpectedExit describes an exit the test did not cause, or "".
func (p *proc) unexpectedExit() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.faulted || p.done == nil {
		return ""
	}
	select {
	case <-p.done:
		return fmt.Sprintf("%s exited on its own (%v)", p.name, p.exitErr)
	default:
		return ""
	}
}

// tail returns the last n lines of every incarnation's log.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	logs := append([]string(nil), p.logs...)
	p.mu.Unlock()
	var b strings.Builder
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) > 4*n {
				lines = lines[len(lines)-n:]
			}
		}
		f.Close()
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", filepath.Base(path), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// sumLogged adds up the integer field key= over every log line of every
// incarnation that contains msg (slog's text format), e.g. how many orders
// the outbox relay re-published.
func (p *proc) sumLogged(msg, key string) (lines, total int) {
	p.mu.Lock()
	logs := append([]string(nil), p.logs...)
	p.mu.Unlock()
	for _, path := range logs {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.Contains(line, msg) {
				continue
			}
			lines++
			if _, rest, ok := strings.Cut(line, " "+key+"="); ok {
				n, _ := strconv.Atoi(strings.Fields(rest)[0])
				total += n
			}
		}
	}
	return lines, total
}

// freeAddr returns a 127.0.0.1 address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// cleanEnv is this process's environment without any SECKILL_* variable,
// so a developer's shell settings cannot leak into the processes under test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECKILL_") {
			out = append(out, kv)
		}
	}
	return out
}

// waitUntil polls ok every 100 ms until it returns nil, p exits (when p is
// not nil) or timeout passes; the error says which, with ok's last error.
func waitUntil(p *proc, timeout time.Duration, what string, ok func() error) error {
	deadline := time.Now().Add(timeout)
	var exited <-chan struct{}
	if p != nil {
		exited = p.exited()
	}
	for {
		err := ok()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: the process exited while waiting (last check: %w)", what, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s: %w", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHTTP waits until GET url+path answers 200.
func waitHTTP(p *proc, path string, timeout time.Duration) error {
	return waitUntil(p, timeout, p.name+" "+path, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := call(ctx, "GET", p.url+path, "", nil)
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("%d %s", r.status, r.raw)
		}
		return nil
	})
}

// waitTCP waits until addr accepts a connection.
func waitTCP(p *proc, addr string, timeout time.Duration) error {
	return waitUntil(p, timeout, p.name+" at "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// waitRedis waits until PING succeeds (redis-server answers LOADING while it
// replays its AOF).
func waitRedis(p *proc, addr string, timeout time.Duration) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer rdb.Close()
	return waitUntil(p, timeout, p.name+" at "+addr, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err()
	})
}

// waitMySQL waits until the server at dsn answers a ping.
func waitMySQL(p *proc, dsn string, timeout time.Duration) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return waitUntil(p, timeout, p.name+" (mysql)", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
}

// errNoAPI is what the load sees while no API process is running.
var errNoAPI = errors.New("no API process is running")
