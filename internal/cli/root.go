package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/internal/logging"
)

// NewRoot builds the ferry command tree.
func NewRoot() *cobra.Command {
	var logLevel, logFormat string
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Declarative operator catalogs, mirrors and samples for disconnected OpenShift",
		Long: `Ferry reads desired state (Catalog, Mirror and Samples specs, or oc-mirror
ImageSetConfigurations) from a directory or git repository, and converges
catalog images, the mirror registry and the cluster on it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return &usageError{fmt.Errorf("--log-level: %w", err)}
			}
			format, err := logging.ParseFormat(logFormat)
			if err != nil {
				return &usageError{fmt.Errorf("--log-format: %w", err)}
			}
			slog.SetDefault(logging.New(cmd.ErrOrStderr(), format, level))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&logFormat, "log-format", "text", "log format: text or json (one object per line)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newValidateCmd(), newRenderCmd(), newDiffCmd(), newReconcileCmd(), newImportCmd(), newRunCmd(), newStatusCmd(), newInitCmd(), newVersionCmd())
	return root
}

// outputFormat is the -o flag shared by commands, kubectl style.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
	outputYAML outputFormat = "yaml"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "text|json|yaml" }
func (o *outputFormat) Set(s string) error {
	switch f := outputFormat(strings.ToLower(s)); f {
	case outputText, outputJSON, outputYAML:
		*o = f
		return nil
	}
	return fmt.Errorf("unknown output format %q: use text, json or yaml", s)
}

// dirArg returns the directory argument, default the current directory.
func dirArg(args []string) (string, error) {
	dir := "."
	if len(args) > 0 {
		dir = args[0]
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", &usageError{fmt.Errorf("spec directory: %w", err)}
	}
	if !fi.IsDir() {
		return "", &usageError{fmt.Errorf("spec directory %s: not a directory", dir)}
	}
	return dir, nil
}
