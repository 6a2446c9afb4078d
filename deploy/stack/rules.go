package stack

import (
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"
)

// bindMounts maps each container path a compose service bind-mounts to the
// host path mounted there.
func bindMounts(p *types.Project, service string) map[string]string {
	m := map[string]string{}
	for _, v := range p.Services[service].Volumes {
		if v.Type == types.VolumeTypeBind {
			m[v.Target] = v.Source
		}
	}
	return m
}

// renderRuleFiles points each of prometheus.yml's rule_files at the host
// file compose mounts at that container path, so make stack's Prometheus
// loads the same alert and recording rules as the compose one. A rule file
// compose does not mount is an error: Prometheus would load no rules and
// say nothing about it.
func renderRuleFiles(doc map[string]any, files map[string]string) error {
	rfs, _ := doc["rule_files"].([]any)
	for i, raw := range rfs {
		path, _ := raw.(string)
		host, ok := files[path]
		if !ok {
			return fmt.Errorf("prometheus.yml loads rule file %q, which the compose prometheus service does not mount", path)
		}
		rfs[i] = host
	}
	return nil
}
