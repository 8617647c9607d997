package gitsync

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelectChanges(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     []FileStatus
		dir       string
		want      []string
		elsewhere []string
	}{
		{name: "nothing changed", dir: "rendered"},
		{
			name: "render changes only, unstaged edits elsewhere left alone",
			dir:  "clusters/prod/rendered",
			files: []FileStatus{
				{Path: "clusters/prod/rendered/b.yaml", Changed: true},
				{Path: "clusters/prod/rendered/a.yaml", Changed: true, Staged: true},
				{Path: "clusters/prod/catalog.yaml", Changed: true},
				{Path: "clusters/prod/rendered-old/x", Changed: true},
			},
			want: []string{"clusters/prod/rendered/a.yaml", "clusters/prod/rendered/b.yaml"},
		},
		{
			name:      "staged elsewhere refuses",
			dir:       "rendered",
			files:     []FileStatus{{Path: "rendered/a", Changed: true}, {Path: "spec.yaml", Changed: true, Staged: true}},
			elsewhere: []string{"spec.yaml"},
		},
		{
			name:  "the whole tree",
			dir:   ".",
			files: []FileStatus{{Path: "a", Changed: true}},
			want:  []string{"a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectChanges(tc.files, tc.dir)
			var se *StagedElsewhereError
			if tc.elsewhere != nil {
				if !errors.As(err, &se) || !cmp.Equal(se.Paths, tc.elsewhere) {
					t.Fatalf("err %v, want StagedElsewhereError %v", err, tc.elsewhere)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"../x", "/abs", "a/../../b"} {
		if _, err := SelectChanges(nil, bad); err == nil {
			t.Errorf("SelectChanges(%q) accepted a directory outside the work tree", bad)
		}
	}
}

func TestOutside(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  bool
	}{
		{nil, false},
		{[]string{"clusters/prod/rendered/a.yaml", "clusters/prod/rendered/x/y"}, false},
		{[]string{"clusters/prod/rendered/a.yaml", "clusters/prod/catalog.yaml"}, true},
		{[]string{"clusters/prod/rendered.yaml"}, true},
	} {
		if got, err := Outside(tc.paths, "clusters/prod/rendered"); err != nil || got != tc.want {
			t.Errorf("Outside(%v) = %v, %v; want %v", tc.paths, got, err, tc.want)
		}
	}
}
