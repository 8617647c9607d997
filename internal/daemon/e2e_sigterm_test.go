package daemon_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

var ferryBin struct {
	once sync.Once
	path string
	err  error
}

// buildFerry builds cmd/ferry once per test binary.
func buildFerry(t *testing.T) string {
	t.Helper()
	ferryBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-bin-")
		if err != nil {
			ferryBin.err = err
			return
		}
		ferryBin.path = filepath.Join(dir, "ferry")
		cmd := exec.Command("go", "build", "-o", ferryBin.path, "./cmd/ferry")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			ferryBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if ferryBin.err != nil {
		t.Fatal(ferryBin.err)
	}
	return ferryBin.path
}

// gate is a proxy in front of the mirror that lets the first few manifest
// uploads through and holds the next one until released: a reconcile is
// then certainly in the middle of its copy.
type gate struct {
	mu       sync.Mutex
	allow    int
	held     chan struct{}
	release  chan struct{}
	heldOnce sync.Once
}

func startGate(t *testing.T, target string, allow int) (*gate, string) {
	g := &gate{allow: allow, held: make(chan struct{}), release: make(chan struct{})}
	u, _ := url.Parse("http://" + target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			g.mu.Lock()
			pass := g.allow > 0
			g.allow--
			g.mu.Unlock()
			if !pass {
				g.heldOnce.Do(func() { close(g.held) })
				select {
				case <-g.release:
				case <-r.Context().Done():
					return // the client gave up: SIGTERM reached the copy
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

// daemonProcess is `ferry run` as a subprocess.
type daemonProcess struct {
	cmd     *exec.Cmd
	logs    *syncBuffer
	addrs   chan map[string]string
	exited  chan error
	metrics string
}

func startProcess(t *testing.T, bin string, args ...string) *daemonProcess {
	t.Helper()
	p := &daemonProcess{logs: &syncBuffer{}, addrs: make(chan map[string]string, 1), exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Read the JSON log; the "listening" lines give the bound ports.
		addrs := map[string]string{}
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var rec struct{ Msg, Listener, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrs[rec.Listener] = rec.Addr
				if len(addrs) == 2 && !sent {
					p.addrs <- addrs
					sent = true
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("ferry run log:\n%s", p.logs)
		}
	})
	select {
	case a := <-p.addrs:
		p.metrics = a["metrics"]
		return p
	case err := <-p.exited:
		t.Fatalf("ferry run exited at start: %v\n%s", err, p.logs)
	case <-time.After(time.Minute):
		t.Fatalf("ferry run did not listen within a minute\n%s", p.logs)
	}
	return nil
}

// term sends SIGTERM and waits for the exit.
func (p *daemonProcess) term(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("ferry run did not exit within 2 minutes of SIGTERM")
	}
	return nil
}

// TestRunSIGTERMMidCopyResumes stops the real binary with SIGTERM while
// its copy into the mirror is in flight (an upload held by a proxy): it
// exits 0 well within --shutdown-timeout, nothing is rendered or
// committed, and the next start converges, copying only what the first
// run had not.
func TestRunSIGTERMMidCopyResumes(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	bin := buildFerry(t)
	f := newFixture(t, "kubevirt-wol", "nfs-provisioner-operator")
	g, proxy := startGate(t, f.dst.Host, 2)
	f.mirror = proxy
	// The mirror's credentials, for the host Ferry sees: the proxy.
	f.auth = filepath.Join(t.TempDir(), "auth.json")
	authJSON := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, proxy, base64.StdEncoding.EncodeToString([]byte(f.dst.Creds())))
	if err := os.WriteFile(f.auth, []byte(authJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeSpec(t, f.spec("kubevirt-wol", "nfs-provisioner-operator"), "spec")
	cache := t.TempDir()
	args := []string{"run", f.dir, "-a", f.auth, "--cache-dir", cache, "--log-format", "json", "--log-level", "debug",
		"--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--interval", "1h", "--watch=false", "--catalog-interval", "0", "--shutdown-timeout", "20s", "--max-per-registry", "1"}

	p := startProcess(t, bin, args...)
	select {
	case <-g.held:
	case err := <-p.exited:
		t.Fatalf("ferry run exited before its copy reached the held upload: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the copy never reached the third manifest upload")
	}
	if err := p.term(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want 0", err)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "reconcile interrupted") || !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("the log does not show a clean stop")
	}
	if got := f.commits(); got != "1" {
		t.Errorf("an interrupted reconcile committed: %s commits", got)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "rendered")); err == nil {
		t.Error("an interrupted reconcile wrote the render directory")
	}
	close(g.release)

	// Restart: converges, resuming.
	p2 := startProcess(t, bin, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for {
		resp, err := http.Get("http://" + p2.metrics + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `ferry_reconcile_total{result="success"} 1`) {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the restarted daemon did not converge within 3 minutes\n%s", p2.logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
	images := verifyMirror(t, f, f.dir)
	resp, err := http.Get("http://" + p2.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	copied := metricValue(t, string(raw), "ferry_images_copied_total")
	if copied <= 0 || int(copied) >= images {
		t.Errorf("the second run copied %v image(s) of %d: want some, not all (the first run's are kept)", copied, images)
	}
	if got := f.commits(); got != "2" {
		t.Errorf("%s commits after convergence, want 2", got)
	}
	if err := p2.term(t); err != nil {
		t.Errorf("second exit: %v", err)
	}
	for _, s := range []string{p.logs.String(), p2.logs.String(), string(raw)} {
		if strings.Contains(s, f.dst.Password) {
			t.Error("the mirror password leaked into the logs or metrics")
		}
	}
}

// metricValue reads one unlabelled sample from the text exposition.
func metricValue(t *testing.T, raw, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(raw, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}
