package filter

import (
	"fmt"
	"slices"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// validateResult applies to a result the rules of operator-registry's
// declcfg.ConvertToModel and model.Validate that a selection can break:
// every channel valid (entries backed by bundles, one head, no replaces
// cycle, nothing stranded), every bundle in a channel, the default channel
// present, deprecations naming only what is there. Rules about content a
// filter copies unchanged (properties, icons, image references) are left to
// opm, which the tests run on real catalogs.
func validateResult(cfg *fbc.DeclarativeConfig) []Problem {
	var problems []Problem
	fail := func(pkg, ch, format string, args ...any) {
		problems = append(problems, Problem{Kind: InvalidResult, Package: pkg, Channel: ch, Message: fmt.Sprintf(format, args...)})
	}
	cat, ps := newCatalog(cfg)
	for _, p := range ps {
		p.Kind = InvalidResult
		problems = append(problems, p)
	}
	for _, o := range cat.orphans {
		fail("", "", "%s", o)
	}
	for _, name := range cat.pkgNames {
		p := cat.pkgs[name]
		if len(p.chNames) == 0 {
			fail(name, "", "no channels")
		}
		if p.channels[p.blob.DefaultChannel] == nil {
			fail(name, p.blob.DefaultChannel, "the default channel is not in the result")
		}
		for _, chName := range p.chNames {
			g := p.channels[chName]
			if len(g.entries) != len(g.blob.Entries) {
				fail(name, chName, "an entry is listed twice")
			}
			all := set{}
			var missing []string
			for n := range g.entries {
				all[n] = true
				if p.bundles[n] == nil {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				fail(name, chName, "entries without an olm.bundle blob: %v", missing)
				continue
			}
			if _, err := g.check(all); err != nil {
				fail(name, chName, "%v", err)
			}
		}
		for _, b := range p.sortedBundles() {
			if len(b.channels) == 0 {
				fail(name, "", "bundle %s is in no channel", b.blob.Name)
			}
		}
		if d := p.deprecation; d != nil {
			for _, e := range d.Entries {
				switch e.Reference.Schema {
				case fbc.SchemaChannel:
					if p.channels[e.Reference.Name] == nil {
						fail(name, "", "deprecation of channel %q, which is not in the result", e.Reference.Name)
					}
				case fbc.SchemaBundle:
					if p.bundles[e.Reference.Name] == nil {
						fail(name, "", "deprecation of bundle %q, which is not in the result", e.Reference.Name)
					}
				}
			}
		}
	}
	return problems
}
