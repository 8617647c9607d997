// Package kube is the daemon's Kubernetes side: leader election with a
// coordination.k8s.io Lease (client-go's leaderelection), the status
// published to a ConfigMap with Events on transitions (client-go's
// record), and reading that status back for `ferry status`.
package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/daemon"
)

// StatusKey is the ConfigMap key holding the status, as YAML.
const StatusKey = "status.yaml"

// DefaultStatusName is the status ConfigMap's default name.
const DefaultStatusName = "ferry-status"

// FieldManager is who the status ConfigMap is applied as.
const FieldManager = "ferry"

// Config returns a client configuration: the kubeconfig file when one is
// named, else the in-cluster service account, else the usual kubeconfig
// loading rules ($KUBECONFIG, ~/.kube/config) with context.
func Config(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
}

// InCluster reports whether this process runs in a pod.
func InCluster() bool { return os.Getenv("KUBERNETES_SERVICE_HOST") != "" }

// Namespace is this pod's namespace ($POD_NAMESPACE, else the service
// account's), "" outside a cluster.
func Namespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Identity names this replica for the Lease: the pod name (hostname) and
// a random suffix, as controller-runtime does, so a restarted pod with the
// same name is a new holder.
func Identity() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "ferry"
	}
	return h + "_" + metav1.Now().Format("150405.000000")
}

// Elector campaigns for a Lease. Timings default to controller-runtime's
// (15 s lease, 10 s renew deadline, 2 s retry).
type Elector struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Identity  string
	// LeaseDuration, RenewDeadline, RetryPeriod as client-go's
	// LeaderElectionConfig.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnNewLeader, when set, is told who leads (including this replica).
	OnNewLeader func(identity string)
}

var _ daemon.Elector = (*Elector)(nil)

// ErrLeadershipLost is returned by Campaign when this replica stopped
// leading without being asked to.
var ErrLeadershipLost = errors.New("leader lease lost")

// Campaign implements daemon.Elector. The lease is released when ctx ends
// (ReleaseOnCancel), so a standby takes over within its retry period
// instead of waiting for the lease to expire.
func (e *Elector) Campaign(ctx context.Context, lead func(context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	cfg := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   or(e.LeaseDuration, 15*time.Second),
		RenewDeadline:   or(e.RenewDeadline, 10*time.Second),
		RetryPeriod:     or(e.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            e.Name,
	}
	// client-go starts OnStartedLeading in a goroutine of its own; the
	// loop runs here instead, so Campaign returns only after it has.
	leading := make(chan context.Context, 1)
	cfg.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(lctx context.Context) { leading <- lctx },
		OnStoppedLeading: func() {},
		OnNewLeader: func(id string) {
			if e.OnNewLeader != nil {
				e.OnNewLeader(id)
			}
		},
	}
	le, err := leaderelection.NewLeaderElector(cfg)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(ctx) // returns when ctx ends or the lease is lost
	}()
	led := false
	select {
	case lctx := <-leading:
		// lctx ends when Run stops leading (lease lost or ctx done).
		led = true
		lead(lctx)
		<-done
	case <-done:
	}
	if ctx.Err() != nil {
		return nil
	}
	if led {
		return ErrLeadershipLost
	}
	return errors.New("leader election stopped")
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// StatusSink publishes the status to a ConfigMap (server-side applied, one
// request per change) and transitions as Events on it.
type StatusSink struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string

	once        sync.Once
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	mu          sync.Mutex
	ref         *corev1.ObjectReference
}

var _ daemon.StatusSink = (*StatusSink)(nil)

// Record implements daemon.StatusSink.
func (s *StatusSink) Record(ctx context.Context, st daemon.Status) error {
	b, err := yaml.Marshal(st)
	if err != nil {
		return err
	}
	ready := "Unknown"
	if c := st.Condition(daemon.ConditionReady); c != nil {
		ready = string(c.Status)
	}
	cm := corev1ac.ConfigMap(s.Name, s.Namespace).
		WithLabels(map[string]string{"app.kubernetes.io/name": "ferry", "app.kubernetes.io/component": "status"}).
		WithAnnotations(map[string]string{"ferry.dev/ready": ready}).
		WithData(map[string]string{StatusKey: string(b)})
	got, err := s.Client.CoreV1().ConfigMaps(s.Namespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply ConfigMap %s/%s: %w", s.Namespace, s.Name, err)
	}
	s.mu.Lock()
	s.ref = &corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: got.Namespace, Name: got.Name, UID: got.UID, ResourceVersion: got.ResourceVersion}
	s.mu.Unlock()
	return nil
}

// Event implements daemon.StatusSink: an Event on the status ConfigMap
// (`kubectl describe configmap ferry-status`, `kubectl get events`).
func (s *StatusSink) Event(_ context.Context, e daemon.Event) {
	s.once.Do(func() {
		s.broadcaster = record.NewBroadcaster()
		s.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.Client.CoreV1().Events(s.Namespace)})
		s.recorder = s.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ferry"})
	})
	s.mu.Lock()
	ref := s.ref
	s.mu.Unlock()
	if ref == nil {
		return // the ConfigMap is not there yet: nothing to attach it to
	}
	typ := corev1.EventTypeNormal
	if e.Warning {
		typ = corev1.EventTypeWarning
	}
	s.recorder.Event(ref, typ, e.Reason, e.Message)
}

// Shutdown flushes and stops the event broadcaster.
func (s *StatusSink) Shutdown() {
	if s.broadcaster != nil {
		s.broadcaster.Shutdown()
	}
}

// ReadStatus reads the status from the ConfigMap.
func ReadStatus(ctx context.Context, client kubernetes.Interface, namespace, name string) (*daemon.Status, error) {
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	raw, ok := cm.Data[StatusKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s has no %s: not Ferry's status", namespace, name, StatusKey)
	}
	var st daemon.Status
	if err := yaml.UnmarshalStrict([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %s: %w", namespace, name, StatusKey, err)
	}
	return &st, nil
}
