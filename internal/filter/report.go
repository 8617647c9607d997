package filter

import (
	"fmt"
	"strings"
)

// Report says what a Filter kept and what it had to decide on the way, in
// catalog terms, so a plan can show "package/channel head moves" and a
// reviewer can see why a bundle is there.
type Report struct {
	// Packages kept, sorted by name.
	Packages []PackageReport `json:"packages"`
	// Dependencies lists every requirement of a kept bundle that Filter
	// resolved (only with includeDependencies), in the order it resolved
	// them. Unresolved requirements are Warnings, not entries here.
	Dependencies []Dependency `json:"dependencies,omitempty"`
	// Warnings are things the result is valid without, but a user should
	// know about: bundles in range that could not be kept, unresolvable
	// dependencies, dangling replaces in the source.
	Warnings []Warning `json:"warnings,omitempty"`
}

// PackageReport is one kept package.
type PackageReport struct {
	Name string `json:"name"`
	// DefaultChannel is the default channel of the result;
	// OriginalDefaultChannel is set only when it was rewritten.
	DefaultChannel         string `json:"defaultChannel"`
	OriginalDefaultChannel string `json:"originalDefaultChannel,omitempty"`
	// Selected is false for a package kept only because a kept bundle
	// depends on it.
	Selected bool `json:"selected"`
	// Channels kept, sorted by name.
	Channels []ChannelReport `json:"channels"`
	// Bundles kept in any channel, by ascending version.
	Bundles []string `json:"bundles"`
}

// ChannelReport is one kept channel.
type ChannelReport struct {
	Name string `json:"name"`
	// Head is the channel head of the result, which is not the source's
	// head when a range ends below it.
	Head string `json:"head"`
	// Bundles in the channel, by ascending version.
	Bundles []string `json:"bundles"`
}

// Dependency is one requirement of a kept bundle and how it was met.
type Dependency struct {
	// Bundle is the kept bundle that has the requirement.
	Bundle string `json:"bundle"`
	// Requirement reads like the property: "olm.package.required bar <0.2.0"
	// or "olm.gvk.required test.bar/v1alpha1 Bar".
	Requirement string `json:"requirement"`
	// Provider is the bundle that satisfies it, in package ProviderPackage.
	Provider        string `json:"provider"`
	ProviderPackage string `json:"providerPackage"`
	// Added lists the bundles kept because of this requirement: the
	// provider and whatever connects it to its channel. Empty when a kept
	// bundle already satisfied it.
	Added []string `json:"added,omitempty"`
}

// WarningKind classifies a Warning; callers branch on it (a plan may show
// dropped bundles differently from dangling replaces).
type WarningKind string

const (
	// NotConnected: a bundle is in range but the upgrade graph (replaces,
	// skips, skipRange) gives it no path to the top of the range, so
	// keeping it would add a second head. Dropped.
	NotConnected WarningKind = "NotConnected"
	// Stranded: a bundle is in range and connected, but only through
	// skipRange or through bundles that were dropped, and opm rejects a
	// bundle that is neither on the replaces chain from the head nor in the
	// skips of a kept bundle. Dropped.
	Stranded WarningKind = "Stranded"
	// UnresolvedDependency: a requirement of a kept bundle that no bundle of
	// the catalog satisfies, or whose providers cannot be kept in a valid
	// channel, or that does not parse.
	UnresolvedDependency WarningKind = "UnresolvedDependency"
	// DanglingReplaces: a kept channel entry replaces a bundle that is not
	// in the source catalog. opm accepts it (the tail of a replaces chain
	// may name a missing bundle) and real catalogs have them.
	DanglingReplaces WarningKind = "DanglingReplaces"
	// UnparsableVersion: a bundle's olm.package version is not semver, so
	// no range can include it and it is never chosen as a dependency.
	UnparsableVersion WarningKind = "UnparsableVersion"
)

// Warning is one finding that did not stop the filter.
type Warning struct {
	Kind    WarningKind `json:"kind"`
	Package string      `json:"package"`
	Channel string      `json:"channel,omitempty"`
	Bundle  string      `json:"bundle,omitempty"`
	Message string      `json:"message"`
}

func (w Warning) String() string { return where(w.Package, w.Channel) + w.Message }

// ProblemKind classifies a Problem.
type ProblemKind string

const (
	// PackageNotFound: the spec names a package the catalog does not have.
	PackageNotFound ProblemKind = "PackageNotFound"
	// ChannelNotFound: the spec names a channel (to keep, or as the
	// defaultChannel) that the package does not have.
	ChannelNotFound ProblemKind = "ChannelNotFound"
	// RangeMatchesNothing: no bundle of the channel (or, for a
	// package-level range, of any channel) is in range.
	RangeMatchesNothing ProblemKind = "RangeMatchesNothing"
	// DefaultChannelDropped: the selection does not keep the package's
	// default channel and the spec sets no defaultChannel among the kept
	// ones. oc-mirror writes such a catalog anyway and opm rejects it.
	DefaultChannelDropped ProblemKind = "DefaultChannelDropped"
	// InvalidSource: the part of the source catalog the selection needs is
	// itself invalid (no single channel head, a replaces cycle, stranded
	// bundles, entries without bundles), so no valid result contains it.
	InvalidSource ProblemKind = "InvalidSource"
	// InvalidSpec: a version or range in the spec does not parse. spec
	// validation refuses these first; Filter checks again rather than
	// trusting its caller.
	InvalidSpec ProblemKind = "InvalidSpec"
	// InvalidResult: the result breaks a rule opm validates. Filter checks
	// its own output with those rules and refuses to return it; seeing
	// this kind means a source defect the selection did not catch, or a
	// bug in Filter.
	InvalidResult ProblemKind = "InvalidResult"
)

// Problem is one reason a Filter failed.
type Problem struct {
	Kind    ProblemKind `json:"kind"`
	Package string      `json:"package"`
	Channel string      `json:"channel,omitempty"`
	Message string      `json:"message"`
}

func (p Problem) String() string { return where(p.Package, p.Channel) + p.Message }

// Error is returned when the selection cannot be made; it carries every
// problem found, not just the first, so one run shows a user everything to
// fix.
type Error struct {
	Problems []Problem `json:"problems"`
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "filter catalog: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "filter catalog: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Has reports whether the error holds a problem of kind k, for tests and
// callers that map kinds to exit codes or messages.
func (e *Error) Has(k ProblemKind) bool {
	for _, p := range e.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

func where(pkg, ch string) string {
	switch {
	case pkg == "":
		return ""
	case ch == "":
		return fmt.Sprintf("package %q: ", pkg)
	default:
		return fmt.Sprintf("package %q channel %q: ", pkg, ch)
	}
}
