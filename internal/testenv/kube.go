package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Kube is a running kube-apiserver backed by its own etcd, with Ferry's
// real CRDs installed. It is an API server only: no controller manager,
// scheduler or kubelet runs, so nothing reacts to objects (no garbage
// collection, no default service accounts, deleted namespaces stay
// Terminating). That is what Ferry's reconciler needs: real validation,
// defaulting, RBAC and server-side apply.
type Kube struct {
	// Host is the API server URL, "https://127.0.0.1:PORT".
	Host string
	// Kubeconfig is the path of a kubeconfig for the admin user, for code
	// and tools that load one (kubectl --kubeconfig, clientcmd).
	Kubeconfig string
	// Dir holds the certificates, etcd data and both servers' logs.
	Dir string
	// AuditLog is the API server's audit log: one JSON event per request,
	// written before the response is sent (see AuditEvents).
	AuditLog string

	config  *rest.Config
	dynamic dynamic.Interface
}

// RESTConfig returns a copy of the admin config (bearer token of a user in
// system:masters); a copy, so a test may change it freely.
func (k *Kube) RESTConfig() *rest.Config {
	return rest.CopyConfig(k.config)
}

// Dynamic returns a dynamic client for the admin user. Ferry's own CRD
// types are not compiled in, so unstructured objects are the common currency.
func (k *Kube) Dynamic() dynamic.Interface {
	return k.dynamic
}

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// NewNamespace creates a namespace named after the test plus a random
// suffix and returns its name. Tests sharing one API server (SharedKube)
// stay apart by working in their own namespace. It is not deleted: without
// a namespace controller deletion never completes, and the server dies with
// the test binary anyway.
func (k *Kube) NewNamespace(t testing.TB) string {
	t.Helper()
	name := namespaceName(t.Name())
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name},
	}}
	if _, err := k.dynamic.Resource(namespaceGVR).Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

func namespaceName(testName string) string {
	base := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	return base + "-" + strings.ToLower(rand.Text()[:8])
}

// StartKube starts etcd and kube-apiserver for this test alone and installs
// the CRDs from testdata/crds. It takes seconds; tests that can share a
// server should use SharedKube.
func StartKube(t testing.TB) *Kube {
	t.Helper()
	k, err := startKube(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startKube(lc lifecycle, dir string) (*Kube, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	etcdBin, err := toolPath("etcd")
	if err != nil {
		return nil, err
	}
	apiserverBin, err := toolPath("kube-apiserver")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	pki, err := writeKubePKI(dir)
	if err != nil {
		return nil, fmt.Errorf("kube pki: %w", err)
	}
	etcdURL, err := startEtcd(lc, dir, etcdBin)
	if err != nil {
		return nil, err
	}
	etcdReady := time.Now()
	k := &Kube{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := k.startAPIServer(lc, apiserverBin, etcdURL, pki); err != nil {
		return nil, err
	}
	apiReady := time.Now()
	settle, err := k.installCRDs(filepath.Join(root, "testdata", "crds"))
	if err != nil {
		return nil, err
	}
	lc.Logf("testenv: kube ready in %s (etcd %s, kube-apiserver %s, CRDs %s established + %s settling)",
		time.Since(start).Round(time.Millisecond), etcdReady.Sub(start).Round(time.Millisecond),
		apiReady.Sub(etcdReady).Round(time.Millisecond), (time.Since(apiReady) - settle).Round(time.Millisecond),
		settle.Round(time.Millisecond))
	return k, nil
}

func startEtcd(lc lifecycle, dir, bin string) (string, error) {
	logPath := filepath.Join(dir, "etcd.log")
	for attempt := 1; ; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return "", err
		}
		peerPort, err := freePort()
		if err != nil {
			return "", err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		dataDir := filepath.Join(dir, "etcd-"+strconv.Itoa(attempt))
		p, err := startProcess(lc, "etcd", logPath, nil, bin,
			"--name=ferry",
			"--data-dir="+dataDir,
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=ferry="+peerURL,
			// The data is thrown away with the test; fsync would only make
			// startup and every write slower.
			"--unsafe-no-fsync=true",
			// A single member elects itself once the election timeout
			// passes; the 1 s default is most of etcd's startup. Nothing
			// can take leadership from a lone member, so short is safe.
			"--heartbeat-interval=10",
			"--election-timeout=100",
			"--log-level=warn",
		)
		if err != nil {
			return "", err
		}
		err = p.waitReady(30*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, http.DefaultClient, clientURL+"/health", `"health":"true"`)
		})
		if err == nil {
			return clientURL, nil
		}
		if attempt < portAttempts && lostPortRace(err, logPath) {
			continue
		}
		return "", err
	}
}

func (k *Kube) startAPIServer(lc lifecycle, bin, etcdURL string, pki *kubePKI) error {
	token := rand.Text()
	tokenFile := filepath.Join(k.Dir, "tokens.csv")
	// The admin is in system:masters, which RBAC lets do anything; other
	// users can be added to RBAC tests without weakening this one.
	if err := os.WriteFile(tokenFile, []byte(token+`,ferry-admin,ferry-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	auditPolicy := filepath.Join(k.Dir, "audit-policy.yaml")
	if err := os.WriteFile(auditPolicy, []byte(auditPolicyYAML), 0o644); err != nil {
		return fmt.Errorf("write audit policy: %w", err)
	}
	k.AuditLog = filepath.Join(k.Dir, "audit.log")
	logPath := filepath.Join(k.Dir, "kube-apiserver.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		k.Host = "https://127.0.0.1:" + strconv.Itoa(port)
		p, err := startProcess(lc, "kube-apiserver", logPath, nil, bin,
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(port),
			"--cert-dir="+k.Dir,
			"--tls-cert-file="+pki.certFile,
			"--tls-private-key-file="+pki.keyFile,
			"--client-ca-file="+pki.caFile,
			"--token-auth-file="+tokenFile,
			"--authorization-mode=RBAC",
			"--service-cluster-ip-range=10.0.0.0/24",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file="+pki.saPublicFile,
			"--service-account-signing-key-file="+pki.saKeyFile,
			// No controller manager creates default service accounts, so the
			// admission plugin would reject every pod.
			"--disable-admission-plugins=ServiceAccount",
			// Nothing in-cluster needs the kubernetes service's endpoints,
			// and a loopback address is not valid in one.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
			// Every request is logged at Metadata level (verb, resource,
			// name, URI, user; no bodies, so no secrets), synchronously: in
			// blocking mode an event is on disk before its response is
			// sent, so a test reads what it just did (AuditEvents).
			"--audit-policy-file="+auditPolicy,
			"--audit-log-path="+k.AuditLog,
			"--audit-log-mode=blocking",
			"--audit-log-format=json",
			"--v=1",
		)
		if err != nil {
			return err
		}
		k.config = &rest.Config{
			Host:            k.Host,
			BearerToken:     token,
			TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM},
			// Tests create objects in bursts; client-side throttling would
			// only slow them down against a private server.
			QPS:   200,
			Burst: 400,
		}
		client, err := rest.HTTPClientFor(k.config)
		if err != nil {
			return fmt.Errorf("kube client: %w", err)
		}
		err = p.waitReady(90*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, client, k.Host+"/readyz", "ok")
		})
		if err == nil {
			break
		}
		if attempt < portAttempts && lostPortRace(err, logPath) {
			continue
		}
		return err
	}
	dyn, err := dynamic.NewForConfig(k.config)
	if err != nil {
		return fmt.Errorf("kube dynamic client: %w", err)
	}
	k.dynamic = dyn
	return k.writeKubeconfig(token, pki.caPEM)
}

func (k *Kube) writeKubeconfig(token string, caPEM []byte) error {
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ferry-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: ferry-admin
  user:
    token: %s
contexts:
- name: ferry-test
  context:
    cluster: ferry-test
    user: ferry-admin
current-context: ferry-test
`, k.Host, base64.StdEncoding.EncodeToString(caPEM), token)
	if err := os.WriteFile(k.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates every CRD file directly in dir (subdirectories hold
// other test data) and waits until all are Established, because a custom
// resource created before that is refused.
func (k *Kube) installCRDs(dir string) (settle time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("install CRDs: %w", err)
	}
	var crds []*unstructured.Unstructured
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, fmt.Errorf("install CRDs: %w", err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return 0, fmt.Errorf("install CRD %s: %w", e.Name(), err)
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			return 0, fmt.Errorf("install CRD %s: kind is %q", e.Name(), obj.GetKind())
		}
		crds = append(crds, obj)
	}
	if len(crds) == 0 {
		return 0, fmt.Errorf("install CRDs: no CRD files in %s", dir)
	}
	for _, crd := range crds {
		if _, err := k.dynamic.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			return 0, fmt.Errorf("install CRD %s: %w", crd.GetName(), err)
		}
	}
	var latest time.Time
	for _, crd := range crds {
		at, err := k.waitEstablished(ctx, crd.GetName())
		if err != nil {
			return 0, err
		}
		if at.After(latest) {
			latest = at
		}
	}
	// kube-apiserver holds every create of a custom resource for 2 s while
	// its CRD was Established less than 2 s ago (apiextensions-apiserver
	// customresource_handler.go, for HA servers that have not caught up).
	// Waiting out that window once here saves every test its first-create
	// stall. The condition time has one-second resolution and is rounded
	// down, so this never waits longer than the server would.
	settle = time.Until(latest.Add(2*time.Second + 100*time.Millisecond))
	time.Sleep(settle)
	return max(settle, 0), nil
}

// waitEstablished returns when the CRD's Established condition became true.
func (k *Kube) waitEstablished(ctx context.Context, name string) (time.Time, error) {
	for {
		crd, err := k.dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if at, ok := established(crd); ok {
				return at, nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("CRD %s not Established: %w (last get error: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) (time.Time, bool) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Established" || m["status"] != "True" {
			continue
		}
		// A missing or odd time means "now": the wait below then errs long.
		at, err := time.Parse(time.RFC3339, fmt.Sprint(m["lastTransitionTime"]))
		if err != nil {
			at = time.Now()
		}
		return at, true
	}
	return time.Time{}, false
}

// httpOK succeeds when GET url answers 200 with a body containing want.
func httpOK(ctx context.Context, client *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
