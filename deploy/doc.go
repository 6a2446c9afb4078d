// Package deploy holds the deployment files of the compose stack (nginx,
// Prometheus and Grafana configuration) and the tests that check
// docker-compose.yml against them and against the settings the binary reads.
// No Docker engine is needed: the compose file is loaded with compose-go, the
// library the docker compose CLI itself uses.
package deploy
