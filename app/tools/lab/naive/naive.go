// Package naive holds the components a newcomer would write, WRONG ON
// PURPOSE, for the workshop labs (app/tools/lab). Each one implements the same
// port as the production component it stands in for, and each file says
// which protection it lacks and where the real one lives.
//
// Never wire these into a real system: only app/tools/lab may import this
// package, and app/tests/archtest fails the build's tests if anything else does.
package naive
