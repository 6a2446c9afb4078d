package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"seckill/app/config"
	"seckill/app/tools/lab"
)

// TestLabThatCannotStartSaysWhy: a lab run whose address is taken (and
// may not move) or whose lab fails says so with the cause, and never
// claims that a lab "did not show the difference".
func TestLabThatCannotStartSaysWhy(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	base := config.Default()
	base.HTTPAddr = held.Addr().String()
	never := lab.Lab{Number: 96, Name: "never", Summary: "s", Metric: "m",
		Run: func(context.Context, *lab.Env, lab.Mode) (lab.Result, error) { return lab.Result{}, nil }}

	var out bytes.Buffer
	err = runLabs(context.Background(), &lab.Env{Base: base, Out: &out}, []lab.Lab{never}, &out)
	if !errors.Is(err, errLabsBroken) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("taken address: err=%v, want errLabsBroken with the cause", err)
	}
	if errors.Is(err, errLabsFailed) || strings.Contains(out.String(), "did not show") {
		t.Errorf("a lab that never ran is said to show no difference:\n%s", out.String())
	}

	broken := never
	broken.Run = func(context.Context, *lab.Env, lab.Mode) (lab.Result, error) {
		return lab.Result{}, errors.New("the embedded broker did not start")
	}
	base.HTTPAddr = "127.0.0.1:0"
	out.Reset()
	err = runLabs(context.Background(), &lab.Env{Base: base, Out: &out}, []lab.Lab{broken}, &out)
	if !errors.Is(err, errLabsBroken) || errors.Is(err, errLabsFailed) {
		t.Errorf("failing lab: err=%v, want errLabsBroken only", err)
	}
	if !strings.Contains(out.String(), "could not run") || !strings.Contains(out.String(), "the embedded broker did not start") {
		t.Errorf("output does not give the cause:\n%s", out.String())
	}
}

// TestLabsPrintAnAnsweringURLFirst: the first line runLabs prints is the
// dashboard's URL, and it answers 200 before the first lab's system starts
// (here the lab's run itself fetches it, before any system exists).
func TestLabsPrintAnAnsweringURLFirst(t *testing.T) {
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	var out bytes.Buffer
	var first string
	var code int
	peek := lab.Lab{Number: 95, Name: "peek", Summary: "s", Metric: "m",
		Run: func(_ context.Context, _ *lab.Env, m lab.Mode) (lab.Result, error) {
			if m == lab.Unprotected {
				first, _, _ = strings.Cut(out.String(), "\n")
				url, _, _ := strings.Cut(strings.TrimPrefix(first, "dashboard: "), " ")
				res, err := http.Get(url)
				if err != nil {
					return lab.Result{}, err
				}
				_ = res.Body.Close()
				code = res.StatusCode
				return lab.Result{Metric: 1}, nil
			}
			return lab.Result{Metric: 0}, nil
		}}
	if err := runLabs(context.Background(), &lab.Env{Base: base, Out: &out}, []lab.Lab{peek}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.HasPrefix(first, "dashboard: http://127.0.0.1:") || !strings.Contains(first, "/dashboard ") {
		t.Fatalf("first line %q, want the dashboard's URL", first)
	}
	if code != http.StatusOK {
		t.Errorf("the printed URL answered %d before any system started, want 200", code)
	}
}

// TestLabRunTakesFlagsAfterTheName: `seckill lab run oversell --linger 15s`
// sets the linger, as the flags before the name would.
func TestLabRunTakesFlagsAfterTheName(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	linger := fs.Duration("linger", 0, "")
	if err := fs.Parse([]string{"oversell", "--linger", "15s"}); err != nil {
		t.Fatal(err)
	}
	rest, err := flagsAfterName(fs, fs.Args())
	if err != nil || len(rest) != 1 || rest[0] != "oversell" || *linger != 15*time.Second {
		t.Fatalf("rest %q, linger %v, err %v; want [oversell], 15s", rest, *linger, err)
	}
	if rest, _ := flagsAfterName(fs, []string{"oversell", "breaker"}); len(rest) != 2 {
		t.Errorf("two names: rest %q, want both kept (and refused by the caller)", rest)
	}
	if _, err := flagsAfterName(fs, []string{"oversell", "--no-such-flag"}); err == nil {
		t.Error("an unknown flag after the name was accepted")
	}
}
