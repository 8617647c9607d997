package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedacts(t *testing.T) {
	const secret = "s3cr3t-passw0rd"
	for _, format := range []Format{Text, JSON} {
		t.Run(string(format), func(t *testing.T) {
			var b bytes.Buffer
			log := New(&b, format, slog.LevelDebug).With("repo", "https://ferry:"+secret+"@git.example.com/fleet.git")
			log.Info("fetch https://ferry:"+secret+"@git.example.com/fleet.git failed",
				"err", errors.New(`Get "https://u:`+secret+`@h/x": Authorization: Bearer `+secret+`abcdef`),
				slog.Group("g", "url", "https://x:"+secret+"@h"),
				"count", 3)
			out := b.String()
			if strings.Contains(out, secret) {
				t.Fatalf("the secret reached the log:\n%s", out)
			}
			if !strings.Contains(out, "git.example.com/fleet.git") || !strings.Contains(out, "count") {
				t.Errorf("redaction lost the rest of the line:\n%s", out)
			}
			if format == JSON && json.Valid(bytes.TrimSpace(b.Bytes())) == false {
				t.Errorf("not JSON: %s", out)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		err  bool
	}{{"text", Text, false}, {"JSON", JSON, false}, {"logfmt", "", true}} {
		got, err := ParseFormat(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
	}
}
