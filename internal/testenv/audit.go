package testenv

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// auditPolicyYAML logs every request at Metadata level. RequestReceived is
// left out so each request is one line (ResponseComplete, or
// ResponseStarted+ResponseComplete for a watch).
const auditPolicyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// AuditEvent is one request as the API server's audit log recorded it: the
// server's own account of what a client did, whatever the client believes.
type AuditEvent struct {
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	APIGroup    string
	Resource    string // plural: catalogsources
	Subresource string
	Namespace   string
	Name        string
	RequestURI  string
	// User is the impersonated user when there is one (see As), else the
	// authenticated one.
	User      string
	UserAgent string
	Code      int // the response status
}

// DryRun is true for a request sent with dryRun=All, which writes nothing.
func (e AuditEvent) DryRun() bool {
	u, err := url.ParseRequestURI(e.RequestURI)
	return err == nil && u.Query().Get("dryRun") != ""
}

// Write is true for a request that can change stored state: a create,
// update, patch or delete that is not a dry-run. A refused write (a
// conflict, an invalid object) still counts: the client tried.
func (e AuditEvent) Write() bool {
	switch e.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return !e.DryRun()
	}
	return false
}

// String reads like "patch catalogsources ns/name 200 dry-run".
func (e AuditEvent) String() string {
	target := e.Resource
	if e.Subresource != "" {
		target += "/" + e.Subresource
	}
	obj := e.Name
	if e.Namespace != "" {
		obj = e.Namespace + "/" + e.Name
	}
	s := fmt.Sprintf("%s %s %s %d", e.Verb, target, obj, e.Code)
	if e.DryRun() {
		s += " dry-run"
	}
	return strings.Join(strings.Fields(s), " ")
}

// AuditEvents is what AuditEvents returns, in the order the server logged
// the requests (for one client's sequential requests, the order it sent
// them).
type AuditEvents []AuditEvent

// By keeps the requests of one user (see As).
func (es AuditEvents) By(user string) AuditEvents {
	var out AuditEvents
	for _, e := range es {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}

// Writes keeps the requests that can change stored state (AuditEvent.Write).
func (es AuditEvents) Writes() AuditEvents {
	var out AuditEvents
	for _, e := range es {
		if e.Write() {
			out = append(out, e)
		}
	}
	return out
}

// Count counts the requests with this verb on this resource ("" matches any).
func (es AuditEvents) Count(verb, resource string) int {
	n := 0
	for _, e := range es {
		if (verb == "" || e.Verb == verb) && (resource == "" || e.Resource == resource) {
			n++
		}
	}
	return n
}

// Strings is each event's String, for test failure messages and golden
// comparisons of the order of requests.
func (es AuditEvents) Strings() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.String()
	}
	return out
}

// AuditMark is a position in the audit log: AuditEvents(t, mark) returns
// what was logged after it.
type AuditMark int64

// AuditMark returns the current end of the audit log. Take it right before
// the requests a test wants to see.
func (k *Kube) AuditMark(t testing.TB) AuditMark {
	t.Helper()
	fi, err := os.Stat(k.AuditLog)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	return AuditMark(fi.Size())
}

// AuditEvents returns every request logged since mark, by any user; use
// By(user) with a client from As to keep one test's own requests on a
// shared server.
//
// The server writes an event before sending the response (blocking audit
// mode), so a request the caller has seen answered is already in the file.
// AuditEvents does not rely on that alone: it sends a sentinel request and
// reads until the sentinel's event is there, so it also sees requests whose
// answer the client dropped. The sentinel is not returned.
func (k *Kube) AuditEvents(t testing.TB, since AuditMark) AuditEvents {
	t.Helper()
	sentinel := "ferry-audit-sentinel-" + strings.ToLower(rand.Text()[:12])
	// A GET of a namespace that does not exist: a 404, harmless and cheap.
	_, _ = k.dynamic.Resource(namespaceGVR).Get(t.Context(), sentinel, metav1.GetOptions{})
	var events AuditEvents
	for deadline := time.Now().Add(30 * time.Second); ; {
		var found bool
		var err error
		events, found, err = readAudit(k.AuditLog, int64(since), sentinel)
		if err != nil {
			t.Fatalf("audit log: %v", err)
		}
		if found {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server never logged the sentinel request for namespace %s", sentinel)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// auditLine is the part of an audit.k8s.io/v1 Event that AuditEvent keeps.
type auditLine struct {
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// readAudit parses the complete lines after offset and says whether the
// sentinel's event is among them; the sentinel and everything after it are
// left out.
func readAudit(path string, offset int64, sentinel string) (AuditEvents, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if offset > int64(len(data)) {
		return nil, false, fmt.Errorf("mark %d is past the end of %s (%d bytes)", offset, filepath.Base(path), len(data))
	}
	data = data[offset:]
	// A line still being written has no newline yet: leave it for later.
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var events AuditEvents
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, false, fmt.Errorf("parse audit event: %w", err)
		}
		if l.Stage != "ResponseComplete" && l.Stage != "Panic" {
			continue
		}
		e := AuditEvent{Verb: l.Verb, RequestURI: l.RequestURI, User: l.User.Username, UserAgent: l.UserAgent}
		if l.ImpersonatedUser != nil {
			e.User = l.ImpersonatedUser.Username
		}
		if r := l.ObjectRef; r != nil {
			e.APIGroup, e.Resource, e.Subresource, e.Namespace, e.Name = r.APIGroup, r.Resource, r.Subresource, r.Namespace, r.Name
		}
		if l.ResponseStatus != nil {
			e.Code = l.ResponseStatus.Code
		}
		if e.Resource == "namespaces" && e.Name == sentinel {
			return events, true, nil
		}
		events = append(events, e)
	}
	return events, false, sc.Err()
}

// As returns a copy of the admin config that impersonates user as a member
// of system:masters: the same rights, but the audit log names user, so
// AuditEvents(...).By(user) keeps this client's requests apart from other
// tests' on a shared server. Pick a name per test (t.Name() will do).
func (k *Kube) As(user string) *rest.Config {
	c := k.RESTConfig()
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	return c
}

// KubeconfigAs writes a kubeconfig that impersonates user like As, for
// tools that read one (kubectl), and returns its path.
func (k *Kube) KubeconfigAs(t testing.TB, user string) string {
	t.Helper()
	data, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	userJSON, err := json.Marshal(user)
	if err != nil {
		t.Fatal(err)
	}
	// The admin kubeconfig has exactly one user entry, whose token line
	// is the last of it; impersonation goes right after.
	s := strings.Replace(string(data), "\n    token: ", "\n    as: "+string(userJSON)+"\n    as-groups: [\"system:masters\"]\n    token: ", 1)
	if s == string(data) {
		t.Fatal("KubeconfigAs: admin kubeconfig has no token line")
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
