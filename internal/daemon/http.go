package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthHandler serves /healthz (the process answers) and /readyz (ready
// after the first successful reconcile, or while standing by), as
// controller-runtime's probes do.
func (d *Daemon) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			http.Error(w, "not ready: no reconcile has succeeded yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// Handler serves /metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	return mux
}

// Listener is one HTTP listener of the daemon (health, metrics, webhook).
type Listener struct {
	Name    string
	Addr    string // host:port; "" leaves it off
	Handler http.Handler
}

// Servers are the daemon's running listeners.
type Servers struct {
	// Addrs are the bound addresses by listener name (":0" resolved).
	Addrs map[string]string
	srvs  []*http.Server
	wg    sync.WaitGroup
}

// Serve binds every listener with an address and serves it in the
// background; a port that cannot be bound fails the whole call.
func Serve(log *slog.Logger, ls ...Listener) (*Servers, error) {
	s := &Servers{Addrs: map[string]string{}}
	for _, l := range ls {
		if l.Addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			s.Shutdown(context.Background())
			return nil, fmt.Errorf("%s listener: %w", l.Name, err)
		}
		srv := &http.Server{Handler: l.Handler, ReadHeaderTimeout: 10 * time.Second}
		s.srvs = append(s.srvs, srv)
		s.Addrs[l.Name] = ln.Addr().String()
		log.Info("listening", "listener", l.Name, "addr", ln.Addr().String())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "listener", l.Name, "err", err)
			}
		}()
	}
	return s, nil
}

// Shutdown stops every listener, letting requests in flight finish until
// ctx ends.
func (s *Servers) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range s.srvs {
		errs = append(errs, srv.Shutdown(ctx))
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
