package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FieldManager is the server-side apply field manager Ferry writes as.
const FieldManager = "ferry"

// Cluster is what the cluster step needs of a Kubernetes cluster. The
// client-go implementation is internal/cluster; reconcile's tests use an
// in-process fake. Objects are unstructured: the API server validates them
// against the real CRDs, and Ferry reads only a handful of fields.
type Cluster interface {
	// List returns the live objects of one kind in every namespace, with
	// one LIST request. A kind the cluster does not serve (its CRD is not
	// installed) returns an error wrapping ErrNotServed.
	List(ctx context.Context, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error)
	// Diff says what applying desired would do to live (nil when the
	// object does not exist) without changing anything: Unchanged when
	// live already holds every field of desired and Ferry manages exactly
	// those fields (no request at all); otherwise the answer of a
	// server-side dry-run apply: Create or Update, or a *ConflictError
	// naming the managers that own a field Ferry would change (unless
	// force).
	Diff(ctx context.Context, desired, live *unstructured.Unstructured, force bool) (Action, error)
	// Apply server-side applies desired as FieldManager and returns the
	// object as the server stored it. A field another manager owns is a
	// *ConflictError unless force.
	Apply(ctx context.Context, desired *unstructured.Unstructured, force bool) (*unstructured.Unstructured, error)
	// Delete deletes obj, provided it is still the object read (its UID).
	Delete(ctx context.Context, obj *unstructured.Unstructured) error
	// Get reads one object; a missing one is an error wrapping
	// ErrNotFound. Waits poll it.
	Get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error)
}

// ErrNotServed is wrapped by Cluster.List for a kind the cluster lacks.
var ErrNotServed = errors.New("kind not served by the cluster")

// ErrNotFound is wrapped by Cluster.Get for a missing object.
var ErrNotFound = errors.New("not found")

// ConflictError is a server-side apply conflict: fields Ferry would set
// are owned by other managers (a hand edit with oc or kubectl, another
// controller). --force-conflicts takes them over, as kubectl's does.
type ConflictError struct {
	Object string // Kind/namespace/name
	// Fields are the conflicting field paths with their managers, as the
	// API server reported them.
	Fields []FieldConflict
}

// FieldConflict is one conflicting field.
type FieldConflict struct {
	Field   string // e.g. .spec.image
	Manager string // e.g. kubectl-edit
}

func (e *ConflictError) Error() string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, fmt.Sprintf("%s owned by %q", f.Field, f.Manager))
	}
	return fmt.Sprintf("%s: conflict: %s (use --force-conflicts to take them over)", e.Object, strings.Join(parts, ", "))
}

// Managers lists the other managers involved, sorted, once each.
func (e *ConflictError) Managers() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range e.Fields {
		if !seen[f.Manager] {
			seen[f.Manager] = true
			out = append(out, f.Manager)
		}
	}
	return out
}

// Kinds Ferry applies and reads, by group/version/kind.
var (
	GVKCatalogSource    = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "CatalogSource"}
	GVKSubscription     = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "Subscription"}
	GVKCSV              = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "ClusterServiceVersion"}
	GVKClusterCatalog   = schema.GroupVersionKind{Group: "olm.operatorframework.io", Version: "v1", Kind: "ClusterCatalog"}
	GVKClusterExtension = schema.GroupVersionKind{Group: "olm.operatorframework.io", Version: "v1", Kind: "ClusterExtension"}
	GVKIDMS             = schema.GroupVersionKind{Group: "config.openshift.io", Version: "v1", Kind: "ImageDigestMirrorSet"}
	GVKITMS             = schema.GroupVersionKind{Group: "config.openshift.io", Version: "v1", Kind: "ImageTagMirrorSet"}
	GVKICSP             = schema.GroupVersionKind{Group: "operator.openshift.io", Version: "v1alpha1", Kind: "ImageContentSourcePolicy"}
	GVKSamplesConfig    = schema.GroupVersionKind{Group: "samples.operator.openshift.io", Version: "v1", Kind: "Config"}
	GVKOperatorHub      = schema.GroupVersionKind{Group: "config.openshift.io", Version: "v1", Kind: "OperatorHub"}
	// GVKConfigMap is read for the samples operator's image list;
	// GVKNamespace is known to the cluster client for tests and tools.
	GVKConfigMap = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	GVKNamespace = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
)
