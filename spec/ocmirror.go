package spec

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// oc-mirror's ImageSetConfiguration is read so its users can switch
// without rewriting their files. The types below follow oc-mirror's own
// (v1alpha2: v1/pkg/api/v1alpha2, v2alpha1: v2/internal/pkg/api/v2alpha1),
// including fields Ferry ignores, so a real file decodes strictly: an
// unknown field is still an error, exactly as in oc-mirror.

// The oc-mirror API versions and kinds Ferry reads.
const (
	OCMirrorV1Alpha1 = "mirror.openshift.io/v1alpha1"
	OCMirrorV1Alpha2 = "mirror.openshift.io/v1alpha2"
	OCMirrorV2Alpha1 = "mirror.openshift.io/v2alpha1"

	KindImageSetConfiguration       = "ImageSetConfiguration"
	KindDeleteImageSetConfiguration = "DeleteImageSetConfiguration"
)

func isOCMirrorAPIVersion(v string) bool {
	return v == OCMirrorV1Alpha1 || v == OCMirrorV1Alpha2 || v == OCMirrorV2Alpha1
}

type iscDocument struct {
	TypeMeta      `json:",inline"`
	Metadata      *ObjectMeta `json:"metadata,omitempty"`
	Mirror        *iscMirror  `json:"mirror,omitempty"`
	Delete        *iscMirror  `json:"delete,omitempty"`
	ArchiveSize   int64       `json:"archiveSize,omitempty"`
	StorageConfig any         `json:"storageConfig,omitempty"` // v1 only; rejected for v2alpha1 below
}

type iscMirror struct {
	Platform         any           `json:"platform,omitempty"`
	OCP              any           `json:"ocp,omitempty"` // v1alpha1's name for platform
	Operators        []iscOperator `json:"operators,omitempty"`
	AdditionalImages []iscImage    `json:"additionalImages,omitempty"`
	BlockedImages    []iscImage    `json:"blockedImages,omitempty"`
	Samples          []iscImage    `json:"samples,omitempty"`
	Helm             any           `json:"helm,omitempty"`
}

type iscPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

type iscImage struct {
	Name        string        `json:"name"`
	TargetRepo  string        `json:"targetRepo,omitempty"`
	TargetTag   string        `json:"targetTag,omitempty"`
	TagsByRegex string        `json:"tagsByRegex,omitempty"`
	Platforms   []iscPlatform `json:"platforms,omitempty"`
	PullSecret  string        `json:"pullSecret,omitempty"` // v1alpha1
}

type iscOperator struct {
	Catalog                     string        `json:"catalog"`
	Packages                    []iscPackage  `json:"packages,omitempty"`
	Full                        bool          `json:"full,omitempty"`
	SkipDependencies            bool          `json:"skipDependencies,omitempty"`
	TargetName                  string        `json:"targetName,omitempty"` // deprecated alias of targetCatalog
	TargetCatalog               string        `json:"targetCatalog,omitempty"`
	TargetTag                   string        `json:"targetTag,omitempty"`
	OriginalRef                 string        `json:"originalRef,omitempty"`
	TargetCatalogSourceTemplate string        `json:"targetCatalogSourceTemplate,omitempty"`
	Platforms                   []iscPlatform `json:"platforms,omitempty"`
	// v1alpha1
	HeadsOnly   *bool  `json:"headsOnly,omitempty"`
	PullSecret  string `json:"pullSecret,omitempty"`
	WriteIndex  bool   `json:"writeIndex,omitempty"`
	InlineIndex bool   `json:"inlineIndex,omitempty"`
}

type iscPackage struct {
	Name            string       `json:"name"`
	DefaultChannel  string       `json:"defaultChannel,omitempty"`
	Channels        []iscChannel `json:"channels,omitempty"`
	MinVersion      string       `json:"minVersion,omitempty"`
	MaxVersion      string       `json:"maxVersion,omitempty"`
	MinBundle       string       `json:"minBundle,omitempty"`       // v1alpha2
	SelectedBundles []iscImage   `json:"bundles,omitempty"`         // v2alpha1
	StartingVersion string       `json:"startingVersion,omitempty"` // v1alpha1
	StartingBundle  string       `json:"startingBundle,omitempty"`  // v1alpha1
}

type iscChannel struct {
	Name            string `json:"name"`
	MinVersion      string `json:"minVersion,omitempty"`
	MaxVersion      string `json:"maxVersion,omitempty"`
	MinBundle       string `json:"minBundle,omitempty"`
	StartingVersion string `json:"startingVersion,omitempty"`
	StartingBundle  string `json:"startingBundle,omitempty"`
}

// loadOCMirror decodes an ImageSetConfiguration and maps it onto Ferry's
// kinds: each operators[] entry becomes a Catalog; additional, blocked and
// sample images join the Mirror. What Ferry does not do (release and helm
// mirroring, storage settings) is reported as a warning, never silently
// dropped.
func (l *loader) loadOCMirror(file string, n *yaml.Node, origin *Origin, h header) {
	origin.FromOCMirror = true
	l.ocOrigins = append(l.ocOrigins, origin)
	var doc iscDocument
	d := newDecoder()
	d.foldCase = true
	d.decode(n, reflect.ValueOf(&doc).Elem(), "")
	origin.lines = d.lines
	c := objectCheck{v: &validator{fsys: l.fsys}, o: origin, kind: h.kind, name: h.name}
	for _, e := range d.errs {
		c.v.problems = append(c.v.problems, Problem{Severity: SeverityError, File: file, Line: e.line, Kind: h.kind, Name: h.name, Field: e.path, Message: e.msg})
	}
	for _, w := range d.warns {
		c.v.problems = append(c.v.problems, Problem{Severity: SeverityWarning, File: file, Line: w.line, Kind: h.kind, Name: h.name, Field: w.path, Message: w.msg})
	}
	defer func() { l.problems = append(l.problems, c.v.problems...) }()
	if len(d.errs) > 0 {
		return
	}
	v2 := h.apiVersion == OCMirrorV2Alpha1
	if v2 && doc.StorageConfig != nil {
		c.fail("storageConfig", "unknown field in %s (oc-mirror v2 has no storageConfig; it is a v1alpha2 field)", h.apiVersion)
		return
	}
	switch h.kind {
	case KindDeleteImageSetConfiguration:
		if doc.Mirror != nil {
			c.fail("mirror", "not allowed in %s: use delete", h.kind)
		}
		c.warn("delete", "ignored: Ferry deletes by omission; remove images from the spec and prune the mirror registry with its own garbage collection")
		return
	case KindImageSetConfiguration:
		if doc.Delete != nil {
			c.fail("delete", "not allowed in %s: use a DeleteImageSetConfiguration", h.kind)
			return
		}
		if doc.Mirror == nil {
			c.fail("mirror", "required: the configuration has no mirror stanza")
			return
		}
	default:
		c.fail("kind", "unknown kind %q for %s; expected %s or %s", h.kind, h.apiVersion, KindImageSetConfiguration, KindDeleteImageSetConfiguration)
		return
	}
	if doc.StorageConfig != nil {
		c.warn("storageConfig", "ignored: Ferry keeps its state in the lock file of the config repo")
	}
	if doc.ArchiveSize != 0 {
		c.warn("archiveSize", "ignored: Ferry does not split archives")
	}
	m := doc.Mirror
	if m.Platform != nil || m.OCP != nil {
		f := "mirror.platform"
		if m.OCP != nil {
			f = "mirror.ocp"
		}
		c.warn(f, "ignored: OpenShift release mirroring is not Ferry's job (use oc adm release mirror or oc-mirror for releases)")
	}
	if m.Helm != nil {
		c.warn("mirror.helm", "ignored: Ferry does not mirror Helm charts")
	}
	base := strings.TrimSuffix(path.Base(file), path.Ext(file))
	mirror := &Mirror{
		TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindMirror},
		Metadata: ObjectMeta{Name: sanitizeName(base)},
		Origin:   origin,
	}
	platforms := map[string]bool{}
	addPlatforms := func(f string, ps []iscPlatform) {
		for i, p := range ps {
			if p.OS == "" || p.Architecture == "" {
				c.fail(fmt.Sprintf("%s[%d]", f, i), "platform needs both os and architecture")
				continue
			}
			pl := p.OS + "/" + p.Architecture
			if !platforms[pl] {
				platforms[pl] = true
				mirror.Spec.Platforms = append(mirror.Spec.Platforms, pl)
			}
		}
		if len(ps) > 0 {
			c.warn(f, "Ferry copies the same platforms of every image: these join the Mirror's platforms")
		}
	}
	for i, op := range m.Operators {
		f := fmt.Sprintf("mirror.operators[%d]", i)
		if cat := mapOperator(c, f, h.apiVersion, op); cat != nil {
			o := *origin
			o.ocPath = f
			cat.Origin = &o
			l.cfg.Catalogs = append(l.cfg.Catalogs, cat)
		}
		addPlatforms(f+".platforms", op.Platforms)
	}
	for i, img := range m.AdditionalImages {
		f := fmt.Sprintf("mirror.additionalImages[%d]", i)
		checkImage(c, f+".name", img.Name)
		mirror.Spec.AdditionalImages = append(mirror.Spec.AdditionalImages, img.Name)
		if img.TargetRepo != "" || img.TargetTag != "" || img.TagsByRegex != "" {
			c.warn(f, "targetRepo, targetTag and tagsByRegex are ignored: Ferry names every destination after its source path")
		}
		addPlatforms(f+".platforms", img.Platforms)
	}
	if len(m.Samples) > 0 {
		// oc-mirror never implemented samples; its entries name imagestreams.
		c.warn("mirror.samples", "ignored: describe the samples operator with a Ferry Samples spec")
	}
	for i, img := range m.BlockedImages {
		if _, err := regexp.Compile(img.Name); err != nil {
			c.fail(fmt.Sprintf("mirror.blockedImages[%d].name", i), "not a valid regular expression: %v", err)
			continue
		}
		mirror.Spec.BlockedImages = append(mirror.Spec.BlockedImages, img.Name)
	}
	s := mirror.Spec
	if len(s.AdditionalImages)+len(s.BlockedImages)+len(s.Platforms) > 0 {
		l.ocMirrors = append(l.ocMirrors, mirror)
	}
}

// mapOperator turns one operators[] entry into a Catalog, applying
// oc-mirror's own rules for its version so its users meet the errors they
// know.
func mapOperator(c objectCheck, f, apiVersion string, op iscOperator) *Catalog {
	if op.Catalog == "" {
		c.fail(f+".catalog", "required")
		return nil
	}
	cat := &Catalog{
		TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindCatalog},
		Spec: CatalogSpec{
			Source:              op.Catalog, // oci://DIR[:tag] included, as oc-mirror reads it
			IncludeDependencies: !op.SkipDependencies,
		},
	}
	targetRepo := op.TargetCatalog
	if targetRepo == "" {
		targetRepo = op.TargetName
	}
	cat.Metadata.Name = catalogNameFor(op.Catalog, targetRepo, op.TargetTag)
	if targetRepo != "" || op.TargetTag != "" {
		c.warn(f, "targetCatalog/targetTag name the mirrored catalog; Ferry takes it from a Mirror and sets spec.target when one exists")
	}
	full := op.Full
	if op.HeadsOnly != nil && !*op.HeadsOnly {
		full = true
	}
	if op.TargetCatalogSourceTemplate != "" {
		c.warn(f+".targetCatalogSourceTemplate", "ignored: set the CatalogSource fields on a Catalog instead")
	}
	for j, p := range op.Packages {
		pf := fmt.Sprintf("%s.packages[%d]", f, j)
		pkg := Package{
			Name:           p.Name,
			DefaultChannel: p.DefaultChannel,
			MinVersion:     firstOf(p.MinVersion, p.StartingVersion),
			MaxVersion:     p.MaxVersion,
			Full:           full,
		}
		if p.MinBundle != "" || p.StartingBundle != "" {
			c.fail(pf, "minBundle/startingBundle is not supported: name the bundle's version in minVersion")
		}
		if len(p.SelectedBundles) > 0 {
			c.fail(pf+".bundles", "selecting bundles by name is not supported: use minVersion/maxVersion")
		}
		pkgRange := pkg.MinVersion != "" || pkg.MaxVersion != ""
		for k, ch := range p.Channels {
			cf := fmt.Sprintf("%s.channels[%d]", pf, k)
			if ch.MinBundle != "" || ch.StartingBundle != "" {
				c.fail(cf, "minBundle/startingBundle is not supported: name the bundle's version in minVersion")
			}
			pkg.Channels = append(pkg.Channels, Channel{Name: ch.Name, MinVersion: firstOf(ch.MinVersion, ch.StartingVersion), MaxVersion: ch.MaxVersion})
		}
		switch {
		case pkgRange && full && apiVersion == OCMirrorV2Alpha1:
			c.fail(pf, "cannot use channels/full and min/max versions at the same time (oc-mirror v2 rule; full is set on %s)", f)
			pkg.Full = false // reported here, not again by Ferry's own rule
		case pkgRange && full:
			// oc-mirror v1 read full plus a range as "every bundle in
			// range", which is what a range alone means in Ferry.
			c.warn(pf, "full with minVersion/maxVersion is read as the range alone, as oc-mirror v1 did")
			pkg.Full = false
		case pkgRange && len(p.Channels) > 0 && apiVersion == OCMirrorV2Alpha1 && !anyChannelRange(p.Channels):
			// (a channel with its own range is reported by Ferry's rule)
			c.fail(pf, "cannot use channels/full and min/max versions at the same time (oc-mirror v2 rule)")
		}
		cat.Spec.Packages = append(cat.Spec.Packages, pkg)
	}
	if full && len(op.Packages) == 0 {
		// full on a whole catalog is what omitting packages already means.
		cat.Spec.Packages = nil
	}
	return cat
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// catalogNameFor derives a Catalog name from an oc-mirror entry: the last
// path component of the (target) repository plus the tag, as a DNS label,
// e.g. redhat-operator-index-v4-20.
func catalogNameFor(source, targetRepo, targetTag string) string {
	repo, tag := source, ""
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	if targetRepo != "" {
		repo = targetRepo
	}
	if targetTag != "" {
		tag = targetTag
	}
	n := path.Base(repo)
	if tag != "" {
		n += "-" + tag
	}
	return sanitizeName(n)
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// sanitizeName makes s a DNS label: lowercase, '-' for anything else, at
// most 63 characters.
func sanitizeName(s string) string {
	s = nonLabel.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		s = "catalog"
	}
	return s
}

func anyChannelRange(chs []iscChannel) bool {
	for _, ch := range chs {
		if ch.MinVersion != "" || ch.MaxVersion != "" || ch.StartingVersion != "" {
			return true
		}
	}
	return false
}
