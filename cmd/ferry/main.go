// Command ferry reconciles OpenShift operator catalogs, their mirrors and the
// samples operator from desired state kept in git.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-gitops/ferry/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRoot().ExecuteContext(ctx)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}
