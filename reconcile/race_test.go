//go:build race

package reconcile

// raceEnabled is set when the race detector is on: it multiplies memory
// use, so memory-limit tests say nothing under it.
const raceEnabled = true
