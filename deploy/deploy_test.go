package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/ferry-gitops/ferry/internal/cli"
	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/kube"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// build renders an overlay with kustomize's own library.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
	return objs
}

type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newApplier(t *testing.T, k *testenv.Kube) *applier {
	dc, err := discovery.NewDiscoveryClientForConfig(k.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: k.Dynamic(), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// apply server-side applies obj, as a dry run when dryRun.
func (a *applier) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: "ferry-deploy-test", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var r dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		r = a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	_, err = r.Apply(ctx, obj.GetName(), obj, opts)
	return err
}

func ensureNamespace(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestOverlaysApply builds both overlays with kustomize and applies every
// object to the real API server with a server-side dry run (the API
// server's validation, defaulting and admission, including the restricted
// Pod Security Standard the namespace enforces); the standalone overlay is
// then applied for real and its service account is shown to be able to do
// exactly what the daemon does, and not more.
func TestOverlaysApply(t *testing.T) {
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
	k := testenv.SharedKube(t)
	client, err := kubernetes.NewForConfig(k.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Namespaces a dry run cannot create for the objects in them.
	ensureNamespace(t, client, "ferry-system")
	ensureNamespace(t, client, "openshift-cluster-samples-operator")
	a := newApplier(t, k)
	for _, overlay := range []string{"overlays/standalone", "overlays/sidecar"} {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, overlay)
			kinds := map[string]bool{}
			for _, o := range objs {
				kinds[o.GetKind()] = true
				if err := a.apply(t.Context(), o, true); err != nil {
					t.Errorf("dry-run apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
			for _, want := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"} {
				if !kinds[want] {
					t.Errorf("%s lacks a %s", overlay, want)
				}
			}
			dep := find(t, objs, "Deployment", "ferry")
			args, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			c := args[0].(map[string]any)
			joined := strings.Join(toStrings(c["args"]), " ")
			sidecar := strings.Contains(joined, "--apply=false")
			if sidecar != (overlay == "overlays/sidecar") {
				t.Errorf("%s: args %s", overlay, joined)
			}
			if _, ok := kindsByName(objs)["ClusterRole/ferry-cluster-step"]; ok == sidecar {
				t.Errorf("%s: cluster-step ClusterRole present=%v", overlay, ok)
			}
			// Deployments only warn about Pod Security; the Pod its
			// template makes must pass the namespace's restricted level.
			tmpl, _, _ := unstructured.NestedMap(dep.Object, "spec", "template")
			pod := &unstructured.Unstructured{Object: tmpl}
			pod.SetAPIVersion("v1")
			pod.SetKind("Pod")
			pod.SetName("ferry-pss-check")
			pod.SetNamespace(dep.GetNamespace())
			if err := a.apply(t.Context(), pod, true); err != nil {
				t.Errorf("the Deployment's pod is refused in the restricted namespace: %v", err)
			}
			sc, _, _ := unstructured.NestedMap(c, "securityContext")
			if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsNonRoot"] != true {
				t.Errorf("container securityContext %v", sc)
			}
		})
	}

	// For real: the standalone overlay, then the daemon's own kube work
	// as its service account.
	for _, o := range build(t, "overlays/standalone") {
		if err := a.apply(t.Context(), o, false); err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	sa := k.RESTConfig()
	sa.Impersonate.UserName = "system:serviceaccount:ferry-system:ferry"
	saClient, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	sink := &kube.StatusSink{Client: saClient, Namespace: "ferry-system", Name: kube.DefaultStatusName}
	defer sink.Shutdown()
	el := &kube.Elector{Client: saClient, Namespace: "ferry-system", Name: "ferry-leader", Identity: "deploy-test",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var recordErr error
	err = el.Campaign(ctx, func(lctx context.Context) {
		st := daemon.Status{Role: "leader", Identity: "deploy-test"}
		if recordErr = sink.Record(lctx, st); recordErr == nil {
			recordErr = sink.Record(lctx, st) // the update path too
		}
		sink.Event(lctx, daemon.Event{Reason: "ReconcileSucceeded", Message: "deploy test"})
		cancel()
	})
	if err != nil || recordErr != nil {
		t.Fatalf("as the service account: campaign %v, status %v", err, recordErr)
	}
	if _, err := kube.ReadStatus(t.Context(), saClient, "ferry-system", kube.DefaultStatusName); err != nil {
		t.Errorf("ferry status as the service account: %v", err)
	}
	for _, tc := range []struct {
		ns, group, resource, verb, name string
		allowed                         bool
	}{
		{"", "operators.coreos.com", "catalogsources", "patch", "", true},
		{"", "operators.coreos.com", "catalogsources", "delete", "", true},
		{"", "config.openshift.io", "imagedigestmirrorsets", "list", "", true},
		{"", "operator.openshift.io", "imagecontentsourcepolicies", "patch", "", true},
		{"", "samples.operator.openshift.io", "configs", "patch", "", true},
		{"", "olm.operatorframework.io", "clustercatalogs", "patch", "", true},
		{"openshift-cluster-samples-operator", "", "configmaps", "get", "imagestreamtag-to-image", true},
		// Least privilege: workloads are read only, nothing else is
		// reachable.
		{"", "operators.coreos.com", "subscriptions", "patch", "", false},
		{"", "olm.operatorframework.io", "clusterextensions", "delete", "", false},
		{"ferry-system", "", "secrets", "get", "ferry-git", false},
		{"ferry-system", "", "configmaps", "patch", "ferry-config", false},
		{"openshift-cluster-samples-operator", "", "configmaps", "get", "other", false},
		{"", "", "namespaces", "create", "", false},
		{"", "operators.coreos.com", "catalogsources", "watch", "", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   sa.Impersonate.UserName,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ferry-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: tc.ns, Group: tc.group, Resource: tc.resource, Verb: tc.verb, Name: tc.name,
			},
		}}
		got, err := client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.allowed {
			t.Errorf("%s %s.%s %s in %q: allowed=%v, want %v", tc.verb, tc.resource, tc.group, tc.name, tc.ns, got.Status.Allowed, tc.allowed)
		}
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s/%s", kind, name)
	return nil
}

func kindsByName(objs []*unstructured.Unstructured) map[string]bool {
	m := map[string]bool{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = true
	}
	return m
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestDeploymentArgsAreFerryFlags parses the container's arguments in both
// overlays with ferry run's own flag set, $(VAR) expanded from the
// ConfigMap the Deployment reads, so a renamed or mistyped flag fails here
// rather than in a crash-looping pod; and checks the credential flags name
// files the Deployment mounts.
func TestDeploymentArgsAreFerryFlags(t *testing.T) {
	for _, overlay := range []string{"overlays/standalone", "overlays/sidecar"} {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, overlay)
			cm := find(t, objs, "ConfigMap", "ferry-config")
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			dep := find(t, objs, "Deployment", "ferry")
			containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			c := containers[0].(map[string]any)
			env := map[string]string{}
			for _, e := range c["env"].([]any) {
				e := e.(map[string]any)
				name := e["name"].(string)
				if key, ok, _ := unstructured.NestedString(e, "valueFrom", "configMapKeyRef", "key"); ok {
					env[name] = data[key]
				} else if v, ok := e["value"].(string); ok {
					env[name] = v
				}
			}
			args := toStrings(c["args"])
			for i, a := range args {
				args[i] = os.Expand(strings.NewReplacer("$(", "${", ")", "}").Replace(a), func(k string) string { return env[k] })
			}
			root := cli.NewRoot()
			run, rest, err := root.Find(args)
			if err != nil || run.Name() != "run" {
				t.Fatalf("args %v do not name ferry run: %v", args, err)
			}
			if err := run.ParseFlags(rest); err != nil {
				t.Fatalf("ferry run does not accept the Deployment's args: %v\n%v", err, args)
			}
			if r := run.Flags().Lookup("repo"); r == nil || r.Value.String() != data["repo"] {
				t.Errorf("--repo is not the ConfigMap's repo: %v", r)
			}
			mounts := map[string]bool{}
			for _, m := range c["volumeMounts"].([]any) {
				mounts[m.(map[string]any)["mountPath"].(string)] = true
			}
			for _, name := range []string{"git-secret-dir", "registry-config", "webhook-secret-file", "cache-dir"} {
				v := run.Flags().Lookup(name).Value.String()
				if v == "" || !mounts[v] && !mounts[path.Dir(v)] {
					t.Errorf("--%s=%q is not a mounted path", name, v)
				}
			}
		})
	}
}
