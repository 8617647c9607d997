package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	msemver "github.com/Masterminds/semver/v3"
	"github.com/blang/semver/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// The catalog-aware guard: before a CatalogSource or ClusterCatalog moves
// to a new catalog, every workload installed from it is checked against
// the new content. A change that would strand one (its package or channel
// gone, or no upgrade path from what is installed) is breaking and is not
// applied without AllowBreaking. OLM itself would only notice after the
// change, as a Subscription stuck in ResolutionFailed.

// Subscription is what the guard reads of an OLM classic Subscription.
type Subscription struct {
	Namespace, Name         string
	Source, SourceNamespace string
	Package, Channel        string
	// Installed is status.installedCSV, empty before the first install.
	Installed string
}

func subscriptionFrom(u *unstructured.Unstructured) Subscription {
	s := Subscription{Namespace: u.GetNamespace(), Name: u.GetName()}
	s.Source, _, _ = unstructured.NestedString(u.Object, "spec", "source")
	s.SourceNamespace, _, _ = unstructured.NestedString(u.Object, "spec", "sourceNamespace")
	s.Package, _, _ = unstructured.NestedString(u.Object, "spec", "name")
	s.Channel, _, _ = unstructured.NestedString(u.Object, "spec", "channel")
	s.Installed, _, _ = unstructured.NestedString(u.Object, "status", "installedCSV")
	return s
}

// Extension is what the guard reads of an OLM v1 ClusterExtension.
type Extension struct {
	Name     string
	Package  string
	Channels []string
	// Version is the version range (Masterminds semver syntax, what
	// operator-controller accepts), empty for any.
	Version  string
	Selector labels.Selector // nil: every ClusterCatalog
	// SelfCertified: upgrades need not follow the graph.
	SelfCertified bool
	// Installed and InstalledVersion are status.install.bundle.
	Installed, InstalledVersion string
}

func extensionFrom(u *unstructured.Unstructured) (Extension, bool) {
	e := Extension{Name: u.GetName()}
	if t, _, _ := unstructured.NestedString(u.Object, "spec", "source", "sourceType"); t != "Catalog" {
		return e, false
	}
	e.Package, _, _ = unstructured.NestedString(u.Object, "spec", "source", "catalog", "packageName")
	e.Channels, _, _ = unstructured.NestedStringSlice(u.Object, "spec", "source", "catalog", "channels")
	e.Version, _, _ = unstructured.NestedString(u.Object, "spec", "source", "catalog", "version")
	policy, _, _ := unstructured.NestedString(u.Object, "spec", "source", "catalog", "upgradeConstraintPolicy")
	e.SelfCertified = policy == "SelfCertified"
	if sel, ok, _ := unstructured.NestedMap(u.Object, "spec", "source", "catalog", "selector"); ok {
		var ls metav1.LabelSelector
		if b, err := json.Marshal(sel); err == nil && json.Unmarshal(b, &ls) == nil {
			if s, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
				e.Selector = s
			}
		}
	}
	e.Installed, _, _ = unstructured.NestedString(u.Object, "status", "install", "bundle", "name")
	e.InstalledVersion, _, _ = unstructured.NestedString(u.Object, "status", "install", "bundle", "version")
	return e, true
}

// catalogIndex answers the guard's questions about one catalog.
type catalogIndex struct {
	defaults map[string]string                  // package -> default channel
	channels map[string]map[string]*fbc.Channel // package -> channel -> channel
	versions map[string]semver.Version          // bundle -> version
	packages map[string]string                  // bundle -> package
}

func indexCatalog(cfg *fbc.DeclarativeConfig) *catalogIndex {
	ix := &catalogIndex{defaults: map[string]string{}, channels: map[string]map[string]*fbc.Channel{}, versions: map[string]semver.Version{}, packages: map[string]string{}}
	if cfg == nil {
		return ix
	}
	for _, p := range cfg.Packages {
		ix.defaults[p.Name] = p.DefaultChannel
	}
	for i := range cfg.Channels {
		ch := &cfg.Channels[i]
		if ix.channels[ch.Package] == nil {
			ix.channels[ch.Package] = map[string]*fbc.Channel{}
		}
		ix.channels[ch.Package][ch.Name] = ch
	}
	for _, b := range cfg.Bundles {
		ix.packages[b.Name] = b.Package
		if v, ok := bundleVersion(b); ok {
			ix.versions[b.Name] = v
		}
	}
	return ix
}

func bundleVersion(b fbc.Bundle) (semver.Version, bool) {
	for _, p := range b.Properties {
		if p.Type != fbc.PropertyPackage {
			continue
		}
		var v fbc.PackageProperty
		if json.Unmarshal(p.Value, &v) != nil {
			return semver.Version{}, false
		}
		ver, err := semver.Parse(v.Version)
		return ver, err == nil
	}
	return semver.Version{}, false
}

// hasPackage reports whether the catalog serves pkg.
func (ix *catalogIndex) hasPackage(pkg string) bool { return len(ix.channels[pkg]) > 0 }

// upgradeFrom reports whether a channel member replaces, skips or covers
// (skipRange) the installed bundle, or the installed bundle is itself a
// member: OLM can then keep the Subscription on its upgrade graph.
func upgradeFrom(ch *fbc.Channel, installed string, version *semver.Version) bool {
	for _, e := range ch.Entries {
		if e.Name == installed || e.Replaces == installed || slices.Contains(e.Skips, installed) {
			return true
		}
		if e.SkipRange != "" && version != nil {
			if r, err := semver.ParseRange(e.SkipRange); err == nil && r(*version) {
				return true
			}
		}
	}
	return false
}

// installedVersion finds the version of an installed bundle: in the new
// catalog, in the old one, or from a name of the form <package>.v<semver>.
func installedVersion(installed string, catalogs ...*catalogIndex) *semver.Version {
	for _, ix := range catalogs {
		if v, ok := ix.versions[installed]; ok {
			return &v
		}
	}
	if i := strings.Index(installed, ".v"); i >= 0 {
		if v, err := semver.Parse(installed[i+2:]); err == nil {
			return &v
		}
	}
	return nil
}

// strandsSubscription says why moving a Subscription's CatalogSource from
// the old catalog to next would strand it, "" when it would not.
func strandsSubscription(s Subscription, next, old *catalogIndex) string {
	who := fmt.Sprintf("Subscription %s/%s", s.Namespace, s.Name)
	if !next.hasPackage(s.Package) {
		return fmt.Sprintf("%s: package %s is not in the new catalog", who, s.Package)
	}
	channel := s.Channel
	if channel == "" {
		channel = next.defaults[s.Package]
	}
	ch := next.channels[s.Package][channel]
	if ch == nil {
		return fmt.Sprintf("%s: channel %s of package %s is not in the new catalog", who, channel, s.Package)
	}
	if s.Installed == "" {
		return ""
	}
	if !upgradeFrom(ch, s.Installed, installedVersion(s.Installed, next, old)) {
		return fmt.Sprintf("%s: installed %s is not in channel %s of the new catalog and nothing there upgrades from it", who, s.Installed, channel)
	}
	return ""
}

// strandsExtension says why the new catalog would strand a
// ClusterExtension that draws its package from it, "" when it would not.
func strandsExtension(e Extension, next, old *catalogIndex) string {
	who := "ClusterExtension " + e.Name
	if !next.hasPackage(e.Package) {
		return fmt.Sprintf("%s: package %s is not in the new catalog", who, e.Package)
	}
	var channels []*fbc.Channel
	if len(e.Channels) == 0 {
		for _, ch := range next.channels[e.Package] {
			channels = append(channels, ch)
		}
	}
	for _, name := range e.Channels {
		ch := next.channels[e.Package][name]
		if ch == nil {
			return fmt.Sprintf("%s: channel %s of package %s is not in the new catalog", who, name, e.Package)
		}
		channels = append(channels, ch)
	}
	if e.Version != "" {
		c, err := msemver.NewConstraint(e.Version)
		if err != nil {
			return fmt.Sprintf("%s: version range %q does not parse: %v", who, e.Version, err)
		}
		ok := false
		for _, ch := range channels {
			for _, entry := range ch.Entries {
				if v, found := next.versions[entry.Name]; found {
					if mv, err := msemver.NewVersion(v.String()); err == nil && c.Check(mv) {
						ok = true
					}
				}
			}
		}
		if !ok {
			return fmt.Sprintf("%s: no bundle of package %s in the new catalog satisfies version range %q", who, e.Package, e.Version)
		}
	}
	if e.Installed == "" || e.SelfCertified {
		return ""
	}
	var version *semver.Version
	if v, err := semver.Parse(e.InstalledVersion); err == nil {
		version = &v
	} else {
		version = installedVersion(e.Installed, next, old)
	}
	for _, ch := range channels {
		if upgradeFrom(ch, e.Installed, version) {
			return ""
		}
	}
	return fmt.Sprintf("%s: installed %s is not in the new catalog and nothing there upgrades from it", who, e.Installed)
}
