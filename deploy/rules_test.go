package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// promtool runs promtool with args in deploy/prometheus. It skips the test
// when promtool is not on PATH, except under CI=true, where .ci/run has
// installed it (Debian's prometheus package) and its absence is a failure.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool is not on PATH (Debian: apt-get install prometheus)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: .ci/run installs it)")
		}
		t.Skip(msg)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join("prometheus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules runs promtool's unit tests for the alert rules: every
// alert must fire on its firing case and stay quiet on its quiet case.
func TestAlertRules(t *testing.T) {
	promtool(t, "check", "rules", "rules.yml")
	promtool(t, "test", "rules", "rules_test.yml")
}

// TestEveryAlertIsTested checks that rules_test.yml has a firing case (an
// expected alert) and a quiet case (no alert) for every alert in rules.yml,
// so a new alert without tests fails here rather than going untested.
func TestEveryAlertIsTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join("prometheus", "rules.yml"), &rules)
	readYAML(t, filepath.Join("prometheus", "rules_test.yml"), &tests)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tg := range tests.Tests {
		for _, c := range tg.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname] = true
			} else {
				quiet[c.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !firing[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: firing case %v, quiet case %v in rules_test.yml; it needs both", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n == 0 {
		t.Fatal("rules.yml has no alerts")
	}
}

// TestComposeLoadsRules checks that the compose Prometheus is given the
// rules: prometheus.yml names the rule file at the path compose mounts it.
func TestComposeLoadsRules(t *testing.T) {
	var conf struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, filepath.Join("prometheus", "prometheus.yml"), &conf)
	p := loadProject(t)
	mounts := map[string]string{}
	for _, v := range service(t, p, "prometheus").Volumes {
		mounts[v.Target] = v.Source
	}
	if len(conf.RuleFiles) == 0 {
		t.Fatal("prometheus.yml has no rule_files")
	}
	for _, f := range conf.RuleFiles {
		src, ok := mounts[f]
		if !ok {
			t.Errorf("prometheus.yml loads %s, which the compose prometheus service does not mount", f)
			continue
		}
		if want, _ := filepath.Abs(filepath.Join("prometheus", "rules.yml")); src != want {
			t.Errorf("compose mounts %s at %s, want %s", src, f, want)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
