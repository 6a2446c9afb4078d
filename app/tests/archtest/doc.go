// Package archtest guards the dependency rule with a test: domain imports
// only the standard library, infra never imports app, and only the wiring
// (app/bootstrap, app/cmd) builds concrete adapters.
package archtest
