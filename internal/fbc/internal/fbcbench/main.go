// Command fbcbench is the Ferry side of hack/bench-fbc.sh: it loads a
// file-based catalog with fbc.LoadFS, applies a trivial filter and writes the
// result, so that its wall time and peak RSS can be compared with
// `opm render DIR -o json`.
//
//	fbcbench [-o yaml|json] DIR OUTDIR   write OUTDIR with fbc.WriteDir
//	fbcbench [-o yaml|json] DIR -        write one stream to stdout
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

func main() {
	format := flag.String("o", "yaml", "output format: yaml or json")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: fbcbench [-o yaml|json] DIR OUTDIR|-")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, flag.Arg(0), flag.Arg(1), fbc.Format(*format)); err != nil {
		fmt.Fprintln(os.Stderr, "fbcbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, out string, format fbc.Format) error {
	cfg, err := fbc.LoadFS(ctx, os.DirFS(dir))
	if err != nil {
		return err
	}
	cfg = keepBundles(cfg, func(b *fbc.Bundle) bool { return b.Image != "" || len(b.Properties) > 0 })
	if out != "-" {
		return fbc.WriteDir(ctx, out, cfg, fbc.WriteOptions{Format: format})
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<16)
	write := fbc.WriteYAML
	if format == fbc.FormatJSON {
		write = fbc.WriteJSON
	}
	if err := write(w, cfg); err != nil {
		return err
	}
	return w.Flush()
}

// keepBundles is the "trivial filter": it visits every bundle and keeps
// those keep accepts (on real catalogs, all of them).
func keepBundles(cfg *fbc.DeclarativeConfig, keep func(*fbc.Bundle) bool) *fbc.DeclarativeConfig {
	out := *cfg
	out.Bundles = cfg.Bundles[:0:0]
	for i := range cfg.Bundles {
		if keep(&cfg.Bundles[i]) {
			out.Bundles = append(out.Bundles, cfg.Bundles[i])
		}
	}
	return &out
}
