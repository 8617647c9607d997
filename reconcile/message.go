package reconcile

import (
	"fmt"
	"io/fs"
	"strings"
)

// Achieved is the plan as Apply carried it out, for the commit message and
// reports: a held catalog is Unchanged (its previous render stays), and
// Files are the files actually written compared with previous. The plan
// itself is not changed.
func (out *Outcome) Achieved(plan *Plan, previous fs.FS) *Plan {
	held := map[string]bool{}
	for _, c := range out.Catalogs {
		if c.Held != "" {
			held[c.Name] = true
		}
	}
	got := &Plan{Images: plan.Images}
	for _, c := range plan.Catalogs {
		if held[c.Name] {
			got.Catalogs = append(got.Catalogs, CatalogChange{Name: c.Name, Action: Unchanged, Image: c.PreviousImage})
			continue
		}
		got.Catalogs = append(got.Catalogs, c)
	}
	got.Files = diffFiles(previous, out.Files)
	return got
}

// CommitMessage summarises what a reconcile did, from its outcome rather
// than its plan: catalogs held back are named as held, never as moved, and
// the files listed are the files written.
func (out *Outcome) CommitMessage(plan *Plan, previous fs.FS) string {
	achieved := out.Achieved(plan, previous)
	var b strings.Builder
	var moved []string
	for _, c := range achieved.Catalogs {
		if c.Action.Changes() {
			moved = append(moved, c.Name)
		}
	}
	subject := "ferry: reconcile"
	if len(moved) > 0 {
		subject += " " + strings.Join(moved, ", ")
	}
	b.WriteString(subject + "\n\n")
	_ = achieved.WriteText(&b)
	if rep := out.Copy; rep != nil {
		s := rep.Stats
		fmt.Fprintf(&b, "Mirror: %d image(s): %d copied, %d present, %d failed.\n", s.Images, s.ImagesCopied, s.ImagesPresent, s.ImagesFailed)
	}
	if so := out.Samples; so != nil && so.Copy != nil {
		s := so.Copy.Stats
		fmt.Fprintf(&b, "Samples: %d image(s): %d copied, %d present, %d failed.\n", s.Images, s.ImagesCopied, s.ImagesPresent, s.ImagesFailed)
		for _, stream := range sortedKeys(boolKeys(so.Skipped)) {
			fmt.Fprintf(&b, "Samples: imagestream %s skipped: %s\n", stream, so.Skipped[stream])
		}
	}
	for _, c := range out.Catalogs {
		if c.Held != "" {
			fmt.Fprintf(&b, "Held back: Catalog/%s keeps its previous render (%s).\n", c.Name, c.Held)
		}
	}
	return b.String()
}

func boolKeys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
