package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

// TestBannerRecipeBuys runs the terminal recipe `seckill all` prints, line
// by line in one bash, against a system seeded as `make run` seeds it: a
// newcomer who pastes it must end with an order, not a 403 (the demo sales
// need a proof of work that curl cannot do).
func TestBannerRecipeBuys(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing; .ci/run installs curl", tool)
			}
			t.Skipf("%s is missing", tool)
		}
	}
	b := newBackends(t)
	in := b.start(t, "banner", bootstrap.Roles{API: true, Worker: true}, func(c *config.Config) { c.SeedDemo = true })
	var recipe []string
	for _, l := range strings.Split(in.Banner(), "\n") {
		if strings.HasPrefix(l, "    ") {
			recipe = append(recipe, strings.TrimSpace(l))
		}
	}
	if len(recipe) < 3 {
		t.Fatalf("banner has no terminal recipe:\n%s", in.Banner())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := "set -eu\n" + strings.Join(recipe, "\n") + "\n"
	out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("recipe failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	s := string(out)
	if !strings.Contains(s, `"order_id":"`) || !strings.Contains(s, `"user_id":"alice"`) ||
		!strings.Contains(s, `"status":"queued"`) && !strings.Contains(s, `"status":"confirmed"`) {
		t.Fatalf("recipe did not end with alice's order:\n%s", s)
	}
	if strings.Contains(s, `"error"`) {
		t.Fatalf("recipe met an error answer:\n%s", s)
	}
}
