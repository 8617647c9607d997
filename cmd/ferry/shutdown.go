package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// shutdown turns signals into a prompt stop. The first SIGINT or SIGTERM
// cancels the command's context, so work in flight (a copy, a registry
// read, a spec load) stops and the command returns. Should it not return —
// a loop that never looks at its context, a read the kernel will not
// interrupt — a second signal, or the grace period running out, exits at
// once. Either way the exit code is 128 plus the signal number (130 for
// SIGINT, 143 for SIGTERM), as shells report a process killed by it.
type shutdown struct {
	signals <-chan os.Signal
	grace   time.Duration
	after   func(time.Duration) <-chan time.Time
	exit    func(code int)
	log     io.Writer

	mu       sync.Mutex
	received os.Signal
}

// watch waits for signals until the process exits.
func (s *shutdown) watch(cancel context.CancelFunc) {
	sig := <-s.signals
	s.mu.Lock()
	s.received = sig
	s.mu.Unlock()
	fmt.Fprintf(s.log, "ferry: %s: stopping (send it again to exit at once; exiting anyway in %s)\n", name(sig), s.grace)
	cancel()
	select {
	case again := <-s.signals:
		fmt.Fprintf(s.log, "ferry: %s again: exiting now\n", name(again))
		s.exit(signalCode(again))
	case <-s.after(s.grace):
		fmt.Fprintf(s.log, "ferry: still running %s after %s: exiting now\n", name(sig), s.grace)
		s.exit(signalCode(sig))
	}
}

// exitCode is the process exit code for a command that returned: what the
// command said, unless a signal interrupted it, which then gives 128+n. A
// command that completed despite the signal keeps its success.
func (s *shutdown) exitCode(code int, err error) int {
	s.mu.Lock()
	sig := s.received
	s.mu.Unlock()
	if sig == nil || err == nil {
		return code
	}
	return signalCode(sig)
}

func signalCode(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 128 + int(syscall.SIGINT)
}

func name(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
