package fbc

// Word-at-a-time tests for the byte scans that dominate loading and
// writing: they let a scan skip eight ordinary bytes at once. Carries and
// borrows between bytes only start at bytes that already fail the test, so
// the answer for the word as a whole is exact.

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// printable8 reports whether all eight bytes of w are printable ASCII
// (0x20-0x7E).
func printable8(w uint64) bool {
	return ((w-swarLo*0x20)&^w|(w+swarLo)|w)&swarHi == 0
}

// jsonSafe8 reports whether all eight bytes of w are printable ASCII that
// encoding/json copies unchanged (no '"' or '\\').
func jsonSafe8(w uint64) bool {
	q := w ^ (swarLo * '"')
	b := w ^ (swarLo * '\\')
	return ((w-swarLo*0x20)&^w|(w+swarLo)|w|(q-swarLo)&^q|(b-swarLo)&^b)&swarHi == 0
}
