// Package bootstrap writes a config repository that keeps exactly what a
// cluster runs: `ferry init --from-cluster`. It reads the CatalogSources
// and ClusterCatalogs, the Subscriptions and ClusterExtensions that install
// from them, and the installed versions, and writes one Catalog per catalog
// in use keeping each installed package on its channel from the installed
// version up to the channel head — so the first reconcile mirrors what the
// cluster needs to keep running and upgrading, and nothing else — plus a
// Mirror stub to fill in.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

// Reader is what Init reads of the cluster; reconcile.Cluster is one.
type Reader interface {
	List(ctx context.Context, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error)
	Get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error)
}

// Options shape the written repository.
type Options struct {
	// Registry is the Mirror's destination; a placeholder when empty.
	Registry string
}

// PlaceholderRegistry is written when no registry is given: a valid
// reference that plainly needs replacing.
const PlaceholderRegistry = "mirror.example.com:5000/olm"

// defaultSources are the CatalogSources the marketplace operator manages
// through OperatorHub; a repository that takes them over turns the
// defaults off, as the disconnected procedure asks.
var defaultSources = map[string]bool{"redhat-operators": true, "certified-operators": true, "community-operators": true, "redhat-marketplace": true}

// Result is the written repository and what went into it.
type Result struct {
	// Files are repository paths to contents.
	Files map[string][]byte
	// Notes are things the administrator should know (a Subscription
	// whose CatalogSource is gone, an ambiguous ClusterExtension).
	Notes []string
}

type keptPackage struct {
	channel    string
	minVersion string
}

type catalogUse struct {
	// name is the object's; catalog the Catalog's, unique in the repository.
	name, catalog  string
	image          string
	namespace      string
	displayName    string
	publisher      string
	priority       int64
	clusterCatalog bool
	packages       map[string][]keptPackage
}

// FromCluster reads the cluster and returns the repository to write.
func FromCluster(ctx context.Context, c Reader, opts Options) (*Result, error) {
	res := &Result{Files: map[string][]byte{}}
	used := map[string]*catalogUse{}
	if err := fromSubscriptions(ctx, c, used, res); err != nil {
		return nil, err
	}
	if err := fromExtensions(ctx, c, used, res); err != nil {
		return nil, err
	}
	registry := opts.Registry
	if registry == "" {
		registry = PlaceholderRegistry
	}
	takesDefaults := false
	names := make([]string, 0, len(used))
	for n, u := range used {
		if len(u.packages) > 0 {
			names = append(names, n)
			takesDefaults = takesDefaults || (!u.clusterCatalog && defaultSources[u.name])
		}
	}
	sort.Strings(names)
	// Catalog names are unique in a config repository; two CatalogSources
	// of one name in different namespaces (or a ClusterCatalog of the
	// same name) get the namespace or kind appended.
	taken := map[string]bool{}
	for _, n := range names {
		u := used[n]
		u.catalog = u.name
		if taken[u.catalog] {
			if u.clusterCatalog {
				u.catalog += "-clustercatalog"
			} else {
				u.catalog += "-" + u.namespace
			}
		}
		taken[u.catalog] = true
	}
	mirror := map[string]any{
		"apiVersion": spec.APIVersion, "kind": spec.KindMirror,
		"metadata": map[string]any{"name": "mirror"},
		"spec":     map[string]any{"registry": registry},
	}
	if takesDefaults {
		mirror["spec"].(map[string]any)["operatorHub"] = map[string]any{"disableAllDefaultSources": true}
	}
	head := "# Written by `ferry init --from-cluster`. Replace the registry with your mirror.\n"
	if opts.Registry != "" {
		head = "# Written by `ferry init --from-cluster`.\n"
	}
	b, err := yamlDoc(head, mirror)
	if err != nil {
		return nil, err
	}
	res.Files["mirror.yaml"] = b
	for _, n := range names {
		b, err := catalogDoc(used[n])
		if err != nil {
			return nil, err
		}
		res.Files["catalogs/"+used[n].catalog+".yaml"] = b
	}
	sort.Strings(res.Notes)
	return res, nil
}

func fromSubscriptions(ctx context.Context, c Reader, used map[string]*catalogUse, res *Result) error {
	sources, err := c.List(ctx, reconcile.GVKCatalogSource)
	if errors.Is(err, reconcile.ErrNotServed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list CatalogSources: %w", err)
	}
	byKey := map[string]*unstructured.Unstructured{}
	for _, s := range sources {
		byKey[s.GetNamespace()+"/"+s.GetName()] = s
	}
	subs, err := c.List(ctx, reconcile.GVKSubscription)
	if err != nil && !errors.Is(err, reconcile.ErrNotServed) {
		return fmt.Errorf("list Subscriptions: %w", err)
	}
	for _, u := range subs {
		pkg, _, _ := unstructured.NestedString(u.Object, "spec", "name")
		channel, _, _ := unstructured.NestedString(u.Object, "spec", "channel")
		src, _, _ := unstructured.NestedString(u.Object, "spec", "source")
		srcNS, _, _ := unstructured.NestedString(u.Object, "spec", "sourceNamespace")
		installed, _, _ := unstructured.NestedString(u.Object, "status", "installedCSV")
		cs := byKey[srcNS+"/"+src]
		if cs == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("Subscription %s/%s: CatalogSource %s/%s does not exist; left out", u.GetNamespace(), u.GetName(), srcNS, src))
			continue
		}
		image, _, _ := unstructured.NestedString(cs.Object, "spec", "image")
		if image == "" {
			res.Notes = append(res.Notes, fmt.Sprintf("CatalogSource %s/%s has no spec.image (address or configmap sources are not catalogs Ferry builds); Subscription %s/%s left out", srcNS, src, u.GetNamespace(), u.GetName()))
			continue
		}
		key := "cs/" + srcNS + "/" + src
		cu := used[key]
		if cu == nil {
			cu = &catalogUse{name: src, namespace: srcNS, image: image, packages: map[string][]keptPackage{}}
			cu.displayName, _, _ = unstructured.NestedString(cs.Object, "spec", "displayName")
			cu.publisher, _, _ = unstructured.NestedString(cs.Object, "spec", "publisher")
			cu.priority, _, _ = unstructured.NestedInt64(cs.Object, "spec", "priority")
			used[key] = cu
		}
		version := ""
		if installed != "" {
			version = installedVersion(ctx, c, u.GetNamespace(), installed)
			if version == "" {
				res.Notes = append(res.Notes, fmt.Sprintf("Subscription %s/%s: the version of %s is unknown; the whole channel is kept", u.GetNamespace(), u.GetName(), installed))
			}
		}
		cu.packages[pkg] = append(cu.packages[pkg], keptPackage{channel: channel, minVersion: version})
	}
	return nil
}

// installedVersion reads an installed CSV's spec.version, or takes it from
// a name of the form <package>.v<semver>.
func installedVersion(ctx context.Context, c Reader, ns, csv string) string {
	if u, err := c.Get(ctx, reconcile.GVKCSV, ns, csv); err == nil {
		if v, _, _ := unstructured.NestedString(u.Object, "spec", "version"); v != "" {
			if _, err := semver.Parse(v); err == nil {
				return v
			}
		}
	}
	if i := strings.Index(csv, ".v"); i >= 0 {
		if v, err := semver.Parse(csv[i+2:]); err == nil {
			return v.String()
		}
	}
	return ""
}

func fromExtensions(ctx context.Context, c Reader, used map[string]*catalogUse, res *Result) error {
	catalogs, err := c.List(ctx, reconcile.GVKClusterCatalog)
	if errors.Is(err, reconcile.ErrNotServed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list ClusterCatalogs: %w", err)
	}
	exts, err := c.List(ctx, reconcile.GVKClusterExtension)
	if err != nil && !errors.Is(err, reconcile.ErrNotServed) {
		return fmt.Errorf("list ClusterExtensions: %w", err)
	}
	for _, u := range exts {
		if t, _, _ := unstructured.NestedString(u.Object, "spec", "source", "sourceType"); t != "Catalog" {
			continue
		}
		pkg, _, _ := unstructured.NestedString(u.Object, "spec", "source", "catalog", "packageName")
		channels, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "source", "catalog", "channels")
		version, _, _ := unstructured.NestedString(u.Object, "status", "install", "bundle", "version")
		var selector labels.Selector = labels.Everything()
		if sel, ok, _ := unstructured.NestedMap(u.Object, "spec", "source", "catalog", "selector"); ok {
			s, err := selectorFrom(sel)
			if err != nil {
				res.Notes = append(res.Notes, fmt.Sprintf("ClusterExtension %s: selector: %v; left out", u.GetName(), err))
				continue
			}
			selector = s
		}
		var matching []*unstructured.Unstructured
		for _, cc := range catalogs {
			l := map[string]string{"olm.operatorframework.io/metadata.name": cc.GetName()}
			for k, v := range cc.GetLabels() {
				l[k] = v
			}
			if selector.Matches(labels.Set(l)) {
				matching = append(matching, cc)
			}
		}
		if len(matching) == 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("ClusterExtension %s: no ClusterCatalog matches its selector; left out", u.GetName()))
			continue
		}
		if len(matching) > 1 {
			res.Notes = append(res.Notes, fmt.Sprintf("ClusterExtension %s: %d ClusterCatalogs may serve it; package %s is kept in each", u.GetName(), len(matching), pkg))
		}
		for _, cc := range matching {
			ref, _, _ := unstructured.NestedString(cc.Object, "spec", "source", "image", "ref")
			if ref == "" {
				continue
			}
			key := "cc/" + cc.GetName()
			cu := used[key]
			if cu == nil {
				cu = &catalogUse{name: cc.GetName(), image: ref, clusterCatalog: true, packages: map[string][]keptPackage{}}
				cu.priority, _, _ = unstructured.NestedInt64(cc.Object, "spec", "priority")
				used[key] = cu
			}
			if len(channels) == 0 {
				cu.packages[pkg] = append(cu.packages[pkg], keptPackage{minVersion: version})
			}
			for _, ch := range channels {
				cu.packages[pkg] = append(cu.packages[pkg], keptPackage{channel: ch, minVersion: version})
			}
		}
	}
	return nil
}

func selectorFrom(m map[string]any) (labels.Selector, error) {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	var ls struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []struct {
			Key      string   `json:"key"`
			Operator string   `json:"operator"`
			Values   []string `json:"values"`
		} `json:"matchExpressions"`
	}
	if err := yaml.Unmarshal(b, &ls); err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(ls.MatchLabels)
	for _, e := range ls.MatchExpressions {
		op := map[string]string{"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[e.Operator]
		if op == "" {
			return nil, fmt.Errorf("operator %q", e.Operator)
		}
		var expr string
		switch op {
		case "exists":
			expr = e.Key
		case "!":
			expr = "!" + e.Key
		default:
			expr = fmt.Sprintf("%s %s (%s)", e.Key, op, strings.Join(e.Values, ","))
		}
		r, err := labels.Parse(expr)
		if err != nil {
			return nil, err
		}
		reqs, _ := r.Requirements()
		sel = sel.Add(reqs...)
	}
	return sel, nil
}

// catalogDoc writes one Catalog keeping each installed package on its
// channel from the installed version up.
func catalogDoc(u *catalogUse) ([]byte, error) {
	var pkgs []any
	names := make([]string, 0, len(u.packages))
	for n := range u.packages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		kept := u.packages[n]
		pkg := map[string]any{"name": n}
		anyDefault := false
		for _, k := range kept {
			anyDefault = anyDefault || k.channel == ""
		}
		if anyDefault {
			// A Subscription without a channel follows the default one,
			// whose name only the catalog knows: a package-level range
			// keeps every channel from the lowest installed version.
			if v := lowest(kept, func(keptPackage) bool { return true }); v != "" {
				pkg["minVersion"] = v
			}
		} else {
			var channels []any
			seen := map[string]bool{}
			for _, k := range kept {
				if seen[k.channel] {
					continue
				}
				seen[k.channel] = true
				ch := map[string]any{"name": k.channel}
				if v := lowest(kept, func(o keptPackage) bool { return o.channel == k.channel }); v != "" {
					ch["minVersion"] = v
				}
				channels = append(channels, ch)
			}
			pkg["channels"] = channels
			// The catalog's own default channel may not be among those
			// kept, and a package needs one: the first subscribed channel
			// stands in.
			pkg["defaultChannel"] = kept[0].channel
		}
		pkgs = append(pkgs, pkg)
	}
	s := map[string]any{"source": u.image, "packages": pkgs}
	if u.clusterCatalog {
		s["serveAs"] = []string{spec.ServeClusterCatalog}
		cc := map[string]any{"name": u.name}
		if u.priority != 0 {
			cc["priority"] = u.priority
		}
		s["clusterCatalog"] = cc
	} else {
		cs := map[string]any{"name": u.name, "namespace": u.namespace}
		if u.displayName != "" {
			cs["displayName"] = u.displayName
		}
		if u.publisher != "" {
			cs["publisher"] = u.publisher
		}
		if u.priority != 0 {
			cs["priority"] = u.priority
		}
		s["catalogSource"] = cs
	}
	doc := map[string]any{
		"apiVersion": spec.APIVersion, "kind": spec.KindCatalog,
		"metadata": map[string]any{"name": u.catalog},
		"spec":     s,
	}
	what := "CatalogSource " + u.namespace + "/" + u.name
	if u.clusterCatalog {
		what = "ClusterCatalog " + u.name
	}
	return yamlDoc(fmt.Sprintf("# What the cluster installs from %s: each package on its channel, from the\n# installed version up to the channel head.\n", what), doc)
}

// lowest is the lowest installed version among the kept entries that
// match, "" when any of them is unknown (the whole channel is kept).
func lowest(ks []keptPackage, match func(keptPackage) bool) string {
	var low *semver.Version
	for _, k := range ks {
		if !match(k) {
			continue
		}
		v, err := semver.Parse(k.minVersion)
		if err != nil {
			return ""
		}
		if low == nil || v.LT(*low) {
			low = &v
		}
	}
	if low == nil {
		return ""
	}
	return low.String()
}

func yamlDoc(header string, v any) ([]byte, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(header), b...), nil
}
