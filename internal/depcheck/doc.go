// Package depcheck holds only a test: the import rules that keep Ferry's
// packages layered (spec imports nothing of Ferry's, render does no I/O
// beyond its arguments, only the CLI knows cobra, test helpers stay out of
// the product).
package depcheck
