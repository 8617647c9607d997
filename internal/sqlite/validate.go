package sqlite

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// validate applies the checks opm's model validation makes before a SQLite
// index can be rendered, returning every problem found.
func validate(pkgs map[string]*mPackage) error {
	var errs []error
	for _, name := range sortedKeys(pkgs) {
		pkg := pkgs[name]
		var perrs []error
		if pkg.name == "" {
			perrs = append(perrs, errors.New("package name must not be empty"))
		}
		if pkg.defaultChannel == "" {
			perrs = append(perrs, errors.New("default channel must be set"))
		}
		if len(pkg.channels) == 0 {
			perrs = append(perrs, errors.New("package must contain at least one channel"))
		}
		for _, cn := range sortedKeys(pkg.channels) {
			if err := validateChannel(pkg.channels[cn]); err != nil {
				perrs = append(perrs, err)
			}
		}
		if err := uniqueVersions(pkg); err != nil {
			perrs = append(perrs, err)
		}
		if len(perrs) > 0 {
			errs = append(errs, fmt.Errorf("invalid package %q: %w", pkg.name, errors.Join(perrs...)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid index: %w", errors.Join(errs...))
	}
	return nil
}

func validateChannel(ch *mChannel) error {
	var errs []error
	if ch.name == "" {
		errs = append(errs, errors.New("channel name must not be empty"))
	}
	if len(ch.bundles) == 0 {
		errs = append(errs, errors.New("channel must contain at least one bundle"))
	} else if err := validateReplacesChain(ch); err != nil {
		errs = append(errs, err)
	}
	for _, bn := range sortedKeys(ch.bundles) {
		if err := validateBundle(ch.bundles[bn]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid channel %q: %w", ch.name, errors.Join(errs...))
	}
	return nil
}

// validateReplacesChain: one head (no incoming replaces or skips edge); the
// replaces chain from it, cut at a skipped bundle, has no cycle; every
// bundle is on it or skipped.
func validateReplacesChain(ch *mChannel) error {
	incoming := map[string]bool{}
	skipped := map[string]bool{}
	for _, b := range ch.bundles {
		if b.replaces != "" {
			incoming[b.replaces] = true
		}
		for _, s := range b.skips {
			incoming[s] = true
			skipped[s] = true
		}
	}
	var heads []string
	for _, b := range ch.bundles {
		if !incoming[b.name] {
			heads = append(heads, b.name)
		}
	}
	sort.Strings(heads)
	switch len(heads) {
	case 0:
		return errors.New("no channel head found in graph")
	case 1:
	default:
		return fmt.Errorf("multiple channel heads found in graph: %s", strings.Join(heads, ", "))
	}
	chain := []string{heads[0]}
	onChain := map[string]bool{heads[0]: true}
	for cur, ok := ch.bundles[heads[0]]; ok; cur, ok = ch.bundles[cur.replaces] {
		if cur.replaces == "" || skipped[cur.replaces] {
			break
		}
		if onChain[cur.replaces] {
			i := slices.Index(chain, cur.replaces)
			return fmt.Errorf("detected cycle in replaces chain of upgrade graph: %s -> %s", strings.Join(chain[i:], " -> "), cur.replaces)
		}
		chain = append(chain, cur.replaces)
		onChain[cur.replaces] = true
	}
	var stranded []string
	for _, b := range ch.bundles {
		if !onChain[b.name] && !skipped[b.name] {
			stranded = append(stranded, b.name)
		}
	}
	if len(stranded) > 0 {
		sort.Strings(stranded)
		return fmt.Errorf("channel contains one or more stranded bundles: %s", strings.Join(stranded, ", "))
	}
	return nil
}

func validateBundle(b *mBundle) error {
	var errs []error
	if b.name == "" {
		errs = append(errs, errors.New("name must be set"))
	}
	packages := 0
	for i, p := range b.properties {
		var err error
		switch p.Type {
		case fbc.PropertyPackage:
			var v fbc.PackageProperty
			err = json.Unmarshal(p.Value, &v)
			packages++
		case fbc.PropertyPackageRequired:
			var v fbc.PackageRequired
			err = json.Unmarshal(p.Value, &v)
		case fbc.PropertyGVK, fbc.PropertyGVKRequired:
			var v fbc.GVK
			err = json.Unmarshal(p.Value, &v)
		case fbc.PropertyBundleObject:
			var v struct {
				Data []byte `json:"data"`
			}
			err = json.Unmarshal(p.Value, &v)
		default:
			var v json.RawMessage
			err = json.Unmarshal(p.Value, &v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("parse property[%d] of type %q: %w", i, p.Type, err))
		}
	}
	for i, s := range b.skips {
		if s == "" {
			errs = append(errs, fmt.Errorf("skip[%d] is empty", i))
		}
	}
	if b.skipRange != "" {
		if _, err := semver.ParseRange(b.skipRange); err != nil {
			errs = append(errs, fmt.Errorf("invalid skipRange %q: %v", b.skipRange, err))
		}
	}
	if packages != 1 {
		errs = append(errs, fmt.Errorf("must be exactly one property with type %q", fbc.PropertyPackage))
	}
	if b.image == "" && b.objects == 0 {
		errs = append(errs, errors.New("bundle image must be set"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid bundle %q: %w", b.name, errors.Join(errs...))
	}
	return nil
}

// uniqueVersions: no two bundles of a package may have the same version.
func uniqueVersions(pkg *mPackage) error {
	byVersion := map[string][]string{}
	for _, ch := range pkg.channels {
		for _, b := range ch.bundles {
			v := b.version.String()
			if !slices.Contains(byVersion[v], b.name) {
				byVersion[v] = append(byVersion[v], b.name)
			}
		}
	}
	var dups []string
	for _, v := range sortedKeys(byVersion) {
		if names := byVersion[v]; len(names) > 1 {
			sort.Strings(names)
			dups = append(dups, fmt.Sprintf("{%s: [%s]}", v, strings.Join(names, ", ")))
		}
	}
	if len(dups) > 0 {
		return fmt.Errorf("duplicate versions found in bundles: %v", dups)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
