package spec

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"github.com/google/go-containerregistry/pkg/name"
)

// validator collects every problem instead of stopping at the first, so
// one `ferry validate` run lists all there is to fix.
type validator struct {
	fsys     fs.FS
	problems Problems
}

func (v *validator) at(o *Origin, kind, objName, field, format string, args ...any) {
	field = o.fieldPath(field)
	p := Problem{Severity: SeverityError, Kind: kind, Name: objName, Field: field, Message: fmt.Sprintf(format, args...)}
	if o != nil {
		p.File, p.Line = o.File, o.LineOf(field)
		if o.ocPath != "" {
			p.Kind, p.Name = KindImageSetConfiguration, ""
		}
	}
	v.problems = append(v.problems, p)
}

func (v *validator) warn(o *Origin, kind, objName, field, format string, args ...any) {
	v.at(o, kind, objName, field, format, args...)
	v.problems[len(v.problems)-1].Severity = SeverityWarning
}

// objectCheck binds a validator to one object so checks read as
// c.fail("spec.source", "...").
type objectCheck struct {
	v    *validator
	o    *Origin
	kind string
	name string
}

func (c objectCheck) fail(field, format string, args ...any) {
	c.v.at(c.o, c.kind, c.name, field, format, args...)
}

func (c objectCheck) warn(field, format string, args ...any) {
	c.v.warn(c.o, c.kind, c.name, field, format, args...)
}

func (v *validator) config(c *Config, mirrors []*Mirror, samples []*Samples) {
	names := map[string]map[string]*Origin{}
	unique := func(kind, n string, o *Origin) {
		if names[kind] == nil {
			names[kind] = map[string]*Origin{}
		}
		if prev, ok := names[kind][n]; ok && n != "" {
			if o.ocPath != "" {
				v.at(o, kind, n, "spec.source", "catalog %q is listed twice (also at %s:%d); oc-mirror rejects this too", n, prev.File, prev.LineOf(prev.ocPath))
			} else {
				v.at(o, kind, n, "metadata.name", "duplicate %s name %q (also defined at %s:%d)", kind, n, prev.File, prev.Line)
			}
			return
		}
		names[kind][n] = o
	}
	for _, cat := range c.Catalogs {
		unique(KindCatalog, cat.Metadata.Name, cat.Origin)
		v.catalog(cat, c.Mirror)
	}
	for _, m := range mirrors {
		unique(KindMirror, m.Metadata.Name, m.Origin)
		v.mirror(m)
	}
	for _, s := range samples {
		unique(KindSamples, s.Metadata.Name, s.Origin)
	}
	if c.Samples != nil {
		// Only the one in effect: the others are already reported.
		v.samples(c.Samples, c.Mirror)
	}
	v.catalogConflicts(c.Catalogs)
}

func (v *validator) meta(c objectCheck, m ObjectMeta) {
	switch {
	case m.Name == "":
		c.fail("metadata.name", "required")
	case !isDNSSubdomain(m.Name):
		c.fail("metadata.name", "%q must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)", m.Name)
	}
}

func (v *validator) catalog(cat *Catalog, mirror *Mirror) {
	c := objectCheck{v, cat.Origin, KindCatalog, cat.Metadata.Name}
	s := &cat.Spec
	v.meta(c, cat.Metadata)
	switch {
	case s.Source == "":
		c.fail("spec.source", "required: an index image (by tag or digest) or a local directory (./path)")
	case IsOCISource(s.Source):
		checkOCI(c, v.fsys, "spec.source", s.Source)
	case IsLocalSource(s.Source):
		if dir, ok := cat.SourceDir(); ok {
			if fi, err := fs.Stat(v.fsys, dir); err != nil || !fi.IsDir() {
				c.fail("spec.source", "local catalog directory %q (%s in the spec tree) does not exist", s.Source, dir)
			}
		} else if !strings.HasPrefix(s.Source, "/") {
			c.fail("spec.source", "local catalog directory %q leaves the spec directory; keep catalogs inside the config repo", s.Source)
		}
		if s.Base == "" {
			c.fail("spec.base", "required when spec.source is a local directory: the image that provides opm for the built catalog")
		}
	default:
		checkImage(c, "spec.source", s.Source)
	}
	checkPlatform(c, "spec.platform", s.Platform)
	if s.Target == "" {
		switch {
		case cat.Origin != nil && cat.Origin.FromOCMirror:
			// Reported once per file by the loader.
		case mirror == nil || mirror.Spec.Registry == "":
			c.fail("spec.target", "required when no Mirror is defined: the repository to push the built catalog to")
		}
	} else {
		checkTarget(c, "spec.target", s.Target)
	}
	if s.Base != "" && s.Base != s.Source {
		checkImageOrOCI(c, v.fsys, "spec.base", s.Base)
	}
	checkAddMode(c, "spec.addMode", s.AddMode)
	seenBundles := map[string]int{}
	for i, b := range s.Bundles {
		f := fmt.Sprintf("spec.bundles[%d]", i)
		checkImageOrOCI(c, v.fsys, f, b.Image)
		checkAddMode(c, f+".addMode", b.AddMode)
		if j, ok := seenBundles[b.Image]; ok {
			c.fail(f, "duplicate of spec.bundles[%d]", j)
		}
		seenBundles[b.Image] = i
	}
	seenPkgs := map[string]int{}
	for i := range s.Packages {
		f := fmt.Sprintf("spec.packages[%d]", i)
		p := &s.Packages[i]
		if j, ok := seenPkgs[p.Name]; ok && p.Name != "" {
			c.fail(f+".name", "package %q is already selected by spec.packages[%d]", p.Name, j)
		}
		seenPkgs[p.Name] = i
		checkPackage(c, f, p)
	}
	cs := s.CatalogSource
	if !isDNSLabel(cs.Name) {
		c.fail("spec.catalogSource.name", "%q must be an RFC 1123 label (lowercase a-z, 0-9, '-'; at most 63 characters): OLM names the catalog's Service after it", cs.Name)
	}
	if !isDNSLabel(cs.Namespace) {
		c.fail("spec.catalogSource.namespace", "%q is not a valid namespace name", cs.Namespace)
	}
	if cs.PollInterval != "" {
		if d, err := time.ParseDuration(cs.PollInterval); err != nil || d <= 0 {
			c.fail("spec.catalogSource.pollInterval", "%q must be a positive duration such as 30m or 1h", cs.PollInterval)
		}
	}
	if cs.SecurityContextConfig != "" && cs.SecurityContextConfig != "legacy" && cs.SecurityContextConfig != "restricted" {
		c.fail("spec.catalogSource.securityContextConfig", "%q must be legacy or restricted", cs.SecurityContextConfig)
	}
	served := map[string]bool{}
	for i, k := range s.ServeAs {
		f := fmt.Sprintf("spec.serveAs[%d]", i)
		switch {
		case k != ServeCatalogSource && k != ServeClusterCatalog:
			c.fail(f, "%q must be %s or %s", k, ServeCatalogSource, ServeClusterCatalog)
		case served[k]:
			c.fail(f, "%s is listed twice", k)
		}
		served[k] = true
	}
	cc := s.ClusterCatalog
	if !isDNSLabel(cc.Name) {
		c.fail("spec.clusterCatalog.name", "%q must be an RFC 1123 label (lowercase a-z, 0-9, '-'; at most 63 characters)", cc.Name)
	}
	if cc.AvailabilityMode != "" && cc.AvailabilityMode != "Available" && cc.AvailabilityMode != "Unavailable" {
		c.fail("spec.clusterCatalog.availabilityMode", "%q must be Available or Unavailable", cc.AvailabilityMode)
	}
	if cc.Priority < -2147483648 || cc.Priority > 2147483647 {
		c.fail("spec.clusterCatalog.priority", "%d is outside the 32-bit range the API accepts", cc.Priority)
	}
}

// checkPackage applies the filter rules: oc-mirror's, so its users meet
// the same errors, plus Ferry's own (versions must parse and be ordered).
func checkPackage(c objectCheck, f string, p *Package) {
	if p.Name == "" {
		c.fail(f+".name", "required")
	}
	pkgRange := p.MinVersion != "" || p.MaxVersion != ""
	checkRange(c, f, p.MinVersion, p.MaxVersion)
	if p.Full && pkgRange {
		c.fail(f+".full", "full cannot be combined with minVersion/maxVersion: full already keeps every bundle")
	}
	seen := map[string]int{}
	defaultListed := p.DefaultChannel == ""
	for i, ch := range p.Channels {
		cf := fmt.Sprintf("%s.channels[%d]", f, i)
		if ch.Name == "" {
			c.fail(cf+".name", "required")
		}
		if j, ok := seen[ch.Name]; ok && ch.Name != "" {
			c.fail(cf+".name", "channel %q is already selected by %s.channels[%d]", ch.Name, f, j)
		}
		seen[ch.Name] = i
		if ch.Name == p.DefaultChannel {
			defaultListed = true
		}
		chRange := ch.MinVersion != "" || ch.MaxVersion != ""
		checkRange(c, cf, ch.MinVersion, ch.MaxVersion)
		if chRange && pkgRange {
			c.fail(cf, "channel-level minVersion/maxVersion cannot be combined with a package-level range")
		}
		if chRange && p.Full {
			c.fail(cf, "channel-level minVersion/maxVersion cannot be combined with full")
		}
	}
	if len(p.Channels) > 0 && !defaultListed {
		c.fail(f+".defaultChannel", "%q is not one of the selected channels", p.DefaultChannel)
	}
}

func checkRange(c objectCheck, f, minV, maxV string) {
	lo, okLo := checkVersion(c, f+".minVersion", minV)
	hi, okHi := checkVersion(c, f+".maxVersion", maxV)
	if okLo && okHi && lo.GT(hi) {
		c.fail(f+".minVersion", "%s is greater than maxVersion %s", minV, maxV)
	}
}

func checkVersion(c objectCheck, f, s string) (semver.Version, bool) {
	if s == "" {
		return semver.Version{}, false
	}
	v, err := semver.Parse(s)
	if err != nil {
		hint := ""
		if strings.HasPrefix(s, "v") {
			hint = " (bundle versions have no leading v)"
		}
		c.fail(f, "%q is not a semantic version (MAJOR.MINOR.PATCH)%s: %v", s, hint, err)
		return v, false
	}
	return v, true
}

// catalogConflicts refuses two Catalogs that would overwrite each other:
// the same target image tag or the same CatalogSource.
func (v *validator) catalogConflicts(cats []*Catalog) {
	targets := map[string]*Catalog{}
	sources := map[string]*Catalog{}
	clusterCatalogs := map[string]*Catalog{}
	for _, cat := range cats {
		if cat.Spec.Serves(ServeClusterCatalog) {
			c := objectCheck{v, cat.Origin, KindCatalog, cat.Metadata.Name}
			if prev, ok := clusterCatalogs[cat.Spec.ClusterCatalog.Name]; ok && prev.Metadata.Name != cat.Metadata.Name {
				c.fail("spec.clusterCatalog.name", "Catalog/%s (%s:%d) already renders ClusterCatalog %s", prev.Metadata.Name, prev.Origin.File, prev.Origin.Line, cat.Spec.ClusterCatalog.Name)
			} else {
				clusterCatalogs[cat.Spec.ClusterCatalog.Name] = cat
			}
		}
	}
	for _, cat := range cats {
		c := objectCheck{v, cat.Origin, KindCatalog, cat.Metadata.Name}
		if t := normalizeTarget(cat.Spec.Target); t != "" {
			if prev, ok := targets[t]; ok {
				c.fail("spec.target", "Catalog/%s (%s:%d) already builds %s; two catalogs cannot push one image", prev.Metadata.Name, prev.Origin.File, prev.Origin.Line, cat.Spec.Target)
			} else {
				targets[t] = cat
			}
		}
		key := cat.Spec.CatalogSource.Namespace + "/" + cat.Spec.CatalogSource.Name
		if prev, ok := sources[key]; ok && prev.Metadata.Name == cat.Metadata.Name {
			continue // a duplicate name, already reported
		} else if ok {
			c.fail("spec.catalogSource.name", "Catalog/%s (%s:%d) already renders CatalogSource %s", prev.Metadata.Name, prev.Origin.File, prev.Origin.Line, key)
		} else {
			sources[key] = cat
		}
	}
}

// normalizeTarget returns the repository:tag a target writes, or "" when it
// writes no tag (digest-only pushes cannot overwrite each other).
func normalizeTarget(t string) string {
	tag, err := name.NewTag(t, name.StrictValidation)
	if err != nil {
		return ""
	}
	return tag.Name()
}

func (v *validator) mirror(m *Mirror) {
	c := objectCheck{v, m.Origin, KindMirror, m.Metadata.Name}
	s := &m.Spec
	v.meta(c, m.Metadata)
	nsDepth := checkRegistryPath(c, "spec.registry", s.Registry, true)
	if s.MaxPathComponents < 0 {
		c.fail("spec.maxPathComponents", "must not be negative")
	} else if s.MaxPathComponents > 0 && s.MaxPathComponents <= nsDepth {
		c.fail("spec.maxPathComponents", "%d leaves no room below the registry namespace %q (%d components); it must be greater than %d", s.MaxPathComponents, s.Registry, nsDepth, nsDepth)
	}
	if hub := s.OperatorHub; hub != nil {
		names := map[string]bool{}
		for i, src := range hub.Sources {
			f := fmt.Sprintf("spec.operatorHub.sources[%d].name", i)
			switch {
			case !isDNSLabel(src.Name):
				c.fail(f, "%q is not a CatalogSource name", src.Name)
			case names[src.Name]:
				c.fail(f, "%q is listed twice", src.Name)
			}
			names[src.Name] = true
		}
	}
	seen := map[string]int{}
	for i, p := range s.Platforms {
		f := fmt.Sprintf("spec.platforms[%d]", i)
		checkPlatform(c, f, p)
		if j, ok := seen[p]; ok {
			c.fail(f, "duplicate of spec.platforms[%d]", j)
		}
		seen[p] = i
	}
	var blocked []*regexp.Regexp
	for i, b := range s.BlockedImages {
		re, err := regexp.Compile(b)
		if err != nil {
			c.fail(fmt.Sprintf("spec.blockedImages[%d]", i), "not a valid regular expression: %v", err)
			continue
		}
		blocked = append(blocked, re)
	}
	seen = map[string]int{}
	for i, img := range s.AdditionalImages {
		f := fmt.Sprintf("spec.additionalImages[%d]", i)
		checkImage(c, f, img)
		if j, ok := seen[img]; ok {
			c.fail(f, "duplicate of spec.additionalImages[%d]", j)
		}
		seen[img] = i
		for _, re := range blocked {
			if re.MatchString(img) {
				c.fail(f, "%q is also blocked by blockedImages %q; remove one of them", img, re.String())
			}
		}
	}
	seen = map[string]int{}
	hasSet := false
	for i, o := range s.Objects {
		f := fmt.Sprintf("spec.objects[%d]", i)
		switch o {
		case ObjectIDMS, ObjectITMS:
			hasSet = true
		case ObjectICSP:
		default:
			c.fail(f, "%q must be one of %s, %s, %s", o, ObjectIDMS, ObjectITMS, ObjectICSP)
		}
		if j, ok := seen[o]; ok {
			c.fail(f, "duplicate of spec.objects[%d]", j)
		}
		seen[o] = i
	}
	switch s.MirrorSourcePolicy {
	case "":
	case NeverContactSource, AllowContactingSource:
		if !hasSet {
			c.fail("spec.mirrorSourcePolicy", "needs an ImageDigestMirrorSet or ImageTagMirrorSet in spec.objects: ImageContentSourcePolicy cannot express it")
		}
	default:
		c.fail("spec.mirrorSourcePolicy", "%q must be %s or %s", s.MirrorSourcePolicy, NeverContactSource, AllowContactingSource)
	}
	seen = map[string]int{}
	for i, r := range s.InsecureRegistries {
		f := fmt.Sprintf("spec.insecureRegistries[%d]", i)
		if _, err := name.NewRegistry(r, name.StrictValidation); err != nil || strings.Contains(r, "/") {
			c.fail(f, "%q must be a registry host[:port]", r)
		}
		if j, ok := seen[r]; ok {
			c.fail(f, "duplicate of spec.insecureRegistries[%d]", j)
		}
		seen[r] = i
	}
}

// The architectures the samples operator ships content for.
var sampleArchitectures = map[string]string{"x86_64": "", "aarch64": "", "ppc64le": "", "s390x": "", "amd64": "x86_64", "arm64": "aarch64"}

func (v *validator) samples(smp *Samples, mirror *Mirror) {
	c := objectCheck{v, smp.Origin, KindSamples, smp.Metadata.Name}
	s := &smp.Spec
	v.meta(c, smp.Metadata)
	switch s.ManagementState {
	case Managed, Unmanaged, Removed:
	default:
		c.fail("spec.managementState", "%q must be Managed, Unmanaged or Removed", s.ManagementState)
	}
	if s.SamplesRegistry != "" {
		checkRegistryPath(c, "spec.samplesRegistry", s.SamplesRegistry, false)
	}
	seen := map[string]int{}
	for i, a := range s.Architectures {
		f := fmt.Sprintf("spec.architectures[%d]", i)
		if alias, ok := sampleArchitectures[a]; !ok {
			c.fail(f, "%q must be one of x86_64, aarch64, ppc64le, s390x", a)
		} else if alias != "" {
			c.fail(f, "%q is spelt %q by the samples operator", a, alias)
		}
		if j, ok := seen[a]; ok {
			c.fail(f, "duplicate of spec.architectures[%d]", j)
		}
		seen[a] = i
	}
	for field, list := range map[string][]string{
		"spec.skippedImagestreams": s.SkippedImagestreams,
		"spec.skippedTemplates":    s.SkippedTemplates,
		"spec.skippedHelmCharts":   s.SkippedHelmCharts,
	} {
		seen := map[string]int{}
		for i, n := range list {
			f := fmt.Sprintf("%s[%d]", field, i)
			if !isDNSSubdomain(n) {
				c.fail(f, "%q is not a valid resource name", n)
			}
			if j, ok := seen[n]; ok {
				c.warn(f, "%q is already listed at %s[%d]", n, field, j)
			}
			seen[n] = i
		}
	}
	if len(s.SkippedHelmCharts) > 16 {
		c.fail("spec.skippedHelmCharts", "at most 16 entries are allowed, got %d", len(s.SkippedHelmCharts))
	}
	if s.MirrorImages {
		if mirror == nil {
			c.fail("spec.mirrorImages", "needs a Mirror to copy the sample images to")
		}
		if s.ImagesFrom != ImagesFromCluster {
			checkLocalFile(c, v.fsys, "spec.imagesFrom", s.ImagesFrom)
		}
	} else if s.ImagesFrom != "" {
		c.fail("spec.imagesFrom", "only used with mirrorImages: true")
	}
}

func checkLocalFile(c objectCheck, fsys fs.FS, f, p string) {
	if !IsLocalSource(p) {
		c.fail(f, "%q must be %q or a relative path starting with ./", p, ImagesFromCluster)
		return
	}
	file := c.o.File
	full := path.Join(path.Dir(file), p)
	if fi, err := fs.Stat(fsys, full); err != nil || fi.IsDir() {
		c.fail(f, "file %q (%s in the spec tree) does not exist", p, full)
	}
}

// checkImage requires a fully qualified reference with a tag or a digest:
// in a disconnected cluster nothing may silently default to docker.io or
// :latest.
func checkImage(c objectCheck, f, ref string) {
	if ref == "" {
		c.fail(f, "required")
		return
	}
	repo, _, hasDigest := strings.Cut(ref, "@")
	if !strings.Contains(repo, "/") {
		c.fail(f, "%q must name its registry (registry.example.com/namespace/name:tag): nothing defaults to docker.io in a disconnected cluster", ref)
		return
	}
	if !hasDigest && !strings.Contains(repo[strings.LastIndex(repo, "/"):], ":") {
		c.fail(f, "%q must name a tag or a digest: nothing defaults to :latest", ref)
		return
	}
	if hasDigest {
		if _, err := name.NewDigest(ref, name.StrictValidation); err != nil {
			c.fail(f, "%q is not a valid image reference by digest (registry/repository[:tag]@sha256:<64 hex>): %v", ref, err)
		}
		return
	}
	if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
		c.fail(f, "%q is not a valid image reference (registry/repository:tag or @sha256:digest, registry named explicitly): %v", ref, err)
	}
}

func checkImageOrOCI(c objectCheck, fsys fs.FS, f, ref string) {
	if IsOCISource(ref) {
		checkOCI(c, fsys, f, ref)
		return
	}
	checkImage(c, f, ref)
}

// checkOCI checks an oci://DIR[:tag] reference: a tag that could be one,
// and, for a directory inside the spec tree, an OCI layout there.
// Absolute paths are the machine's business, as for local sources.
func checkOCI(c objectCheck, fsys fs.FS, f, ref string) {
	dir, tag := OCIPath(ref)
	switch {
	case dir == "":
		c.fail(f, "%q names no directory: write oci://DIR[:tag] (a relative DIR is relative to this file)", ref)
		return
	case tag != "" && !ociTagRE.MatchString(tag):
		c.fail(f, "%q: %q is not a valid tag", ref, tag)
		return
	}
	rel, inTree := localPath(c.o, dir)
	switch {
	case inTree:
		if _, err := fs.Stat(fsys, path.Join(rel, "index.json")); err != nil {
			c.fail(f, "%q: no OCI image layout at %s in the spec tree (no index.json)", ref, rel)
		}
	case !strings.HasPrefix(dir, "/"):
		c.fail(f, "%q leaves the spec directory; keep layouts inside the config repo or give an absolute path", ref)
	}
}

var ociTagRE = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

func checkAddMode(c objectCheck, f, m string) {
	switch m {
	case "", AddModeReplaces, AddModeSemver, AddModeSemverSkipPatch:
	default:
		c.fail(f, "%q must be %s, %s or %s (the modes of opm index add --mode)", m, AddModeReplaces, AddModeSemver, AddModeSemverSkipPatch)
	}
}

// checkTarget allows a repository with or without a tag, never a digest:
// the digest is only known once the catalog is built.
func checkTarget(c objectCheck, f, ref string) {
	if strings.Contains(ref, "@") {
		c.fail(f, "%q must not contain a digest: the built catalog's digest is recorded in the lock file and manifests", ref)
		return
	}
	if _, err := name.NewTag(ref, name.StrictValidation); err == nil {
		return
	}
	if _, err := name.NewRepository(ref, name.StrictValidation); err != nil {
		c.fail(f, "%q is not a valid repository[:tag]: %v", ref, err)
	}
}

// checkRegistryPath validates host[:port][/namespace...] and returns the
// number of namespace components.
func checkRegistryPath(c objectCheck, f, s string, required bool) int {
	if s == "" {
		if required {
			c.fail(f, "required: the destination registry, host[:port][/namespace]")
		}
		return 0
	}
	host, ns, _ := strings.Cut(s, "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		c.fail(f, "%q must start with a registry host[:port] (a host name with a dot or a port, or localhost)", s)
		return 0
	}
	if strings.ContainsAny(s, "@") || strings.Contains(ns, ":") {
		c.fail(f, "%q must be host[:port][/namespace] without a tag or digest", s)
		return 0
	}
	if ns == "" {
		return 0
	}
	if _, err := name.NewRepository(s, name.StrictValidation); err != nil {
		c.fail(f, "%q has an invalid namespace: %v", s, err)
		return 0
	}
	return len(strings.Split(ns, "/"))
}

var platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)

func checkPlatform(c objectCheck, f, p string) {
	if !platformRE.MatchString(p) {
		c.fail(f, "%q must be os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8", p)
	}
}

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func isDNSLabel(s string) bool     { return len(s) <= 63 && dnsLabelRE.MatchString(s) }
func isDNSSubdomain(s string) bool { return len(s) <= 253 && dnsSubdomainRE.MatchString(s) }
