package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for ferry: with FERRY_TEST_MAIN
// set it runs main with the arguments after "--", so the signal tests
// exercise the real main, signal handling included, without building a
// second binary.
func TestMain(m *testing.M) {
	if os.Getenv("FERRY_TEST_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"ferry"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// fakeShutdown is a shutdown whose signals, timer and exit are the test's.
type fakeShutdown struct {
	*shutdown
	signals chan os.Signal
	timer   chan time.Time
	exited  chan int
	log     *bytes.Buffer
}

func newFakeShutdown() *fakeShutdown {
	f := &fakeShutdown{signals: make(chan os.Signal, 2), timer: make(chan time.Time), exited: make(chan int, 1), log: &bytes.Buffer{}}
	f.shutdown = &shutdown{
		signals: f.signals,
		grace:   time.Hour, // never waited for: the timer channel is the test's
		after:   func(time.Duration) <-chan time.Time { return f.timer },
		exit:    func(code int) { f.exited <- code },
		log:     f.log,
	}
	return f
}

// TestShutdown covers the three ways out after a signal, without real
// signals or time: the command returns (its error becomes 130/143), a
// second signal forces the exit, the grace period forces it.
func TestShutdown(t *testing.T) {
	t.Run("first signal cancels; the command returns", func(t *testing.T) {
		f := newFakeShutdown()
		ctx, cancel := context.WithCancel(context.Background())
		go f.watch(cancel)
		f.signals <- syscall.SIGTERM
		<-ctx.Done() // the command sees the cancellation...
		if code := f.exitCode(1, ctx.Err()); code != 143 {
			t.Errorf("exit code %d after SIGTERM, want 143", code)
		}
		if code := f.exitCode(0, nil); code != 0 {
			t.Errorf("a command that completed anyway: exit %d, want 0", code)
		}
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		f := newFakeShutdown()
		ctx, cancel := context.WithCancel(context.Background())
		go f.watch(cancel)
		f.signals <- syscall.SIGINT
		<-ctx.Done()
		f.signals <- syscall.SIGINT // the command ignores the cancellation
		if code := <-f.exited; code != 130 {
			t.Errorf("exit code %d, want 130", code)
		}
	})
	t.Run("grace period exits", func(t *testing.T) {
		f := newFakeShutdown()
		ctx, cancel := context.WithCancel(context.Background())
		go f.watch(cancel)
		f.signals <- syscall.SIGTERM
		<-ctx.Done()
		f.timer <- time.Time{}
		if code := <-f.exited; code != 143 {
			t.Errorf("exit code %d, want 143", code)
		}
	})
	t.Run("no signal, no change", func(t *testing.T) {
		f := newFakeShutdown()
		if code := f.exitCode(2, errors.New("invalid")); code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
	})
}

// TestSignalStopsABlockedCommand runs ferry (this test binary standing in
// for it) on a spec whose catalog source is a registry that accepts the
// connection and never answers, sends SIGINT once the connection is open,
// and expects exit 130 with nothing written. The order is fixed by the
// listener, not by time.
func TestSignalStopsABlockedCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	host := ln.Addr().String()
	spec := "apiVersion: ferry.dev/v1alpha1\nkind: Catalog\nmetadata:\n  name: stalled\nspec:\n  source: " + host + "/ns/index:v1\n  target: " + host + "/ns/built:v1\n"
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "diff", "--insecure-registry", host, dir)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept() // ferry is now waiting on the registry
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { _, _ = bufio.NewReader(conn).ReadString(0) }() // read, never answer
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("ferry diff after SIGINT: %v, want exit 130\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "SIGINT: stopping") {
		t.Errorf("stderr does not say why it stopped:\n%s", stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the spec directory changed: %v", entries)
	}
}
