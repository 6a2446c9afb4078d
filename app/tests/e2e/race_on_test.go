//go:build race

package e2e

// raceEnabled is true under -race (make test), which makes every round trip
// several times slower on the 2-core CI machine.
const raceEnabled = true
