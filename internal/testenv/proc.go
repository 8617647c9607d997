package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// lifecycle is the part of testing.TB the starters need. SharedKube supplies
// its own implementation so one instance can outlive any single test.
type lifecycle interface {
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}

// process is a server started for a test, writing everything it logs to one
// file so a failure can show what it said.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	// reported is set once an error has carried the log tail, so the
	// cleanup does not print it a second time.
	reported bool
}

// startProcess starts bin and registers its stop with lc. Stopping is a
// SIGKILL: every server's state lives in a throw-away directory, so a
// graceful shutdown would only cost time.
func startProcess(lc lifecycle, name, logPath string, env []string, bin string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "### %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	lc.Cleanup(func() {
		p.stop()
		if lc.Failed() && !p.reported {
			lc.Logf("%s log %s, last lines:\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p, nil
}

func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// errExited says the server died before it became ready; the caller may
// retry when the log shows it lost a race for its port.
var errExited = errors.New("exited before it was ready")

// waitReady polls ready until it succeeds, the process exits or timeout
// passes. The error carries the log tail because that is where the reason is.
func (p *process) waitReady(timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = ready(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			p.reported = true
			return fmt.Errorf("%s %w (%v); log %s:\n%s", p.name, errExited, p.waitErr, p.logPath, tail(p.logPath, 40))
		case <-ctx.Done():
			p.stop()
			p.reported = true
			return fmt.Errorf("%s not ready after %s: %v; log %s:\n%s", p.name, timeout, last, p.logPath, tail(p.logPath, 40))
		case <-tick.C:
		}
	}
}

// lostPortRace reports whether a server failed because another process took
// the port between freePort closing it and the server binding it.
func lostPortRace(err error, logPath string) bool {
	if !errors.Is(err, errExited) {
		return false
	}
	b, _ := os.ReadFile(logPath)
	return bytes.Contains(b, []byte("address already in use"))
}

// portAttempts bounds the retries after losing a port race; two losses in a
// row already mean something else is wrong.
const portAttempts = 3

// freePort asks the kernel for an unused port on 127.0.0.1. The servers
// started here can only be given a port number, not a listener, so there is
// a small window in which another process may take it; starters retry.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a log file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", filepath.Base(path), err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
