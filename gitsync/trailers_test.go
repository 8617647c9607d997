package gitsync

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendTrailers(t *testing.T) {
	rev := Trailer{SourceRevisionTrailer, "0123456789abcdef0123456789abcdef01234567"}
	for _, tc := range []struct {
		name, msg string
		add       []Trailer
		want      string
	}{
		{
			name: "subject only",
			msg:  "ferry: render 2 catalogs",
			add:  []Trailer{rev},
			want: "ferry: render 2 catalogs\n\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567\n",
		},
		{
			name: "subject and body",
			msg:  "ferry: render\n\nCatalog/a: 1 bundle added\nImages: 3 copied\n\n",
			add:  []Trailer{rev, {"Ferry-Plan", "2 changes"}},
			want: "ferry: render\n\nCatalog/a: 1 bundle added\nImages: 3 copied\n\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567\nFerry-Plan: 2 changes\n",
		},
		{
			name: "joins an existing trailer block",
			msg:  "ferry: render\n\nbody\n\nSigned-off-by: A <a@example.com>\n",
			add:  []Trailer{rev},
			want: "ferry: render\n\nbody\n\nSigned-off-by: A <a@example.com>\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567\n",
		},
		{
			name: "a body line with a colon is not a trailer block",
			msg:  "ferry: render\n\nNote: two catalogs moved, see below\nand more prose",
			add:  []Trailer{rev},
			want: "ferry: render\n\nNote: two catalogs moved, see below\nand more prose\n\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567\n",
		},
		{
			name: "an identical trailer is not repeated",
			msg:  "ferry: render\n\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567",
			add:  []Trailer{rev},
			want: "ferry: render\n\nFerry-Source-Revision: 0123456789abcdef0123456789abcdef01234567\n",
		},
		{
			name: "a value with line breaks stays one line",
			msg:  "ferry: render",
			add:  []Trailer{{"Ferry-Note", "one\ntwo\r\n three"}},
			want: "ferry: render\n\nFerry-Note: one two three\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendTrailers(tc.msg, tc.add...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("AppendTrailers (-want +got):\n%s", diff)
			}
			// git itself must read back the same trailers.
			want := ParseTrailers(got)
			if git, err := exec.LookPath("git"); err == nil {
				cmd := exec.Command(git, "interpret-trailers", "--parse")
				cmd.Stdin = strings.NewReader(got)
				out, err := cmd.Output()
				if err != nil {
					t.Fatal(err)
				}
				var parsed []Trailer
				for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					k, v, _ := strings.Cut(l, ": ")
					parsed = append(parsed, Trailer{k, v})
				}
				if diff := cmp.Diff(want, parsed); diff != "" {
					t.Errorf("git interpret-trailers --parse disagrees with ParseTrailers (-ours +git):\n%s", diff)
				}
			}
		})
	}
	if _, err := AppendTrailers("m", Trailer{"Bad Key", "v"}); err == nil {
		t.Error("a key with a space was accepted")
	}
}
