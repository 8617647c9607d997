package filter

import (
	"cmp"
	"errors"
	"slices"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

// Filter returns the part of cfg that s selects (s.Packages and
// s.IncludeDependencies; the other fields of a CatalogSpec are not about
// selection) and a Report of what it kept and decided.
//
// The result is a new DeclarativeConfig in a canonical order (packages by
// name; channels by package and name; entries and bundles by version;
// other blobs by package, schema and name), so the same selection of the
// same catalog gives the same bytes however the source orders its blobs. It
// shares unchanged blob contents (properties, related images, raw blobs)
// with cfg; treat both as read-only.
//
// A selection that cannot be made — an unknown package or channel, a range
// that matches nothing, a dropped default channel, a broken source channel
// it needs — returns an *Error listing every problem and no catalog. Filter
// never returns a catalog that opm's validation rules reject.
func Filter(cfg *fbc.DeclarativeConfig, s spec.CatalogSpec) (*fbc.DeclarativeConfig, *Report, error) {
	return FilterWith(cfg, s, Options{})
}

// FilterWith is Filter with Options: bundles to keep whatever the
// selection.
func FilterWith(cfg *fbc.DeclarativeConfig, s spec.CatalogSpec, opts Options) (*fbc.DeclarativeConfig, *Report, error) {
	if cfg == nil {
		return nil, nil, errors.New("filter catalog: no catalog")
	}
	cat, indexProblems := newCatalog(cfg)
	st := &state{cat: cat, kept: map[string]*keptPackage{}}
	whole := len(s.Packages) == 0
	if whole {
		// "No packages" means the whole catalog, so everything in it must
		// be valid, including blobs that name no known package.
		for _, o := range cat.orphans {
			st.problem(InvalidSource, "", "", "%s", o)
		}
		for _, name := range cat.pkgNames {
			st.selectPackage(spec.Package{Name: name, Full: true})
		}
	} else {
		seen := map[string]bool{}
		for _, sp := range s.Packages {
			if seen[sp.Name] {
				st.problem(InvalidSpec, sp.Name, "", "listed more than once")
				continue
			}
			seen[sp.Name] = true
			st.selectPackage(sp)
		}
	}
	st.keep(opts, whole)
	// A duplicate blob in a package nobody selected is not our concern.
	for _, p := range indexProblems {
		if whole || st.kept[p.Package] != nil {
			st.problems = append(st.problems, p)
		}
	}
	if len(st.problems) > 0 {
		return nil, nil, &Error{Problems: st.problems}
	}
	if s.IncludeDependencies {
		st.resolveDependencies()
	}
	out := st.emit(cfg, whole)
	if problems := validateResult(out); len(problems) > 0 {
		return nil, nil, &Error{Problems: problems}
	}
	st.danglingReplaces()
	return out, st.report(), nil
}

// emit builds the result from the selection.
func (st *state) emit(cfg *fbc.DeclarativeConfig, whole bool) *fbc.DeclarativeConfig {
	out := &fbc.DeclarativeConfig{}
	for _, name := range st.cat.pkgNames {
		kp := st.kept[name]
		if kp == nil {
			continue
		}
		p := kp.p
		pb := *p.blob
		pb.DefaultChannel = kp.defaultChannel
		out.Packages = append(out.Packages, pb)

		for _, chName := range p.chNames {
			keep := kp.channels[chName]
			if keep == nil {
				continue
			}
			g := p.channels[chName]
			cb := *g.blob
			cb.Entries = make([]fbc.ChannelEntry, 0, len(keep))
			for _, n := range keep.sorted(p) {
				e := *g.entries[n]
				e.Skips = slices.Clone(e.Skips)
				cb.Entries = append(cb.Entries, e)
			}
			out.Channels = append(out.Channels, cb)
		}

		bundles := kp.bundles()
		for _, n := range bundles.sorted(p) {
			out.Bundles = append(out.Bundles, *p.bundles[n].blob)
		}

		if d := p.deprecation; d != nil {
			nd := fbc.Deprecation{Schema: d.Schema, Package: d.Package}
			for _, e := range d.Entries {
				switch e.Reference.Schema {
				case fbc.SchemaChannel:
					if kp.channels[e.Reference.Name] == nil {
						continue
					}
				case fbc.SchemaBundle:
					if !bundles[e.Reference.Name] {
						continue
					}
				}
				nd.Entries = append(nd.Entries, e)
			}
			if len(nd.Entries) > 0 {
				out.Deprecations = append(out.Deprecations, nd)
			}
		}
	}
	for _, o := range cfg.Others {
		if whole || o.Package == "" || st.kept[o.Package] != nil {
			out.Others = append(out.Others, o)
		}
	}
	slices.SortStableFunc(out.Others, func(a, b fbc.Meta) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// danglingReplaces warns about kept entries that replace a bundle the
// source catalog does not have.
func (st *state) danglingReplaces() {
	for _, name := range st.cat.pkgNames {
		kp := st.kept[name]
		if kp == nil {
			continue
		}
		for _, chName := range kp.p.chNames {
			keep := kp.channels[chName]
			for _, n := range keep.sorted(kp.p) {
				e := kp.p.channels[chName].entries[n]
				if e.Replaces != "" && kp.p.bundles[e.Replaces] == nil {
					st.warn(DanglingReplaces, name, chName, n, "bundle %s replaces %s, which is not in the catalog", n, e.Replaces)
				}
			}
		}
	}
}

func (st *state) report() *Report {
	r := &Report{Dependencies: st.deps, Warnings: st.warnings}
	for _, name := range st.cat.pkgNames {
		kp := st.kept[name]
		if kp == nil {
			continue
		}
		pr := PackageReport{
			Name:           name,
			DefaultChannel: kp.defaultChannel,
			Selected:       kp.selected,
			Bundles:        kp.bundles().sorted(kp.p),
		}
		if kp.defaultChannel != kp.p.blob.DefaultChannel {
			pr.OriginalDefaultChannel = kp.p.blob.DefaultChannel
		}
		for _, chName := range kp.p.chNames {
			keep := kp.channels[chName]
			if keep == nil {
				continue
			}
			head, _ := kp.p.channels[chName].check(keep) // checked by validateResult
			pr.Channels = append(pr.Channels, ChannelReport{Name: chName, Head: head, Bundles: keep.sorted(kp.p)})
		}
		r.Packages = append(r.Packages, pr)
	}
	return r
}
