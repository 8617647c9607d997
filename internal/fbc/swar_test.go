package fbc

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestSWAR(t *testing.T) {
	check := func(b [8]byte) {
		w := binary.LittleEndian.Uint64(b[:])
		printable, safe := true, true
		for _, c := range b {
			if c < 0x20 || c > 0x7E {
				printable, safe = false, false
			}
			if c == '"' || c == '\\' {
				safe = false
			}
		}
		if printable8(w) != printable || jsonSafe8(w) != safe {
			t.Fatalf("%q: printable8=%v want %v, jsonSafe8=%v want %v", b, printable8(w), printable, jsonSafe8(w), safe)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	special := []byte{0, 0x1F, 0x20, 0x21, '"', '\\', 0x7E, 0x7F, 0x80, 0xFF, '\n', 'a'}
	for range 200000 {
		var b [8]byte
		for i := range b {
			if r.IntN(2) == 0 {
				b[i] = special[r.IntN(len(special))]
			} else {
				b[i] = byte(r.IntN(256))
			}
		}
		check(b)
	}
}
