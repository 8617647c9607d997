package reconcile

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Action is what a plan does to one thing.
type Action string

const (
	Create    Action = "create"
	Update    Action = "update"
	Delete    Action = "delete"
	Unchanged Action = "unchanged"
)

// Changes reports whether the action changes anything.
func (a Action) Changes() bool { return a != Unchanged && a != "" }

// Plan is what a reconcile would do, computed before anything is done: it
// is printed by --dry-run and diff, and it is exactly what apply executes.
type Plan struct {
	Catalogs []CatalogChange `json:"catalogs"`
	// Images is the size of the mirror's image set (0 without a Mirror).
	Images int `json:"images"`
	// Copy is what the mirror lacks, when it was checked (diff and
	// --dry-run check it; render does not contact the mirror).
	Copy  *CopyPlan    `json:"copy,omitempty"`
	Files []FileChange `json:"files"`
	// Cluster is the cluster part, nil when it was not computed (render).
	Cluster *ClusterPlan `json:"cluster,omitempty"`
	// Samples is the samples part, nil without a Samples spec.
	Samples *SamplesPlan `json:"samples,omitempty"`
	// Failures are the parts that could not be planned (a catalog whose
	// source could not be read, a tag that could not be resolved); the
	// rest of the plan stands without them.
	Failures []Failure `json:"failures,omitempty"`
}

// CatalogChange describes one catalog in catalog terms.
type CatalogChange struct {
	Name          string          `json:"name"`
	Action        Action          `json:"action"`
	Image         string          `json:"image,omitempty"`         // target pinned by digest
	PreviousImage string          `json:"previousImage,omitempty"` // from the previous render
	Packages      []PackageChange `json:"packages,omitempty"`
	// Failed says why the catalog could not be planned; it then keeps its
	// previous render.
	Failed string `json:"failed,omitempty"`
}

// PackageChange describes one package of a catalog.
type PackageChange struct {
	Name                   string          `json:"name"`
	Action                 Action          `json:"action"`
	DefaultChannel         string          `json:"defaultChannel,omitempty"`
	PreviousDefaultChannel string          `json:"previousDefaultChannel,omitempty"`
	Channels               []ChannelChange `json:"channels,omitempty"`
	BundlesAdded           []string        `json:"bundlesAdded,omitempty"`
	// InferredEdges are upgrade edges of added bundles that no CSV states:
	// chosen by the add mode, shown so a reviewer sees every edge nobody
	// wrote.
	InferredEdges  []InferredEdge `json:"inferredEdges,omitempty"`
	BundlesRemoved []string       `json:"bundlesRemoved,omitempty"`
	Bundles        int            `json:"bundles"`
}

// ChannelChange is a channel whose head or membership may have moved.
type ChannelChange struct {
	Name         string `json:"name"`
	Action       Action `json:"action"`
	Head         string `json:"head,omitempty"`
	PreviousHead string `json:"previousHead,omitempty"`
}

// InferredEdge is one channel entry whose replaces and skips Ferry chose
// when adding spec.bundles.
type InferredEdge struct {
	Channel  string   `json:"channel"`
	Bundle   string   `json:"bundle"`
	Replaces string   `json:"replaces,omitempty"`
	Skips    []string `json:"skips,omitempty"`
	Mode     string   `json:"mode"`
	Reason   string   `json:"reason"`
	// Origin is the spec.bundles entry, with its file and line.
	Origin string `json:"origin,omitempty"`
}

// addInferredEdges files the edges of c's added bundles under their
// packages, in the order they were chosen.
func addInferredEdges(c *CatalogChange, edges []bundle.Edge) {
	for _, e := range edges {
		i := slices.IndexFunc(c.Packages, func(p PackageChange) bool { return p.Name == e.Package })
		if i < 0 {
			continue
		}
		c.Packages[i].InferredEdges = append(c.Packages[i].InferredEdges, InferredEdge{
			Channel: e.Channel, Bundle: e.Bundle, Replaces: e.Replaces, Skips: e.Skips,
			Mode: string(e.Mode), Reason: e.Reason, Origin: e.Origin,
		})
	}
}

// FileChange is one rendered file.
type FileChange struct {
	Path   string `json:"path"`
	Action Action `json:"action"`
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	if p.Copy != nil && p.Copy.Unchecked == "" && len(p.Copy.Images) > 0 {
		return true
	}
	for _, c := range p.Catalogs {
		if c.Action.Changes() {
			return true
		}
	}
	for _, f := range p.Files {
		if f.Action.Changes() {
			return true
		}
	}
	return p.Cluster.HasChanges()
}

// DiffCatalog compares a catalog's previous render with the new one.
// prev is nil when the catalog was never rendered.
func DiffCatalog(name string, prev, next *fbc.DeclarativeConfig, prevImage, image string) CatalogChange {
	c := CatalogChange{Name: name, Image: image, PreviousImage: prevImage}
	before, after := summarize(prev), summarize(next)
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	for _, n := range sortedKeys(names) {
		c.Packages = append(c.Packages, diffPackage(n, before[n], after[n]))
	}
	switch {
	case prev == nil && next != nil:
		c.Action = Create
	case next == nil:
		c.Action = Delete
	case image != prevImage:
		c.Action = Update
	default:
		c.Action = Unchanged
		for _, p := range c.Packages {
			if p.Action.Changes() {
				c.Action = Update
			}
		}
	}
	return c
}

type pkgSummary struct {
	defaultChannel string
	heads          map[string]string // channel -> head bundle
	bundles        map[string]bool
}

func summarize(cfg *fbc.DeclarativeConfig) map[string]*pkgSummary {
	out := map[string]*pkgSummary{}
	if cfg == nil {
		return out
	}
	get := func(n string) *pkgSummary {
		if out[n] == nil {
			out[n] = &pkgSummary{heads: map[string]string{}, bundles: map[string]bool{}}
		}
		return out[n]
	}
	for _, p := range cfg.Packages {
		get(p.Name).defaultChannel = p.DefaultChannel
	}
	for _, ch := range cfg.Channels {
		get(ch.Package).heads[ch.Name] = strings.Join(fbc.ChannelHeads(ch.Entries), ",")
	}
	for _, b := range cfg.Bundles {
		get(b.Package).bundles[b.Name] = true
	}
	return out
}

func diffPackage(name string, before, after *pkgSummary) PackageChange {
	pc := PackageChange{Name: name}
	switch {
	case before == nil:
		pc.Action = Create
		before = &pkgSummary{}
	case after == nil:
		pc.Action = Delete
		after = &pkgSummary{}
	}
	pc.DefaultChannel, pc.Bundles = after.defaultChannel, len(after.bundles)
	if before.defaultChannel != after.defaultChannel {
		pc.PreviousDefaultChannel = before.defaultChannel
	}
	for b := range after.bundles {
		if !before.bundles[b] {
			pc.BundlesAdded = append(pc.BundlesAdded, b)
		}
	}
	for b := range before.bundles {
		if !after.bundles[b] {
			pc.BundlesRemoved = append(pc.BundlesRemoved, b)
		}
	}
	sort.Strings(pc.BundlesAdded)
	sort.Strings(pc.BundlesRemoved)
	channels := map[string]bool{}
	for c := range before.heads {
		channels[c] = true
	}
	for c := range after.heads {
		channels[c] = true
	}
	changed := false
	for _, c := range sortedKeys(channels) {
		h0, ok0 := before.heads[c]
		h1, ok1 := after.heads[c]
		cc := ChannelChange{Name: c, Head: h1}
		switch {
		case !ok0:
			cc.Action = Create
		case !ok1:
			cc.Action, cc.Head, cc.PreviousHead = Delete, "", h0
		case h0 != h1:
			cc.Action, cc.PreviousHead = Update, h0
		default:
			cc.Action = Unchanged
		}
		changed = changed || cc.Action.Changes()
		pc.Channels = append(pc.Channels, cc)
	}
	if pc.Action == "" {
		pc.Action = Unchanged
		if changed || len(pc.BundlesAdded)+len(pc.BundlesRemoved) > 0 || pc.PreviousDefaultChannel != "" {
			pc.Action = Update
		}
	}
	return pc
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteText prints the plan for people: what moves in each catalog, the
// files that change, and a summary line.
func (p *Plan) WriteText(w io.Writer) error {
	var b bytes.Buffer
	var added, removed, catalogsChanged int
	for _, c := range p.Catalogs {
		if c.Failed != "" {
			fmt.Fprintf(&b, "Catalog/%s: failed, keeps its previous render: %s\n", c.Name, c.Failed)
			if c.Image != "" {
				fmt.Fprintf(&b, "  image %s\n", c.Image)
			}
			continue
		}
		fmt.Fprintf(&b, "Catalog/%s: %s\n", c.Name, c.Action)
		if c.Image != "" {
			fmt.Fprintf(&b, "  image %s\n", c.Image)
		}
		if c.PreviousImage != "" && c.PreviousImage != c.Image {
			fmt.Fprintf(&b, "    was %s\n", c.PreviousImage)
		}
		if c.Action.Changes() {
			catalogsChanged++
		}
		for _, pc := range c.Packages {
			added += len(pc.BundlesAdded)
			removed += len(pc.BundlesRemoved)
			line := fmt.Sprintf("  package %s: %s", pc.Name, pc.Action)
			if pc.Action != Delete {
				line += fmt.Sprintf(" (%d bundles, default channel %s", pc.Bundles, pc.DefaultChannel)
				if pc.PreviousDefaultChannel != "" {
					line += fmt.Sprintf(", was %s", pc.PreviousDefaultChannel)
				}
				line += ")"
			}
			fmt.Fprintln(&b, line)
			for _, ch := range pc.Channels {
				switch ch.Action {
				case Unchanged, Create:
					fmt.Fprintf(&b, "    channel %-20s head %s", ch.Name, ch.Head)
					if ch.Action == Create && pc.Action != Create {
						b.WriteString(" (new channel)")
					}
					b.WriteString("\n")
				case Update:
					fmt.Fprintf(&b, "    channel %-20s head %s -> %s\n", ch.Name, ch.PreviousHead, ch.Head)
				case Delete:
					fmt.Fprintf(&b, "    channel %-20s removed (head was %s)\n", ch.Name, ch.PreviousHead)
				}
			}
			for _, n := range pc.BundlesAdded {
				fmt.Fprintf(&b, "    + %s\n", n)
			}
			for _, e := range pc.InferredEdges {
				fmt.Fprintf(&b, "    inferred edge, channel %s: %s %s\n", e.Channel, e.Bundle, describeInferred(e))
				fmt.Fprintf(&b, "      (addMode %s; %s; %s)\n", e.Mode, e.Reason, orText(e.Origin, "spec.bundles"))
			}
			for _, n := range pc.BundlesRemoved {
				fmt.Fprintf(&b, "    - %s\n", n)
			}
		}
	}
	files := 0
	for _, f := range p.Files {
		if f.Action.Changes() {
			files++
			fmt.Fprintf(&b, "file %s: %s\n", f.Path, f.Action)
		}
	}
	if p.Images > 0 {
		fmt.Fprintf(&b, "Mirror: %d image(s) in the image set (mirror/mapping.txt)", p.Images)
		switch cp := p.Copy; {
		case cp == nil:
			b.WriteString(".\n")
		case cp.Unchecked != "":
			fmt.Fprintf(&b, "; not checked against the mirror (%s).\n", cp.Unchecked)
		default:
			fmt.Fprintf(&b, "; %d to copy (%s at most), %d present.\n", len(cp.Images), FormatBytes(cp.Bytes), cp.Present)
			for _, im := range cp.Images {
				fmt.Fprintf(&b, "  copy %s -> %s (%s)\n", im.Source, im.Destination, FormatBytes(im.Bytes))
			}
		}
	}
	if sp := p.Samples; sp != nil {
		switch {
		case sp.Unavailable != "":
			fmt.Fprintf(&b, "Samples: images not read (%s).\n", sp.Unavailable)
		case len(sp.Images) > 0:
			streams := map[string]bool{}
			for _, im := range sp.Images {
				streams[im.Stream] = true
			}
			fmt.Fprintf(&b, "Samples: %d image(s) of %d imagestream(s) mirrored to %s (samples/mapping.txt).\n", len(sp.Images), len(streams), sp.Registry)
		}
	}
	p.Cluster.writeText(&b)
	for _, f := range p.Failures {
		if f.Kind == FailedImage {
			fmt.Fprintf(&b, "Image %s: failed: %s", f.Name, f.Reason)
			if f.Kept != "" {
				fmt.Fprintf(&b, "; %s", f.Kept)
			} else {
				b.WriteString("; left out")
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "Plan: %d of %d catalog(s) to change, %d bundle(s) added, %d removed, %d file(s) to write.\n",
		catalogsChanged, len(p.Catalogs), added, removed, files)
	if len(p.Failures) > 0 {
		fmt.Fprintf(&b, "Incomplete: %d part(s) could not be planned; the run fails once the rest is applied.\n", len(p.Failures))
	}
	_, err := w.Write(b.Bytes())
	return err
}

func describeInferred(e InferredEdge) string {
	var parts []string
	if e.Replaces != "" {
		parts = append(parts, "replaces "+e.Replaces)
	}
	if len(e.Skips) > 0 {
		parts = append(parts, "skips "+strings.Join(e.Skips, ", "))
	}
	if len(parts) == 0 {
		return "has no edges"
	}
	return strings.Join(parts, " and ")
}

func orText(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// FormatBytes is n in binary units, as the plan and progress show sizes.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
