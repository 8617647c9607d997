package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types, as kstatus reads them: Ready is the summary; while
// Reconciling is True the object is in progress; Stalled True means it
// will not progress without a change of desired state.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Condition reasons.
const (
	ReasonSucceeded         = "Succeeded"
	ReasonProgressing       = "Progressing"
	ReasonFailed            = "ReconcileFailed"
	ReasonSourceUnavailable = "SourceUnavailable"
	ReasonStandby           = "Standby"
	ReasonStarting          = "Starting"
)

// Status is what the daemon last did, published where an administrator
// looks without reading logs: the ferry-status ConfigMap (and Events) in a
// cluster, a status file otherwise. `ferry status` prints it.
type Status struct {
	// Conditions are Ready, Reconciling and Stalled, as metav1.Condition
	// (the shape kstatus and `kubectl wait --for=condition=Ready` read).
	Conditions []metav1.Condition `json:"conditions"`
	// Source describes the source (a directory, a repository URL without
	// credentials).
	Source string `json:"source,omitempty"`
	// LastAppliedRevision is the source revision of the last successful
	// reconcile; LastAttemptedRevision that of the last attempt.
	LastAppliedRevision   string `json:"lastAppliedRevision,omitempty"`
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// LastReconcileTime is when the last reconcile ended (any result);
	// LastSuccessTime when the last successful one did.
	LastReconcileTime *metav1.Time `json:"lastReconcileTime,omitempty"`
	LastSuccessTime   *metav1.Time `json:"lastSuccessTime,omitempty"`
	// LastDuration is how long the last reconcile took.
	LastDuration string `json:"lastDuration,omitempty"`
	// LastResult is the last reconcile's one-line summary.
	LastResult string `json:"lastResult,omitempty"`
	// LastError is the last failure, credentials redacted; cleared by a
	// success.
	LastError string `json:"lastError,omitempty"`
	// Failures counts failures since the last success; NextRetry is when
	// the next attempt is due.
	Failures  int          `json:"failures,omitempty"`
	NextRetry *metav1.Time `json:"nextRetry,omitempty"`
	// Role is "leader" or "standby" (or "single" without leader
	// election); Identity names this replica.
	Role     string `json:"role,omitempty"`
	Identity string `json:"identity,omitempty"`
	// Catalogs are the catalogs served after the last reconcile.
	Catalogs []CatalogState `json:"catalogs,omitempty"`
}

// Condition returns the condition of type t, nil when absent.
func (s *Status) Condition(t string) *metav1.Condition {
	return meta.FindStatusCondition(s.Conditions, t)
}

func (s *Status) set(t string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: message,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// Event is a transition worth telling an administrator about
// (`kubectl get events`): a new revision applied, a failure, a recovery.
type Event struct {
	// Warning is set for failures; otherwise the event is Normal.
	Warning bool
	Reason  string
	Message string
}

// StatusSink receives the daemon's status after every change.
type StatusSink interface {
	// Record stores st, replacing the previous status.
	Record(ctx context.Context, st Status) error
	// Event notes a transition; sinks without events ignore it.
	Event(ctx context.Context, e Event)
}

// FileSink writes the status as JSON to a file (replaced atomically), for
// a daemon outside a cluster.
type FileSink struct {
	Path string
}

var _ StatusSink = FileSink{}

// Record implements StatusSink.
func (f FileSink) Record(_ context.Context, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return err
	}
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}

// Event implements StatusSink: the file holds the status only.
func (FileSink) Event(context.Context, Event) {}

// ReadStatusFile reads a status FileSink wrote.
func ReadStatusFile(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}

// DefaultStatusFile is where `ferry run DIR` keeps its status outside a
// cluster, and where `ferry status DIR` looks: one file per spec
// directory under the cache directory.
func DefaultStatusFile(cacheDir, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	if cacheDir == "" {
		cacheDir = filepath.Join(os.TempDir(), "ferry")
	}
	return filepath.Join(cacheDir, "status", hashName(abs)+".json"), nil
}
