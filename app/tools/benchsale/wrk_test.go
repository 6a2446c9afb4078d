package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"seckill/app/auth"
)

func TestParseWrk(t *testing.T) {
	t.Parallel()
	out := `Running 10s test @ http://127.0.0.1:1234/api/v1/items/3/purchase
BENCH summary requests=20000 duration_us=10000000 bytes=1 connect=0 read=2 write=0 status=19990 timeout=1
BENCH latency p50=2500 p75=3000 p90=4000 p99=9000 p99.9=12000 max=20000 mean=2600.5
BENCH status 409:sold_out 9990
BENCH status 202 5
BENCH thread id=0 tokens=300 wrapped=0
BENCH status 409:sold_out 10000
BENCH status 202 5
BENCH thread id=1 tokens=300 wrapped=2
`
	r := result{Scenario: scenario{Key: "c", Expect: []string{"409:sold_out"}}}
	if err := parseWrk(out, &r); err != nil {
		t.Fatal(err)
	}
	if r.Requests != 20000 || r.Duration != 10*time.Second || r.RPS != 2000 {
		t.Errorf("requests %d duration %v rps %v", r.Requests, r.Duration, r.RPS)
	}
	if r.P50 != 2500 || r.P99 != 9000 || r.P999 != 12000 {
		t.Errorf("latency p50 %v p99 %v p99.9 %v", r.P50, r.P99, r.P999)
	}
	if r.Statuses["409:sold_out"] != 19990 || r.Statuses["202"] != 10 {
		t.Errorf("statuses %v", r.Statuses)
	}
	if r.Errors != (wrkErrors{Read: 2, Timeout: 1}) || r.Wrapped != 2 || r.Tokens != 600 {
		t.Errorf("errors %+v wrapped %d tokens %d", r.Errors, r.Wrapped, r.Tokens)
	}
	if u := r.unexpected(); len(u) != 1 || u["202"] != 10 {
		t.Errorf("unexpected = %v, want the 202s", u)
	}
}

func TestParseWrkWithoutDone(t *testing.T) {
	t.Parallel()
	var r result
	if err := parseWrk("Running 10s test\n  Requests/sec: 100\n", &r); err == nil {
		t.Fatal("parsed output that has no BENCH lines")
	}
}

func TestMintTokensFixedWidth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := mintTokens(dir, "0123456789abcdef0123", time.Hour, 2500, "bt")
	if err != nil {
		t.Fatal(err)
	}
	if f.Count != 2500 || f.RecLen < 20 {
		t.Fatalf("token file %+v", f)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	signer := auth.NewSigner("0123456789abcdef0123", time.Hour, nil)
	if len(raw) != f.Count*f.RecLen {
		t.Fatalf("file is %d bytes, want %d×%d", len(raw), f.Count, f.RecLen)
	}
	seen := map[string]bool{}
	for i := range f.Count {
		line := raw[i*f.RecLen : (i+1)*f.RecLen]
		if line[len(line)-1] != '\n' {
			t.Fatalf("record %d does not end in a newline: %q", i, line)
		}
		user, err := signer.Verify(strings.TrimSuffix(line, "\n"))
		if err != nil {
			t.Fatalf("record %d does not verify: %v", i, err)
		}
		if seen[string(user)] {
			t.Fatalf("record %d repeats user %s", i, user)
		}
		seen[string(user)] = true
	}
}
