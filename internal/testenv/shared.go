package testenv

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Main runs a package's tests and then stops everything SharedKube started.
// Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// Nothing is started up front: a run that selects no kube test (-run
// TestOPM) pays nothing.
func Main(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	shared.lc.stop(code != 0)
	return code
}

var mainRunning atomic.Bool

var shared struct {
	once sync.Once
	lc   sharedLifecycle
	kube *Kube
	err  error
}

// SharedKube returns the API server shared by every test in this test
// binary, starting it on first use. Starting one costs seconds, so a package
// whose tests can live side by side (each in its own NewNamespace) should
// share it. Go runs each package's tests in a separate binary, so every
// package gets its own instance.
//
// It requires TestMain to call Main, which stops the instance and removes
// its directory; a failed start is reported to every test that asks.
func SharedKube(t testing.TB) *Kube {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatal("testenv.SharedKube: the package's TestMain must run tests through testenv.Main, which stops the shared instance")
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-kube-")
		if err != nil {
			shared.err = err
			return
		}
		shared.lc.Cleanup(func() { os.RemoveAll(dir) })
		shared.kube, shared.err = startKube(&shared.lc, dir)
	})
	if shared.err != nil {
		t.Fatalf("shared kube: %v", shared.err)
	}
	return shared.kube
}

// sharedLifecycle stands in for testing.TB for instances that outlive one
// test: cleanups run when Main ends, and logs go to stderr (in verbose mode,
// or when the run failed).
type sharedLifecycle struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (s *sharedLifecycle) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *sharedLifecycle) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *sharedLifecycle) Logf(format string, args ...any) {
	if testing.Verbose() || s.Failed() {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// stop runs the cleanups last-registered first, like t.Cleanup.
func (s *sharedLifecycle) stop(failed bool) {
	s.mu.Lock()
	s.failed = failed
	cleanups := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}
