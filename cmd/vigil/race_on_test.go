//go:build race

package main

// raceEnabled skips the tests that push a million series through the
// daemon: minutes under the race detector, which they add nothing to.
const raceEnabled = true
