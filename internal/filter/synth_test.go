package filter

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Builders for small synthetic catalogs: a bundle exists for every channel
// entry, named <package>.v<version>, so a test spells out only the graph.

type synthPkg struct {
	name, def    string
	channels     []synthChannel
	props        map[string][]fbc.Property // extra bundle properties
	deprecations []fbc.DeprecationEntry
}

type synthChannel struct {
	name    string
	entries []fbc.ChannelEntry
}

func ch(name string, entries ...fbc.ChannelEntry) synthChannel {
	return synthChannel{name: name, entries: entries}
}

// e is a channel entry: e("a.v1.1.0", "a.v1.0.0", "a.v0.9.0") replaces
// a.v1.0.0 and skips a.v0.9.0.
func e(name, replaces string, skips ...string) fbc.ChannelEntry {
	return fbc.ChannelEntry{Name: name, Replaces: replaces, Skips: skips}
}

func sr(entry fbc.ChannelEntry, skipRange string) fbc.ChannelEntry {
	entry.SkipRange = skipRange
	return entry
}

func prop(typ string, v any) fbc.Property {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return fbc.Property{Type: typ, Value: data}
}

func gvk(group, version, kind string) fbc.GVK {
	return fbc.GVK{Group: group, Version: version, Kind: kind}
}

func provides(g fbc.GVK) fbc.Property { return prop(fbc.PropertyGVK, g) }
func requiresGVK(g fbc.GVK) fbc.Property {
	return prop(fbc.PropertyGVKRequired, g)
}
func requiresPkg(name, rng string) fbc.Property {
	return prop(fbc.PropertyPackageRequired, fbc.PackageRequired{PackageName: name, VersionRange: rng})
}

func synth(pkgs ...synthPkg) *fbc.DeclarativeConfig {
	cfg := &fbc.DeclarativeConfig{}
	for _, p := range pkgs {
		cfg.Packages = append(cfg.Packages, fbc.Package{Schema: fbc.SchemaPackage, Name: p.name, DefaultChannel: p.def})
		seen := map[string]bool{}
		for _, c := range p.channels {
			cfg.Channels = append(cfg.Channels, fbc.Channel{Schema: fbc.SchemaChannel, Name: c.name, Package: p.name, Entries: c.entries})
			for _, en := range c.entries {
				if seen[en.Name] {
					continue
				}
				seen[en.Name] = true
				version := en.Name[strings.Index(en.Name, ".v")+2:]
				props := append([]fbc.Property{prop(fbc.PropertyPackage, fbc.PackageProperty{PackageName: p.name, Version: version})}, p.props[en.Name]...)
				cfg.Bundles = append(cfg.Bundles, fbc.Bundle{
					Schema:     fbc.SchemaBundle,
					Name:       en.Name,
					Package:    p.name,
					Image:      "registry.example.com/" + p.name + "-bundle:v" + version,
					Properties: props,
				})
			}
		}
		if len(p.deprecations) > 0 {
			cfg.Deprecations = append(cfg.Deprecations, fbc.Deprecation{Schema: fbc.SchemaDeprecations, Package: p.name, Entries: p.deprecations})
		}
	}
	return cfg
}

// shape is what a test asserts about one package of a result: the default
// channel, each channel's entries in output order, and the bundles.
type shape struct {
	Default  string
	Channels map[string][]string
	Bundles  []string
}

func shapeOf(cfg *fbc.DeclarativeConfig) map[string]shape {
	out := map[string]shape{}
	for _, p := range cfg.Packages {
		out[p.Name] = shape{Default: p.DefaultChannel, Channels: map[string][]string{}}
	}
	for _, c := range cfg.Channels {
		s := out[c.Package]
		for _, en := range c.Entries {
			s.Channels[c.Name] = append(s.Channels[c.Name], en.Name)
		}
		out[c.Package] = s
	}
	for _, b := range cfg.Bundles {
		s := out[b.Package]
		s.Bundles = append(s.Bundles, b.Name)
		out[b.Package] = s
	}
	return out
}

func warningKinds(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, string(w.Kind)+" "+w.Bundle)
	}
	slices.Sort(out)
	return out
}

// The synthetic catalogs the table tests share.
var (
	// lin: linear replaces chains in two channels; the oldest bundle
	// replaces one that is not in the catalog, as real catalogs do.
	linPkg = synthPkg{
		name: "lin", def: "stable",
		channels: []synthChannel{
			ch("stable",
				e("lin.v1.0.0", "lin.v0.9.0"),
				e("lin.v1.1.0", "lin.v1.0.0"),
				e("lin.v1.2.0", "lin.v1.1.0"),
				e("lin.v2.0.0", "lin.v1.2.0")),
			ch("fast",
				e("lin.v2.0.0", ""),
				e("lin.v2.1.0", "lin.v2.0.0")),
		},
		deprecations: []fbc.DeprecationEntry{
			{Reference: fbc.PackageScopedReference{Schema: fbc.SchemaPackage}, Message: "lin is superseded"},
			{Reference: fbc.PackageScopedReference{Schema: fbc.SchemaChannel, Name: "fast"}, Message: "fast is going away"},
			{Reference: fbc.PackageScopedReference{Schema: fbc.SchemaBundle, Name: "lin.v1.0.0"}, Message: "1.0.0 has a CVE"},
			{Reference: fbc.PackageScopedReference{Schema: fbc.SchemaBundle, Name: "lin.v2.0.0"}, Message: "2.0.0 has a CVE"},
		},
	}
	// sk: a z-stream fork that the next release skips.
	skPkg = synthPkg{
		name: "sk", def: "stable",
		channels: []synthChannel{ch("stable",
			e("sk.v1.0.0", ""),
			e("sk.v1.1.0", "sk.v1.0.0"),
			e("sk.v1.1.1", "sk.v1.0.0", "sk.v1.1.0"),
			e("sk.v1.2.0", "sk.v1.1.1"))},
	}
	// srp: sr.v1.1.0 is reachable from sr.v1.0.0 only through its
	// skipRange; in the source it is valid because sr.v2.0.0 skips it.
	srPkg = synthPkg{
		name: "sr", def: "stable",
		channels: []synthChannel{ch("stable",
			e("sr.v1.0.0", ""),
			sr(e("sr.v1.1.0", ""), ">=1.0.0 <1.1.0"),
			e("sr.v2.0.0", "sr.v1.0.0", "sr.v1.1.0"))},
	}
	// fork: fork.v1.0.5 is a dead-end branch off 1.0.0 that only 2.0.0
	// (outside the ranges tested) skips.
	forkPkg = synthPkg{
		name: "fork", def: "stable",
		channels: []synthChannel{ch("stable",
			e("fork.v1.0.0", ""),
			e("fork.v1.0.5", "fork.v1.0.0"),
			e("fork.v1.1.0", "fork.v1.0.0"),
			e("fork.v2.0.0", "fork.v1.1.0", "fork.v1.0.5"))},
	}

	// back: the head back.v1.0.1-1 replaces back.v1.0.1 although semver
	// orders it lower, as slurm-operator's release-1.0 channel does.
	backPkg = synthPkg{
		name: "back", def: "stable",
		channels: []synthChannel{ch("stable",
			e("back.v1.0.0", ""),
			e("back.v1.0.1", "back.v1.0.0"),
			e("back.v1.0.1-1", "back.v1.0.1"))},
	}

	cacheGVK   = gvk("cache.example.com", "v1", "Cache")
	missingGVK = gvk("missing.example.com", "v1", "Missing")

	// Packages with dependencies on each other.
	appPkg = synthPkg{
		name: "app", def: "stable",
		channels: []synthChannel{ch("stable", e("app.v1.0.0", ""), e("app.v1.1.0", "app.v1.0.0"))},
		props: map[string][]fbc.Property{
			"app.v1.0.0": {requiresPkg("db", ">=2.0.0 <3.0.0"), requiresGVK(cacheGVK)},
			"app.v1.1.0": {requiresPkg("db", ">=2.0.0 <3.0.0"), requiresGVK(cacheGVK)},
		},
	}
	dbPkg = synthPkg{
		name: "db", def: "stable",
		channels: []synthChannel{
			ch("stable", e("db.v2.0.0", ""), e("db.v2.1.0", "db.v2.0.0"), e("db.v3.0.0", "db.v2.1.0")),
			ch("v2", e("db.v2.0.0", ""), e("db.v2.1.0", "db.v2.0.0")),
		},
	}
	cachePkg = synthPkg{
		name: "cache", def: "stable",
		channels: []synthChannel{ch("stable", e("cache.v0.9.0", ""), e("cache.v1.0.0", "cache.v0.9.0"))},
		props: map[string][]fbc.Property{
			"cache.v0.9.0": {provides(cacheGVK)},
			"cache.v1.0.0": {provides(cacheGVK), requiresPkg("base", ">=1.0.0")},
		},
	}
	otherCachePkg = synthPkg{
		name: "othercache", def: "stable",
		channels: []synthChannel{ch("stable", e("othercache.v5.0.0", ""))},
		props:    map[string][]fbc.Property{"othercache.v5.0.0": {provides(cacheGVK)}},
	}
	basePkg = synthPkg{
		name: "base", def: "stable",
		channels: []synthChannel{ch("stable", e("base.v1.0.0", ""), e("base.v1.1.0", "base.v1.0.0"))},
	}
	toolPkg = synthPkg{
		name: "tool", def: "stable",
		channels: []synthChannel{ch("stable", e("tool.v1.0.0", ""))},
		props:    map[string][]fbc.Property{"tool.v1.0.0": {requiresPkg("db", ">=2.1.0 <3.0.0")}},
	}
	needyPkg = synthPkg{
		name: "needy", def: "stable",
		channels: []synthChannel{ch("stable", e("needy.v1.0.0", ""))},
		props: map[string][]fbc.Property{"needy.v1.0.0": {
			requiresGVK(missingGVK),
			requiresPkg("nothere", ">=1.0.0"),
			requiresPkg("db", "two point oh"),
		}},
	}
)
