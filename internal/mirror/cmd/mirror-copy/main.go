// Command mirror-copy runs Ferry's copy engine on a list of pairs, for the
// mirror benchmark (hack/bench-mirror.sh) and manual runs, until `ferry
// reconcile` drives it from specs:
//
//	mirror-copy -pairs pairs.txt -concurrency 8 [-a auth.json] [-hints in.json] [-save-hints out.json] [-report report.json]
//
// pairs.txt has one "SOURCE DESTINATION" per line (blank lines and lines
// starting with # are skipped), the shape of `oc image mirror -f`'s
// mapping.txt with a space instead of "=". It prints a summary line on
// stderr and exits 1 when an image failed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr)
	var ie *mirror.IncompleteError
	switch {
	case errors.As(err, &ie):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "mirror-copy:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("mirror-copy", flag.ContinueOnError)
	var (
		pairsFile   = fl.String("pairs", "", "file of SOURCE DESTINATION lines (required)")
		authFile    = fl.String("a", "", "docker config.json / podman auth.json")
		insecure    = fl.String("insecure", "", "comma-separated registries reached without TLS verification")
		concurrency = fl.Int("concurrency", 8, "operations in flight per registry")
		platforms   = fl.String("platforms", "", "comma-separated os/arch[/variant] children of indexes to copy")
		hintsIn     = fl.String("hints", "", "blob locations from an earlier run (-save-hints)")
		hintsOut    = fl.String("save-hints", "", "write the blob locations this run knows")
		reportFile  = fl.String("report", "", "write the report as JSON")
		verbose     = fl.Bool("v", false, "log retries and failures")
	)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *pairsFile == "" {
		return errors.New("-pairs is required")
	}
	pairs, err := readPairs(*pairsFile)
	if err != nil {
		return err
	}
	ropts := registry.Options{AuthFile: *authFile, Concurrency: *concurrency}
	if *insecure != "" {
		ropts.Insecure = strings.Split(*insecure, ",")
	}
	rc, err := registry.New(ropts)
	if err != nil {
		return err
	}
	opts := mirror.DefaultOptions(rc)
	opts.Concurrency = *concurrency
	if *platforms != "" {
		opts.Platforms = strings.Split(*platforms, ",")
	}
	if *verbose {
		opts.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *hintsIn != "" {
		b, err := os.ReadFile(*hintsIn)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &opts.BlobHints); err != nil {
			return fmt.Errorf("%s: %w", *hintsIn, err)
		}
	}
	rep, err := mirror.Copy(ctx, pairs, opts)
	if rep == nil {
		return err
	}
	s := rep.Stats
	fmt.Fprintf(stderr, "mirror-copy: %d images (%d present, %d copied, %d failed) in %s; blobs %d uploaded (%d B), %d mounted, %d present; %d manifests put\n",
		s.Images, s.ImagesPresent, s.ImagesCopied, s.ImagesFailed, rep.Duration.Round(1e6), s.BlobsUploaded, s.BytesUploaded, s.BlobsMounted, s.BlobsPresent, s.Manifests)
	for _, r := range rep.Registries {
		fmt.Fprintf(stderr, "mirror-copy: %s: requests %v, %d writes, %d retries, %d B sent\n", r.Host, r.Requests, r.Writes, r.Retries, r.BytesSent)
	}
	for _, f := range rep.Failed() {
		fmt.Fprintln(stderr, "mirror-copy:", f.Err)
	}
	if *reportFile != "" {
		if werr := writeJSON(*reportFile, rep); werr != nil {
			return werr
		}
	}
	if *hintsOut != "" {
		if werr := writeJSON(*hintsOut, rep.Blobs); werr != nil {
			return werr
		}
	}
	return err
}

func readPairs(file string) ([]mirror.Pair, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mirror.Pair
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want SOURCE DESTINATION", file, n)
		}
		out = append(out, mirror.Pair{Source: fields[0], Destination: fields[1]})
	}
	return out, s.Err()
}

func writeJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
