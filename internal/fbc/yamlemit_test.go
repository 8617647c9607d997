package fbc

import (
	"encoding/json"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// checkEmit writes the JSON object raw with the fast emitter and with opm's
// converter (sigs.k8s.io/yaml.JSONToYAML); unless the fast emitter defers,
// the bytes must be equal.
func checkEmit(t *testing.T, raw []byte) {
	t.Helper()
	want, err := sigsyaml.JSONToYAML(raw)
	var e blobEncoder
	root, perr := e.rawValue(raw)
	if perr != nil {
		return // deferred to the reference encoder
	}
	e.y.t = &e.t
	if eerr := e.y.emitDoc(root); eerr != nil {
		return
	}
	if err != nil {
		t.Fatalf("fast emitter wrote %q for %s, which yaml.v2 rejects: %v", e.y.out, raw, err)
	}
	if got := e.y.out; string(got) != string(want) {
		t.Fatalf("emitted YAML differs for %s\n got: %q\nwant: %q", raw, got, want)
	}
}

var emitStrings = []string{
	"", " ", "a", "a b", " a", "a ", "a\n", "a\n\n", "\n", "\na", "a\nb", "a\n b", "a \nb", " a\nb",
	"true", "True", "yes", "n", "null", "~", "1", "1.0", "0x1F", "1e3", "-1", ".5", ".inf", "2021-01-02", "2021-01-02T10:00:00Z",
	"1:20", "190:20:30.15", "- a", "-a", "? a", "?a", ": a", ":a", "a: b", "a:b", "a #b", "a#b", "#a", "[a]", "{a}", "a, b",
	"&a", "*a", "!a", "|a", ">a", "'a'", "\"a\"", "%a", "@a", "`a", "---", "...", "--- a", "a'b", "it's",
	"tab\there", "ctrl\x01", "del\x7f", "é", "日本語", "emoji 😀", "nbsp\u00a0x", "\u00ff", "\ufffd", "\u2028", "bom\ufeff",
	"<<", "=", "a\\b", "\\", "a\"b",
	strings.Repeat("word ", 40), strings.Repeat("x", 100) + " " + strings.Repeat("y", 100),
	strings.Repeat("a ", 60) + "b", strings.Repeat("é ", 60), strings.Repeat("ab  ", 30), "  " + strings.Repeat("ab ", 40) + " ",
	strings.Repeat("line of text\n", 5), "trailing space \nnext", "x\n\n\ny\n", strings.Repeat("é😀 ", 50),
	"tab\tand\nnewline", strings.Repeat("'q' ", 30), strings.Repeat("\"q\" ", 30),
}

func emitDocFor(s string) []byte {
	v := map[string]any{
		"k":     s,
		s:       "value",
		"seq":   []any{s, []any{s}, map[string]any{"x": s, "y": []any{}}},
		"map":   map[string]any{"deep": map[string]any{"x": s}, "empty": map[string]any{}},
		"nums":  []any{1, -0.5, 1e21, 1e-7, 123456789012345678, 0},
		"bools": []any{true, false, nil},
	}
	b, _ := json.Marshal(v)
	return b
}

func TestEmitYAML(t *testing.T) {
	for _, s := range emitStrings {
		checkEmit(t, emitDocFor(s))
	}
	checkEmit(t, []byte(`{"a10":1,"a9":2,"a_b":3,"aB":4,"a01":5,"a1":6,"B":7,"b":8,"1":9,"10":10,"2":11,"-":12,"é":13,"z":14}`))
}

// FuzzEmitYAML compares the fast YAML emitter with JSONToYAML.
func FuzzEmitYAML(f *testing.F) {
	for _, s := range emitStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkEmit(t, emitDocFor(s))
	})
}

func TestEmitYAMLDefersToReference(t *testing.T) {
	for _, raw := range []string{
		`{"a":"x\/y"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":1,"a":2}`, `{"a":"x\r\ny"}`,
		`{"` + strings.Repeat("k", 200) + `":1}`, `{"a\nb":1}`, `{"a":"\u007f"}`, `{"a":"\u2028"}`,
	} {
		var e blobEncoder
		root, err := e.rawValue([]byte(raw))
		if err == nil {
			e.y.t = &e.t
			err = e.y.emitDoc(root)
		}
		if err != errFallback {
			t.Errorf("%s: fast emitter did not defer (err %v)", raw, err)
		}
		checkEmit(t, []byte(raw))
	}
}
