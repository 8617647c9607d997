package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/renderdir"
	"github.com/ferry-gitops/ferry/spec"
)

// Exit codes, following kubectl's habits: 2 is bad input, for which
// nothing was done; 1 is a failure while doing it.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitInvalid = 2
)

// ExitCode maps an error returned by a command to the process exit code
// and prints it to w. It is the only place that interprets error types for
// the user.
func ExitCode(err error, w io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	var fail *failure
	if errors.As(err, &fail) {
		fmt.Fprintf(w, "error: %v\n", fail.err)
		return fail.code
	}
	var invalid *spec.InvalidError
	if errors.As(err, &invalid) {
		// The command already printed every problem.
		return ExitInvalid
	}
	var usage *usageError
	var pipelineUsage *pipeline.UsageError
	var unsafe *renderdir.UnsafePathError
	if errors.As(err, &usage) || errors.As(err, &pipelineUsage) || errors.As(err, &unsafe) {
		fmt.Fprintf(w, "error: %v\n", err)
		return ExitInvalid
	}
	fmt.Fprintf(w, "error: %v\n", err)
	return ExitFailed
}

// exitError carries an exit code that is an answer rather than a failure,
// such as `ferry diff` reporting pending changes.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a command line the user must fix.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// failure is an error with a command-specific exit code (diff's 3).
type failure struct {
	err  error
	code int
}

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }
