package fbc

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// referenceCanonical is what opm holds for a YAML document: yaml.v2 through
// sigs.k8s.io/yaml to JSON, then declcfg.Meta's map round trip.
func referenceCanonical(doc []byte) ([]byte, error) {
	j, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkFastYAML parses doc with the fast path; when it does not defer to the
// reference decoder, its result must be the reference's.
func checkFastYAML(t *testing.T, doc string) (fast bool) {
	t.Helper()
	var tr tree
	root, err := parseYAMLFast(&tr, []byte(doc))
	if err == errSlow {
		return false
	}
	if err != nil {
		t.Fatalf("fast path returned %v (want a result or errSlow) for:\n%s", err, doc)
	}
	got := tr.appendCanonical(nil, root)
	want, rerr := referenceCanonical([]byte(doc))
	if rerr != nil {
		t.Fatalf("fast path accepted a document yaml.v2 rejects (%v):\n%s\nfast result: %s", rerr, doc, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast path differs from yaml.v2 for:\n%s\n got: %s\nwant: %s", doc, got, want)
	}
	return true
}

var yamlCases = []struct {
	name string
	doc  string
	fast bool // the fast path must handle it (not defer)
}{
	{"flat", "schema: olm.package\nname: foo\ndefaultChannel: stable\n", true},
	{"no final newline", "a: b", true},
	{"indented root", "  a: b\n  c: d\n", true},
	{"comments", "# head\na: b # trailing\n  # indented comment\nc: d\n#tail", true},
	{"nested map", "a:\n  b:\n    c: d\n  e: f\ng: h\n", true},
	{"indentless seq", "a:\n- x\n- y\nb: z\n", true},
	{"indented seq", "a:\n  - x\n  - y\nb: z\n", true},
	{"seq of maps", "p:\n- type: olm.gvk\n  value:\n    group: g\n    kind: K\n- type: olm.package\n  value:\n    packageName: foo\n    version: 1.0.0\n", true},
	{"seq of seqs", "a:\n- - x\n  - y\n- - z\n", true},
	{"empty item", "a:\n-\n- b\n", true},
	{"null values", "a:\nb: ~\nc: null\nd: Null\n", true},
	{"empty flow", "a: []\nb: {}\nc:\n- []\n- {}\n", true},
	{"booleans", "a: true\nb: False\nc: yes\nd: no\ne: on\nf: OFF\ng: y\nh: N\n", true},
	{"numbers", "a: 1\nb: -3\nc: 1.5\nd: 0x1F\ne: 0o17\nf: 017\ng: 1_000\nh: 1e3\ni: .5\nj: +7\nk: 09\nl: 12345678901234567890\nm: 123456789012345678\nnn: 1.0\no: -0\np: 0b101\nq: 1e400\nr: 0.000001\ns: 1e21\n", true},
	{"bool-like keys", "y: 1\n", false},
	{"version strings", "a: 1.10.1\nb: v1.0.0\nc: 1.0.0-rc.1+build\nd: 4.20\ne: 1.2.3.4\n", true},
	{"timestamps", "a: 2021-01-02\nb: 2021-01-02T10:00:00Z\nc: 2021-1-2 3:04:05\nd: 1234-56\n", true},
	{"special strings", "a: -x\nb: a:b\nc: http://x.y/z?q=1#frag\nd: a#b\ne: '@foo'\nf: \"%x\"\ng: <<\nh: =\n", true},
	{"plain multi-line", "description: AlloyDB Omni for Kubernetes lets you run\n  a database within your\n  own environment.\nnext: x\n", true},
	{"plain multi-line blank lines", "a: one\n  two\n\n  three\n\n\n  four\nb: c\n", true},
	{"plain continuation with dash", "a: one\n  - two\n", true},
	{"plain on next line", "a:\n  text on\n  two lines\nb: c\n", true},
	{"double quoted", `a: "x \"y\" \\ \t \n \u00e9 \x41 \U0001F600 \/"` + "\n", false},
	{"double quoted escapes", `a: "x \"y\" \\ \t \n \u00e9 \x41 \U0001F600 \0 \a \b \v \f \r \e \  \_ \N \L \P"` + "\n", true},
	{"double quoted folded", "a: \"one two\n  three\n\n  four \\\n  five\\\n  \\ six  \n  seven\"\nb: c\n", true},
	{"single quoted", "a: 'it''s # not a comment'\nb: 'multi\n  line\n\n  text'\n", true},
	{"quoted keys", "\"a b\": 1\n'c: d': 2\n\"\": 3\n", true},
	{"literal", "a: |\n  line 1\n    indented\n\n  line 3\nb: x\n", true},
	{"literal strip", "a: |-\n  text\n\n\nb: x\n", true},
	{"literal keep", "a: |+\n  text\n\n\nb: x\n", true},
	{"literal keep at end", "a: |+\n  text\n\n", true},
	{"literal no final newline", "a: |\n  text", true},
	{"literal indicator", "a: |2-\n    leading spaces\n  normal\nb: x\n", true},
	{"literal indicator keep", "a: |+2\n   x\n", true},
	{"literal leading blank lines", "a: |\n\n\n  text\n", true},
	{"literal in seq", "a:\n- |\n  one\n  two\n- x\n", true},
	{"literal with spaces-only lines", "a: |\n  x\n     \n  \n  y\n", true},
	{"literal comment header", "a: | # comment\n  x\n", true},
	{"literal less indented comment", "a: |\n    x\n  # comment\nb: c\n", true},
	{"unicode", "a: héllo wörld ✓ 😀\nb: \"é\"\n", true},
	{"duplicate keys", "a: 1\nb: 2\na: 3\n", true},
	{"unsorted keys", "z: 1\na:\n  x: 2\n  b: 3\n", true},
	{"json escapes in keys", "\"k\\u00e9y\": 1\n", true},
	{"long key", strings.Repeat("k", 2000) + ": v\n", false},
	{"anchors", "a: &x 1\nb: *x\n", false},
	{"tags", "a: !!str 1\n", false},
	{"flow map", "a: {b: c}\n", false},
	{"flow seq", "a: [b, c]\n", false},
	{"folded", "a: >\n  x\n  y\n", false},
	{"tab", "a:\tb\n", false},
	{"crlf", "a: b\r\nc: d\r\n", false},
	{"merge key", "<<: {a: b}\n", false},
	{"int key", "1: a\n", false},
	{"bool key", "true: a\n", false},
	{"null key", "~: a\n", false},
	{"nan", "a: .nan\n", false},
	{"inf", "a: -.Inf\n", false},
	{"root scalar", "just text\n", false},
	{"root seq", "- a\n", false},
	{"comments only", "# nothing\n", false},
	{"bad indentation", "a:\n    b: 1\n  c: 2\n", false},
	{"mapping in value", "a: b: c\n", false},
	{"document end", "a: b\n...\n", false},
	{"document end as key", "... :\n", false},
	{"dots key", "...a: b\n", true},
	{"complex key", "? a\n: b\n", false},
	{"bom", "\ufeffa: b\n", false},
	{"nel", "a: x\u0085y\n", false},
	{"control", "a: x\x01y\n", false},
}

func TestFastYAML(t *testing.T) {
	for _, tc := range yamlCases {
		t.Run(tc.name, func(t *testing.T) {
			if fast := checkFastYAML(t, tc.doc); fast != tc.fast {
				t.Errorf("fast path taken = %v, want %v", fast, tc.fast)
			}
		})
	}
}

// FuzzFastYAML checks the fast path against yaml.v2 on arbitrary input:
// whatever it does not defer must come out exactly as opm would read it.
func FuzzFastYAML(f *testing.F) {
	for _, tc := range yamlCases {
		f.Add(tc.doc)
	}
	files, _ := filepath.Glob(filepath.Join(testdataFBC, "small", "*", "*", "*", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			if len(doc) < 4000 {
				f.Add(doc)
			}
		}
	}
	f.Fuzz(func(t *testing.T, doc string) {
		checkFastYAML(t, doc)
	})
}
