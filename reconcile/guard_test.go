package reconcile

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// guardCatalog is a small catalog: package etcd with channels stable
// (0.9.0 -> 0.9.2, which also skips 0.9.1 and covers <0.9.2 by skipRange)
// and alpha (0.10.0).
func guardCatalog(t *testing.T, dropStable bool) *catalogIndex {
	t.Helper()
	bundle := func(name, version string) fbc.Bundle {
		v, _ := json.Marshal(fbc.PackageProperty{PackageName: "etcd", Version: version})
		return fbc.Bundle{Schema: fbc.SchemaBundle, Name: name, Package: "etcd", Properties: []fbc.Property{{Type: fbc.PropertyPackage, Value: v}}}
	}
	cfg := &fbc.DeclarativeConfig{
		Packages: []fbc.Package{{Schema: fbc.SchemaPackage, Name: "etcd", DefaultChannel: "stable"}},
		Bundles:  []fbc.Bundle{bundle("etcd.v0.9.0", "0.9.0"), bundle("etcd.v0.9.2", "0.9.2"), bundle("etcd.v0.10.0", "0.10.0")},
		Channels: []fbc.Channel{
			{Schema: fbc.SchemaChannel, Name: "stable", Package: "etcd", Entries: []fbc.ChannelEntry{
				{Name: "etcd.v0.9.0"}, {Name: "etcd.v0.9.2", Replaces: "etcd.v0.9.0", Skips: []string{"etcd.v0.9.1"}, SkipRange: ">=0.8.0 <0.9.2"},
			}},
			{Schema: fbc.SchemaChannel, Name: "alpha", Package: "etcd", Entries: []fbc.ChannelEntry{{Name: "etcd.v0.10.0"}}},
		},
	}
	if dropStable {
		cfg.Channels = cfg.Channels[1:]
		cfg.Packages[0].DefaultChannel = "alpha"
	}
	return indexCatalog(cfg)
}

func TestStrandsSubscription(t *testing.T) {
	next, old := guardCatalog(t, false), guardCatalog(t, false)
	for _, tc := range []struct {
		name string
		sub  Subscription
		next *catalogIndex
		want string // substring of the reason; "" means not stranded
	}{
		{"installed is a member", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.9.0"}, next, ""},
		{"replaced by a member", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.9.0"}, next, ""},
		{"skipped by a member", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.9.1"}, next, ""},
		{"covered by a skipRange", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.8.5"}, next, ""},
		{"default channel when none is named", Subscription{Package: "etcd", Installed: "etcd.v0.9.2"}, next, ""},
		{"not installed yet", Subscription{Package: "etcd", Channel: "alpha"}, next, ""},
		{"package gone", Subscription{Package: "prometheus", Channel: "beta"}, next, "package prometheus is not in the new catalog"},
		{"channel gone", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.9.0"}, guardCatalog(t, true), "channel stable of package etcd is not in the new catalog"},
		{"no upgrade path", Subscription{Package: "etcd", Channel: "stable", Installed: "etcd.v0.7.0"}, next, "nothing there upgrades from it"},
		{"installed from another channel", Subscription{Package: "etcd", Channel: "alpha", Installed: "etcd.v0.9.0"}, next, "nothing there upgrades from it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sub.Namespace, tc.sub.Name = "ns", "sub"
			got := strandsSubscription(tc.sub, tc.next, old)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got != "" && !strings.Contains(got, "Subscription ns/sub") {
				t.Errorf("the reason does not name the Subscription: %q", got)
			}
		})
	}
}

func TestStrandsExtension(t *testing.T) {
	next, old := guardCatalog(t, false), guardCatalog(t, false)
	sel, _ := labels.Parse("team=db")
	for _, tc := range []struct {
		name string
		ext  Extension
		want string
	}{
		{"any version", Extension{Package: "etcd"}, ""},
		{"range satisfied", Extension{Package: "etcd", Channels: []string{"stable"}, Version: ">=0.9.0, <0.10.0", Installed: "etcd.v0.9.0", InstalledVersion: "0.9.0"}, ""},
		{"range no longer satisfied", Extension{Package: "etcd", Channels: []string{"stable"}, Version: "~0.8"}, `satisfies version range "~0.8"`},
		{"channel gone", Extension{Package: "etcd", Channels: []string{"beta"}}, "channel beta"},
		{"package gone", Extension{Package: "nginx"}, "package nginx"},
		{"no path from installed", Extension{Package: "etcd", Channels: []string{"alpha"}, Installed: "etcd.v0.9.0", InstalledVersion: "0.9.0"}, "nothing there upgrades"},
		{"self-certified upgrades need no path", Extension{Package: "etcd", Channels: []string{"alpha"}, Installed: "etcd.v0.9.0", SelfCertified: true}, ""},
		{"bad range", Extension{Package: "etcd", Version: ">>1"}, "does not parse"},
		{"selector does not affect the check itself", Extension{Package: "etcd", Selector: sel}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ext.Name = "ext"
			got := strandsExtension(tc.ext, next, old)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
