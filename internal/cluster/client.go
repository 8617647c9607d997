package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/ferry-gitops/ferry/reconcile"
)

// Client is reconcile.Cluster on client-go's dynamic client. It is safe for
// concurrent use: a caller may apply the objects of one step in parallel.
type Client struct {
	dyn    dynamic.Interface
	mapper *mapper
	redact *redactor
	count  *counters
	policy RetryPolicy
	source string
	host   string
	// listChunk is the LIST page size (listChunk; tests lower it).
	listChunk int64
}

var _ reconcile.Cluster = (*Client)(nil)

// listChunk is the page size of a LIST, kubectl's: every kind Ferry lists
// fits one page in any cluster it serves, and a cluster with thousands of
// CSVs is read in pages rather than in one answer of hundreds of megabytes.
const listChunk = 500

// New connects to the cluster opts describe (see Options for the rules).
// No request is sent until the first call. An error wrapping ErrNoConfig
// means no cluster is configured at all.
func New(opts Options) (*Client, error) {
	cfg, source, err := loadConfig(opts)
	if err != nil {
		return nil, err
	}
	red := newRedactor(cfg)
	policy := opts.Retry.withDefaults()
	count := &counters{}
	cfg.UserAgent = opts.UserAgent
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ferry"
	}
	if cfg.QPS == 0 {
		// client-go's default (5/s, bursts of 10) would throttle the apply
		// of a few dozen objects; kubectl raises it the same way.
		cfg.QPS, cfg.Burst = 50, 100
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &retryTransport{next: rt, policy: policy, count: count, log: opts.Log, redact: red}
	})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, red.err(fmt.Errorf("cluster client: %w", err))
	}
	raw, err := rest.UnversionedRESTClientFor(discoveryConfig(cfg))
	if err != nil {
		return nil, red.err(fmt.Errorf("cluster client: %w", err))
	}
	return &Client{
		dyn:       dyn,
		mapper:    &mapper{known: knownKinds, discover: discoverWith(raw)},
		redact:    red,
		count:     count,
		policy:    policy,
		source:    source,
		host:      red.text(cfg.Host),
		listChunk: listChunk,
	}, nil
}

// discoveryConfig is cfg set up for the plain JSON GETs of discovery.
func discoveryConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = nil
	c.APIPath = ""
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"}) // for Status errors
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	return c
}

// newForDynamic wraps a dynamic client (client-go's fake, in tests).
func newForDynamic(dyn dynamic.Interface, policy RetryPolicy) *Client {
	return &Client{
		dyn:       dyn,
		mapper:    &mapper{known: knownKinds},
		redact:    &redactor{},
		count:     &counters{},
		policy:    policy.withDefaults(),
		listChunk: listChunk,
	}
}

// Source says where the cluster access came from, e.g. `context "prod" of
// /home/me/.kube/config` or "in-cluster service account".
func (c *Client) Source() string { return c.source }

// Host is the API server URL (userinfo removed).
func (c *Client) Host() string { return c.host }

// Stats returns the requests sent so far.
func (c *Client) Stats() Stats { return c.count.snapshot() }

// List implements reconcile.Cluster.
func (c *Client) List(ctx context.Context, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	m, err := c.mapper.mapping(ctx, gvk)
	if err != nil {
		return nil, c.redact.err(err)
	}
	var out []*unstructured.Unstructured
	opts := metav1.ListOptions{Limit: c.listChunk}
	for {
		l, err := c.dyn.Resource(m.gvr).List(ctx, opts)
		if apierrors.IsNotFound(err) {
			return nil, c.redact.err(fmt.Errorf("list %s: %w", kindString(gvk), reconcile.ErrNotServed))
		}
		if err != nil {
			return nil, c.redact.err(fmt.Errorf("list %s: %w", kindString(gvk), err))
		}
		for i := range l.Items {
			item := &l.Items[i]
			if item.GetKind() == "" {
				item.SetGroupVersionKind(gvk)
			}
			out = append(out, item)
		}
		if l.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = l.GetContinue()
	}
}

// Get implements reconcile.Cluster.
func (c *Client) Get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	m, err := c.mapper.mapping(ctx, gvk)
	if err != nil {
		return nil, c.redact.err(err)
	}
	what := objectName(gvk.Kind, namespace, name)
	ri, err := c.resource(m, what, namespace)
	if err != nil {
		return nil, err
	}
	obj, err := ri.Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		return obj, nil
	case apierrors.IsNotFound(err) && resourceMissing(err):
		return nil, c.redact.err(fmt.Errorf("get %s: %w", what, reconcile.ErrNotServed))
	case apierrors.IsNotFound(err):
		return nil, c.redact.err(fmt.Errorf("get %s: %w", what, reconcile.ErrNotFound))
	}
	return nil, c.redact.err(fmt.Errorf("get %s: %w", what, err))
}

// Apply implements reconcile.Cluster.
func (c *Client) Apply(ctx context.Context, desired *unstructured.Unstructured, force bool) (*unstructured.Unstructured, error) {
	return c.apply(ctx, desired, force, false)
}

// Delete implements reconcile.Cluster. The UID precondition makes the
// server refuse when the object was deleted and created again since it
// was read: that is a different object, which Ferry did not decide to
// delete. An object already gone is not an error.
func (c *Client) Delete(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	what := objectName(gvk.Kind, obj.GetNamespace(), obj.GetName())
	uid := obj.GetUID()
	if uid == "" {
		return fmt.Errorf("delete %s: no metadata.uid: only an object read from the cluster can be deleted", what)
	}
	m, err := c.mapper.mapping(ctx, gvk)
	if err != nil {
		return c.redact.err(err)
	}
	ri, err := c.resource(m, what, obj.GetNamespace())
	if err != nil {
		return err
	}
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err) && resourceMissing(err):
		return c.redact.err(fmt.Errorf("delete %s: %w", what, reconcile.ErrNotServed))
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return c.redact.err(fmt.Errorf("delete %s: refused: it is no longer the object read (UID %s): %w", what, uid, err))
	}
	return c.redact.err(fmt.Errorf("delete %s: %w", what, err))
}

// apply sends one server-side apply, again after an optimistic-concurrency
// 409 (another writer got in between; SSA has no resourceVersion to go
// stale, so sending the same intent again is right), never after a field
// conflict.
func (c *Client) apply(ctx context.Context, desired *unstructured.Unstructured, force, dryRun bool) (*unstructured.Unstructured, error) {
	gvk := desired.GroupVersionKind()
	what := objectName(gvk.Kind, desired.GetNamespace(), desired.GetName())
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("apply %s: no apiVersion or kind", what)
	}
	if desired.GetName() == "" {
		return nil, fmt.Errorf("apply %s: no metadata.name", what)
	}
	m, err := c.mapper.mapping(ctx, gvk)
	if err != nil {
		return nil, c.redact.err(fmt.Errorf("apply %s: %w", what, err))
	}
	ri, err := c.resource(m, what, desired.GetNamespace())
	if err != nil {
		return nil, err
	}
	obj := applyConfig(desired)
	opts := metav1.ApplyOptions{FieldManager: reconcile.FieldManager, Force: force}
	verb := "apply"
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
		verb = "dry-run apply"
	}
	for attempt := 1; ; attempt++ {
		out, err := ri.Apply(ctx, desired.GetName(), obj, opts)
		if err == nil {
			return out, nil
		}
		if ce := conflictError(err, what); ce != nil {
			return nil, ce
		}
		if apierrors.IsConflict(err) && attempt < c.policy.Attempts {
			c.count.retry()
			if err := sleep(ctx, c.policy.backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		if apierrors.IsNotFound(err) && resourceMissing(err) {
			return nil, c.redact.err(fmt.Errorf("%s %s: %w", verb, what, reconcile.ErrNotServed))
		}
		return nil, c.redact.err(fmt.Errorf("%s %s: %w", verb, what, err))
	}
}

// applyConfig is desired without the fields the server owns: an apply
// carrying a resourceVersion would be refused once the object moves on,
// and one carrying managedFields is refused outright.
func applyConfig(desired *unstructured.Unstructured) *unstructured.Unstructured {
	obj := desired.DeepCopy()
	md, ok := obj.Object["metadata"].(map[string]any)
	if !ok {
		return obj
	}
	for _, f := range serverMetadata {
		delete(md, f)
	}
	return obj
}

// serverMetadata are the metadata fields the API server sets and field
// management ignores (apimachinery's stripMeta set, name and namespace
// aside).
var serverMetadata = []string{"creationTimestamp", "selfLink", "uid", "clusterName", "generation", "managedFields", "resourceVersion"}

func (c *Client) resource(m mapping, what, namespace string) (dynamic.ResourceInterface, error) {
	switch {
	case m.namespaced && namespace == "":
		return nil, fmt.Errorf("%s: no metadata.namespace, and %s is namespaced", what, m.gvr.Resource)
	case !m.namespaced && namespace != "":
		return nil, fmt.Errorf("%s: metadata.namespace is set, but %s is cluster-scoped", what, m.gvr.Resource)
	case m.namespaced:
		return c.dyn.Resource(m.gvr).Namespace(namespace), nil
	}
	return c.dyn.Resource(m.gvr), nil
}

// resourceMissing tells a 404 for an unserved resource (the server does not
// know the URL; no object name in the status) from one for a missing object.
func resourceMissing(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d == nil || d.Name == ""
}

// conflictError turns an apply conflict (409 with FieldManagerConflict
// causes) into a *reconcile.ConflictError, or returns nil.
func conflictError(err error, what string) *reconcile.ConflictError {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return nil
	}
	s := st.Status()
	if s.Code != http.StatusConflict || s.Details == nil {
		return nil
	}
	ce := &reconcile.ConflictError{Object: what}
	for _, cause := range s.Details.Causes {
		if cause.Type == metav1.CauseTypeFieldManagerConflict {
			ce.Fields = append(ce.Fields, reconcile.FieldConflict{Field: cause.Field, Manager: conflictManager(cause.Message)})
		}
	}
	if len(ce.Fields) == 0 {
		return nil
	}
	sortConflicts(ce.Fields)
	return ce
}

// conflictManager reads the manager's name from a cause message, which the
// API server writes as `conflict with "NAME"`, optionally followed by
// ` with subresource "status"` and ` using v1` or ` using v1 at TIME`. An
// unexpected shape is kept whole rather than guessed at.
func conflictManager(msg string) string {
	rest, ok := strings.CutPrefix(msg, "conflict with ")
	if !ok {
		return msg
	}
	quoted, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return msg
	}
	name, err := strconv.Unquote(quoted)
	if err != nil {
		return msg
	}
	return name
}

func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
