package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/reconcile"
)

// progress shows a copy's progress: a bar redrawn in place on a terminal
// (images done of total, bytes sent, rate), a log line every logEvery
// otherwise, so CI logs and the daemon's output stay readable.
type progress struct {
	w                            io.Writer
	tty                          bool
	total                        int
	images, failed, bytes, blobs atomic.Int64
	start                        time.Time
	done                         chan struct{}
	wg                           sync.WaitGroup
}

const (
	drawEvery = 200 * time.Millisecond
	logEvery  = 10 * time.Second
)

// newProgress starts reporting for a copy of total images. mode is auto
// (bars only when w is a terminal), always or never.
func newProgress(w io.Writer, total int, mode string) *progress {
	tty := false
	switch mode {
	case "always":
		tty = true
	case "auto":
		if f, ok := w.(*os.File); ok {
			tty = term.IsTerminal(int(f.Fd()))
		}
	case "never":
		return nil
	}
	p := &progress{w: w, tty: tty, total: total, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// Report implements engine.Reporter; it is called from many goroutines.
func (p *progress) Report(e engine.Event) {
	switch e.Kind {
	case engine.EventImage:
		p.images.Add(1)
		if e.Image != nil && e.Image.Action == engine.ActionFailed {
			p.failed.Add(1)
		}
	case engine.EventBytes:
		p.bytes.Add(e.Bytes)
	case engine.EventBlob:
		if e.Blob == engine.BlobUploaded {
			p.blobs.Add(1)
		}
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	every := logEvery
	if p.tty {
		every = drawEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			if p.tty {
				fmt.Fprintf(p.w, "\r\033[K%s", p.line(40))
			} else {
				slog.Info("mirroring", "images", p.images.Load(), "of", p.total, "failed", p.failed.Load(),
					"sent", reconcile.FormatBytes(p.bytes.Load()), "rate", p.rate())
			}
		}
	}
}

// line is the bar: [=====>    ] 1234/7718 images · 1 failed · 12.0 MiB sent · 3.1 MiB/s · 42s
func (p *progress) line(width int) string {
	n := p.images.Load()
	filled := 0
	if p.total > 0 {
		filled = int(int64(width) * n / int64(p.total))
	}
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	s := fmt.Sprintf("[%s] %d/%d images", bar, n, p.total)
	if f := p.failed.Load(); f > 0 {
		s += fmt.Sprintf(" · %d failed", f)
	}
	return s + fmt.Sprintf(" · %s sent · %s · %s", reconcile.FormatBytes(p.bytes.Load()), p.rate(), time.Since(p.start).Round(time.Second))
}

func (p *progress) rate() string {
	secs := time.Since(p.start).Seconds()
	if secs <= 0 {
		return "0 B/s"
	}
	return reconcile.FormatBytes(int64(float64(p.bytes.Load())/secs)) + "/s"
}

// stop ends the reporting; the bar's last state stays on screen. A nil
// progress (mode never, or nothing to copy) does nothing.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(40))
	}
}
