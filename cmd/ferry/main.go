// Command ferry reconciles OpenShift operator catalogs, their mirrors and the
// samples operator from desired state kept in git.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-gitops/ferry/internal/cli"
)

// shutdownGrace is how long a command may take to return after the first
// SIGINT or SIGTERM before Ferry exits anyway. Well inside Kubernetes'
// default 30 s termination grace period, long enough for a copy in flight
// to notice the cancellation and stop cleanly.
const shutdownGrace = 10 * time.Second

func main() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	s := &shutdown{signals: signals, grace: shutdownGrace, after: time.After, exit: os.Exit, log: os.Stderr}
	go s.watch(cancel)
	err := cli.NewRoot().ExecuteContext(ctx)
	signal.Stop(signals)
	os.Exit(s.exitCode(cli.ExitCode(err, os.Stderr), err))
}
