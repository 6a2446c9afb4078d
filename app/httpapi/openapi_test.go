package httpapi

import (
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"seckill/app/metrics"
)

// TestEveryRouteIsDocumented fails when a route in the router is missing
// from openapi.yaml, or documented with another method, or when the file
// documents a route the router does not have.
func TestEveryRouteIsDocumented(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	r := New(Deps{Metrics: metrics.New(), Web: nopHandler{}})
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	routes := map[string]bool{}
	for _, rt := range r.Routes() {
		path := param.ReplaceAllString(rt.Path, "{$1}")
		method := strings.ToLower(rt.Method)
		routes[method+" "+path] = true
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("route %s %s is not in openapi.yaml", rt.Method, path)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			if !routes[method+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which the router does not serve", strings.ToUpper(method), path)
			}
		}
	}
	if len(routes) < 12 {
		t.Fatalf("only %d routes registered; the test is not seeing the router", len(routes))
	}
}
