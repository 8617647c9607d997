package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBlobTableUploadsOnce: ten repositories want the same blob at once;
// one uploads, the others wait and mount from it.
func TestBlobTableUploadsOnce(t *testing.T) {
	var table blobTable
	var uploads, mounts atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := table.claim(t.Context(), "sha256:aa", fmt.Sprintf("repo%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			if cl.from == "" {
				uploads.Add(1)
				time.Sleep(20 * time.Millisecond) // the upload takes a while
			} else {
				mounts.Add(1)
			}
			cl.done(true, cl.from != "")
		}()
	}
	wg.Wait()
	if uploads.Load() != 1 || mounts.Load() != 9 {
		t.Errorf("%d uploads, %d mounts; want 1 and 9", uploads.Load(), mounts.Load())
	}
	// Known now: no turn needed.
	if cl, _ := table.claim(t.Context(), "sha256:aa", "repo3"); !cl.known {
		t.Error("a repository that got the blob is not known to hold it")
	}
}

// TestBlobTableFailedUploadHandsOver: when the first upload fails, a waiter
// uploads instead of mounting from nowhere.
func TestBlobTableFailedUploadHandsOver(t *testing.T) {
	var table blobTable
	first, _ := table.claim(t.Context(), "sha256:bb", "a")
	got := make(chan claim)
	go func() {
		cl, _ := table.claim(t.Context(), "sha256:bb", "b")
		got <- cl
	}()
	select {
	case <-got:
		t.Fatal("second claim did not wait for the upload in flight")
	case <-time.After(20 * time.Millisecond):
	}
	first.done(false, false)
	second := <-got
	if second.from != "" || second.known {
		t.Errorf("after a failed upload the next claim is %+v, want an upload", second)
	}
	second.done(true, false)
}

func TestBlobTableHints(t *testing.T) {
	var table blobTable
	table.hint("sha256:cc", "old/repo")
	cl, _ := table.claim(t.Context(), "sha256:cc", "new/repo")
	if cl.from != "old/repo" || cl.known {
		t.Fatalf("claim %+v, want a mount from the hint", cl)
	}
	// The mount fell back to an upload: the hint was stale and goes.
	cl.done(true, false)
	if loc := table.locations()["sha256:cc"]; loc != "new/repo" {
		t.Errorf("location %q, want new/repo", loc)
	}
	cl, _ = table.claim(t.Context(), "sha256:cc", "third/repo")
	if cl.from != "new/repo" {
		t.Errorf("mounting from %q, want the repository that got it", cl.from)
	}
	cl.done(true, true)
	// A hint for the very repository is not taken as proof: a HEAD decides.
	table.hint("sha256:dd", "x/y")
	if cl, _ := table.claim(t.Context(), "sha256:dd", "x/y"); cl.known {
		t.Error("a hint was trusted as presence")
	}
}

func TestBlobTableClaimHonoursContext(t *testing.T) {
	var table blobTable
	table.claim(t.Context(), "sha256:ee", "a")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := table.claim(ctx, "sha256:ee", "b"); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestFlights(t *testing.T) {
	var f flights
	var runs atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.do(t.Context(), "k", func() error {
				runs.Add(1)
				time.Sleep(10 * time.Millisecond)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Errorf("ran %d times, want once", runs.Load())
	}
	boom := errors.New("boom")
	if ran, err := f.do(t.Context(), "j", func() error { return boom }); !ran || err != boom {
		t.Fatalf("failing work: %v %v", ran, err)
	}
	if ran, err := f.do(t.Context(), "j", func() error { return nil }); !ran || err != nil {
		t.Errorf("after a failure the work must run again: %v %v", ran, err)
	}
	if ran, _ := f.do(t.Context(), "j", func() error { return boom }); ran {
		t.Error("succeeded work ran again")
	}
}
