package spec

import (
	"cmp"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// applyDefaults is the one place defaults are set, so what a field means
// when omitted is decided once and shows in `ferry validate -o yaml`.
func applyDefaults(c *Config) {
	if c.Mirror != nil {
		mirrorDefaults(c.Mirror)
	}
	for _, cat := range c.Catalogs {
		s := &cat.Spec
		if s.Platform == "" {
			s.Platform = DefaultPlatform
		}
		if s.CatalogSource.Name == "" {
			s.CatalogSource.Name = cat.Metadata.Name
		}
		if s.CatalogSource.Namespace == "" {
			s.CatalogSource.Namespace = DefaultCatalogSourceNamespace
		}
		if s.CatalogSource.DisplayName == "" {
			s.CatalogSource.DisplayName = cat.Metadata.Name
		}
		if s.Target == "" && c.Mirror != nil && c.Mirror.Spec.Registry != "" {
			s.Target = defaultTarget(cat, &c.Mirror.Spec)
		}
		if s.Base == "" && !IsLocalSource(s.Source) {
			s.Base = s.Source
		}
		if len(s.ServeAs) == 0 {
			s.ServeAs = []string{ServeCatalogSource}
		}
		if s.ClusterCatalog.Name == "" {
			s.ClusterCatalog.Name = cat.Metadata.Name
		}
	}
	if smp := c.Samples; smp != nil {
		s := &smp.Spec
		if s.ManagementState == "" {
			s.ManagementState = Managed
		}
		if s.MirrorImages {
			if s.ImagesFrom == "" {
				s.ImagesFrom = ImagesFromCluster
			}
			if s.SamplesRegistry == "" && c.Mirror != nil {
				s.SamplesRegistry = c.Mirror.Spec.Registry
			}
		}
	}
}

// defaultTarget puts the built catalog where the mirror puts the source
// catalog's own copy (the source's repository path under the Mirror
// registry, its tag), which is what `oc adm catalog mirror` users expect.
// A local or digest-only source has no such name, so the Catalog's name
// stands in.
func defaultTarget(cat *Catalog, m *MirrorSpec) string {
	if IsLocalSource(cat.Spec.Source) {
		return m.Destination("", "catalogs/"+cat.Metadata.Name) + ":latest"
	}
	if IsOCISource(cat.Spec.Source) {
		// A layout has no repository path: its directory's name stands in.
		dir, tag := OCIPath(cat.Spec.Source)
		repo := sanitizeName(path.Base(dir))
		return m.Destination("", repo) + ":" + cmp.Or(tag, "latest")
	}
	repoAndTag, _, _ := strings.Cut(cat.Spec.Source, "@")
	tag := cat.Metadata.Name
	if t, err := name.NewTag(repoAndTag, name.StrictValidation); err == nil {
		tag = t.TagStr()
	}
	repo, err := name.NewRepository(strings.TrimSuffix(repoAndTag, ":"+tag), name.StrictValidation)
	if err != nil {
		return "" // reported by validation of spec.source
	}
	return m.Destination(repo.RegistryStr(), repo.RepositoryStr()) + ":" + tag
}

// Destination is where an image from repository path repoPath of source
// registry srcHost lands in this mirror: the registry, its namespace, the
// source host when KeepSourceRegistry is set (":" spelled "-", which a path
// cannot hold), then the path, with components past MaxPathComponents
// joined by "-".
func (m *MirrorSpec) Destination(srcHost, repoPath string) string {
	host, ns, _ := strings.Cut(m.Registry, "/")
	if m.KeepSourceRegistry && srcHost != "" {
		repoPath = strings.ReplaceAll(strings.ToLower(srcHost), ":", "-") + "/" + repoPath
	}
	var comps []string
	for _, c := range strings.Split(path.Join(ns, repoPath), "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	if max := m.MaxPathComponents; max > 0 && len(comps) > max {
		comps = append(comps[:max-1:max-1], strings.Join(comps[max-1:], "-"))
	}
	return host + "/" + strings.Join(comps, "/")
}

// IsLocalSource reports whether a Catalog source names a local FBC
// directory rather than an image.
func IsLocalSource(source string) bool {
	return strings.HasPrefix(source, "./") || strings.HasPrefix(source, "../") || strings.HasPrefix(source, "/") || source == "." || source == ".."
}

// IsOCISource reports whether a source, base or bundle names an OCI image
// layout on disk: oci://DIR[:tag].
func IsOCISource(ref string) bool { return strings.HasPrefix(ref, "oci://") }

// OCIPath splits oci://DIR[:tag] into its directory and tag ("" when the
// layout's only image is meant). oci:///abs/dir is absolute; anything else
// is relative to the file that names it.
func OCIPath(ref string) (dir, tag string) {
	dir = strings.TrimPrefix(ref, "oci://")
	if i := strings.LastIndex(dir, ":"); i > strings.LastIndex(dir, "/") {
		dir, tag = dir[:i], dir[i+1:]
	}
	return dir, tag
}

// OCIDir returns where the layout of an oci:// reference named by the
// object at origin is: a slash path relative to the loaded root and true,
// or the path as written (absolute, or leaving the tree) and false.
func OCIDir(origin *Origin, ref string) (string, bool) {
	dir, _ := OCIPath(ref)
	if rel, ok := localPath(origin, dir); ok {
		return rel, true
	}
	return dir, false
}

// localPath resolves p against the directory of the file at origin.
func localPath(origin *Origin, p string) (string, bool) {
	if strings.HasPrefix(p, "/") {
		return "", false
	}
	file := ""
	if origin != nil {
		file = origin.File
	}
	rel := path.Join(path.Dir(file), p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// SourceDir returns the slash path, relative to the loaded root, of a
// Catalog's local source directory, and false when the source is an image
// or an absolute path outside the spec tree.
func (c *Catalog) SourceDir() (string, bool) {
	src := c.Spec.Source
	if !IsLocalSource(src) || strings.HasPrefix(src, "/") {
		return "", false
	}
	file := ""
	if c.Origin != nil {
		file = c.Origin.File
	}
	p := path.Join(path.Dir(file), src)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

func mirrorDefaults(m *Mirror) {
	if len(m.Spec.Objects) == 0 {
		m.Spec.Objects = []string{ObjectIDMS, ObjectITMS}
	}
}
