package cli

import (
	"bytes"
	"strings"
	"testing"

	engine "github.com/ferry-gitops/ferry/internal/mirror"
)

func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 4, "always")
	p.Report(engine.Event{Kind: engine.EventImage, Image: &engine.ImageResult{Action: engine.ActionCopied}})
	p.Report(engine.Event{Kind: engine.EventImage, Image: &engine.ImageResult{Action: engine.ActionFailed}})
	p.Report(engine.Event{Kind: engine.EventBytes, Bytes: 3 << 20})
	p.stop()
	last := out.String()[strings.LastIndex(out.String(), "\r\033[K")+4:]
	for _, want := range []string{"[" + strings.Repeat("=", 20) + ">", "2/4 images", "1 failed", "3.0 MiB sent"} {
		if !strings.Contains(last, want) {
			t.Errorf("bar %q lacks %q", last, want)
		}
	}
	if !strings.HasSuffix(last, "\n") {
		t.Error("the final bar does not end its line")
	}
	if newProgress(&out, 4, "never") != nil {
		t.Error("--progress never still reports")
	}
	if p := newProgress(&out, 4, "auto"); p.tty {
		t.Error("a buffer is not a terminal")
	} else {
		p.stop()
	}
}
