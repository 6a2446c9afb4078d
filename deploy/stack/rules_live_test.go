package stack

import (
	"encoding/json"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// checkRulesLoaded requires the running Prometheus to have loaded every
// rule of deploy/prometheus/rules.yml, each evaluating without error.
func checkRulesLoaded(t *testing.T, base string) {
	t.Helper()
	src, err := os.ReadFile("../prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &file); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, g := range file.Groups {
		want += len(g.Rules)
	}
	res, err := client.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			got++
			if r.Health == "err" {
				t.Errorf("rule %s fails to evaluate: %s", r.Name, r.LastError)
			}
		}
	}
	if got != want {
		t.Errorf("Prometheus loaded %d rules, rules.yml has %d", got, want)
	}
}
