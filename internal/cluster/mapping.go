package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/ferry-gitops/ferry/reconcile"
)

// mapping is where a kind is served: its resource and whether objects live
// in namespaces.
type mapping struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// knownKinds maps the kinds Ferry reads and applies without asking the
// server. Their plurals and scopes are fixed by the CRDs (a test checks the
// table against testdata/crds and the real API server's discovery), and a
// discovery round trip per run would cost more requests than the whole
// no-op apply. Whether the cluster serves a kind is told by its requests'
// 404s instead.
var knownKinds = map[schema.GroupVersionKind]mapping{
	reconcile.GVKCatalogSource:    {gvr("operators.coreos.com", "v1alpha1", "catalogsources"), true},
	reconcile.GVKSubscription:     {gvr("operators.coreos.com", "v1alpha1", "subscriptions"), true},
	reconcile.GVKCSV:              {gvr("operators.coreos.com", "v1alpha1", "clusterserviceversions"), true},
	reconcile.GVKClusterCatalog:   {gvr("olm.operatorframework.io", "v1", "clustercatalogs"), false},
	reconcile.GVKClusterExtension: {gvr("olm.operatorframework.io", "v1", "clusterextensions"), false},
	reconcile.GVKIDMS:             {gvr("config.openshift.io", "v1", "imagedigestmirrorsets"), false},
	reconcile.GVKITMS:             {gvr("config.openshift.io", "v1", "imagetagmirrorsets"), false},
	reconcile.GVKICSP:             {gvr("operator.openshift.io", "v1alpha1", "imagecontentsourcepolicies"), false},
	reconcile.GVKSamplesConfig:    {gvr("samples.operator.openshift.io", "v1", "configs"), false},
	reconcile.GVKOperatorHub:      {gvr("config.openshift.io", "v1", "operatorhubs"), false},
	reconcile.GVKConfigMap:        {gvr("", "v1", "configmaps"), true},
	reconcile.GVKNamespace:        {gvr("", "v1", "namespaces"), false},
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// mapper answers from knownKinds, and for any other kind from the
// server's list of resources of the kind's group and version: one request
// per group/version, on first need, remembered for the client's life.
type mapper struct {
	known map[schema.GroupVersionKind]mapping
	// discover fetches /apis/GROUP/VERSION (or /api/v1); nil in tests that
	// use only known kinds.
	discover func(ctx context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error)

	mu   sync.Mutex
	seen map[schema.GroupVersion]*metav1.APIResourceList
}

func (m *mapper) mapping(ctx context.Context, gvk schema.GroupVersionKind) (mapping, error) {
	if mp, ok := m.known[gvk]; ok {
		return mp, nil
	}
	if m.discover == nil {
		return mapping{}, fmt.Errorf("%s: not a kind Ferry knows", kindString(gvk))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	gv := gvk.GroupVersion()
	list, ok := m.seen[gv]
	if !ok {
		var err error
		list, err = m.discover(ctx, gv)
		if apierrors.IsNotFound(err) {
			list, err = &metav1.APIResourceList{}, nil
		}
		if err != nil {
			return mapping{}, fmt.Errorf("discover %s: %w", gv, err)
		}
		if m.seen == nil {
			m.seen = map[schema.GroupVersion]*metav1.APIResourceList{}
		}
		m.seen[gv] = list
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			return mapping{gvr: gv.WithResource(r.Name), namespaced: r.Namespaced}, nil
		}
	}
	return mapping{}, fmt.Errorf("%s: %w", kindString(gvk), reconcile.ErrNotServed)
}

// discoverWith returns a discover function that asks the server with c.
func discoverWith(c rest.Interface) func(context.Context, schema.GroupVersion) (*metav1.APIResourceList, error) {
	return func(ctx context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error) {
		path := "/apis/" + gv.Group + "/" + gv.Version
		if gv.Group == "" {
			path = "/api/" + gv.Version
		}
		raw, err := c.Get().AbsPath(path).Do(ctx).Raw()
		if err != nil {
			return nil, err
		}
		list := &metav1.APIResourceList{}
		if err := json.Unmarshal(raw, list); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		return list, nil
	}
}

// kindString is "Kind.group/version", how errors name a kind.
func kindString(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Kind + "/" + gvk.Version
	}
	return gvk.Kind + "." + gvk.Group + "/" + gvk.Version
}
