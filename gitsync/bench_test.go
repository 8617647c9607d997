package gitsync_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// What a poll and a sync cost against git http-backend on 127.0.0.1:
//
//	go test ./gitsync/ -run '^$' -bench . -benchtime 20x

func benchRepo(b *testing.B, commits int) (*testenv.GitServer, gitsync.Options) {
	b.Helper()
	srv := testenv.StartGitServer(b, testenv.GitOptions{})
	url := srv.Seed("fleet", fleet)
	for i := range commits {
		// A render that changes every commit, as a busy config repo's does.
		srv.Commit("fleet", "main", fmt.Sprintf("render %d", i), map[string]string{
			"clusters/prod/rendered/a/cs.yaml": strings.Repeat(fmt.Sprintf("image: a@sha256:%064d\n", i), 200),
		})
	}
	opts := gitsync.DefaultOptions(url, b.TempDir())
	opts.Credentials = &gitsync.Credentials{Username: srv.Username, Password: srv.Password}
	return srv, opts
}

// BenchmarkPoll is Head on an unchanged remote: the daemon's idle cost.
func BenchmarkPoll(b *testing.B) {
	srv, opts := benchRepo(b, 0)
	r, err := gitsync.Open(b.Context(), gogit.New(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	before := len(srv.Requests())
	for b.Loop() {
		if _, err := r.Head(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(srv.Requests())-before)/float64(b.N), "requests/op")
}

// BenchmarkSyncIdle is Sync when the clone already has the tip.
func BenchmarkSyncIdle(b *testing.B) {
	srv, opts := benchRepo(b, 0)
	r, err := gitsync.Open(b.Context(), gogit.New(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	before := len(srv.Requests())
	for b.Loop() {
		if _, err := r.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(srv.Requests())-before)/float64(b.N), "requests/op")
}

// BenchmarkFirstSync is the first clone of a repository with 200 commits
// of history, shallow (the default) and whole.
func BenchmarkFirstSync(b *testing.B) {
	_, opts := benchRepo(b, 200)
	for _, full := range []bool{false, true} {
		b.Run(map[bool]string{false: "shallow", true: "full"}[full], func(b *testing.B) {
			var size int64
			for b.Loop() {
				o := opts
				o.FullHistory = full
				o.CacheDir = b.TempDir()
				r, err := gitsync.Open(b.Context(), gogit.New(), o)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
				size = dirSize(filepath.Join(r.WorkTree(), ".git"))
				r.Close()
			}
			b.ReportMetric(float64(size), "cache-bytes")
		})
	}
}

func dirSize(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// BenchmarkPublish1000Files commits and pushes a render in which 1,000
// files changed (a catalog of 1,000 packages), to a bare repository on
// the local file system.
func BenchmarkPublish1000Files(b *testing.B) {
	bare := localRepo(b, fleet, nil)
	opts := gitsync.DefaultOptions(bare, b.TempDir())
	opts.Path = "clusters/prod"
	r, err := gitsync.Open(b.Context(), gogit.New(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	i := 0
	for b.Loop() {
		b.StopTimer()
		if _, err := r.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
		for p := range 1000 {
			writeFile(b, r.Dir(), fmt.Sprintf("rendered/catalogs/c/configs/p%04d/catalog.yaml", p), fmt.Sprintf("run %d\n", i))
		}
		i++
		b.StartTimer()
		if _, err := r.Publish(b.Context(), "ferry: render", nil); err != nil {
			b.Fatal(err)
		}
	}
}
