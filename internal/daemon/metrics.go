package daemon

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric result label values.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
	// ResultStalled: invalid desired state; not retried until it changes.
	ResultStalled = "stalled"
	// ResultRejected: a push refused because the remote moved.
	ResultRejected = "rejected"
	// ResultNoop: nothing to push.
	ResultNoop = "noop"
)

// Webhook result label values.
const (
	WebhookAccepted     = "accepted"
	WebhookUnauthorized = "unauthorized" // no credentials: 401
	WebhookForbidden    = "forbidden"    // wrong credentials: 403
	WebhookInvalid      = "invalid"      // wrong method or oversized body
)

// Metrics are the daemon's Prometheus metrics, in a registry of their own
// (two daemons in one test process never share counters). Names follow
// Prometheus conventions: ferry_ prefix, _total counters, base units.
type Metrics struct {
	Registry *prometheus.Registry

	reconciles     *prometheus.CounterVec
	duration       prometheus.Histogram
	imagesCopied   prometheus.Counter
	bytesCopied    prometheus.Counter
	catalogsPushed prometheus.Counter
	gitFetches     *prometheus.CounterVec
	gitPushes      *prometheus.CounterVec
	lastSuccess    prometheus.Gauge
	catalogInfo    *prometheus.GaugeVec
	webhooks       *prometheus.CounterVec
	sourceChecks   *prometheus.CounterVec
	triggers       *prometheus.CounterVec
	leader         prometheus.Gauge
}

// NewMetrics registers Ferry's metrics, with the Go runtime and process
// collectors (process_cpu_seconds_total is how an idle poll's cost is
// measured).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_reconcile_total",
			Help: "Reconciles run, by result: success, failure (retried with backoff) or stalled (invalid desired state).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_reconcile_duration_seconds",
			Help:    "How long a reconcile took, checkout to publish.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2.5, 12), // 0.1 s to about 6 h
		}),
		imagesCopied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_images_copied_total",
			Help: "Images copied into the mirror (images already there are not counted).",
		}),
		bytesCopied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_bytes_copied_total",
			Help: "Blob bytes uploaded to the mirror (mounted and present blobs are not counted).",
		}),
		catalogsPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_catalog_images_pushed_total",
			Help: "Built catalog images pushed.",
		}),
		gitFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_git_fetch_total",
			Help: "Checkouts of a remote config repository (fetches), by result.",
		}, []string{"result"}),
		gitPushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_git_push_total",
			Help: "Pushes of the commit-back to a remote config repository, by result: success, noop, rejected (the remote moved) or failure.",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_last_success_timestamp_seconds",
			Help: "When the last successful reconcile ended, in Unix seconds.",
		}),
		catalogInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_catalog_info",
			Help: "The catalog image each catalog serves (always 1); held is \"true\" while a catalog keeps its previous render.",
		}, []string{"catalog", "image", "digest", "held"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_webhook_requests_total",
			Help: "Webhook requests, by result: accepted, unauthorized (no credentials), forbidden (wrong credentials) or invalid.",
		}, []string{"result"}),
		sourceChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_source_checks_total",
			Help: "Lookups of the source's tip revision (an idle poll is one), by result.",
		}, []string{"result"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_triggers_total",
			Help: "Reconcile requests received before coalescing, by trigger: start, poll, webhook, watch, catalog, retry.",
		}, []string{"trigger"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_leader",
			Help: "1 while this replica holds the leader Lease (or runs without leader election), 0 while it stands by.",
		}),
	}
	m.Registry.MustRegister(
		m.reconciles, m.duration, m.imagesCopied, m.bytesCopied, m.catalogsPushed,
		m.gitFetches, m.gitPushes, m.lastSuccess, m.catalogInfo, m.webhooks,
		m.sourceChecks, m.triggers, m.leader,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every known label value starts at zero, so dashboards and rate()
	// see a series before its first event.
	for _, r := range []string{ResultSuccess, ResultFailure, ResultStalled} {
		m.reconciles.WithLabelValues(r)
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		m.gitFetches.WithLabelValues(r)
		m.sourceChecks.WithLabelValues(r)
	}
	for _, r := range []string{ResultSuccess, ResultNoop, ResultRejected, ResultFailure} {
		m.gitPushes.WithLabelValues(r)
	}
	for _, r := range []string{WebhookAccepted, WebhookUnauthorized, WebhookForbidden, WebhookInvalid} {
		m.webhooks.WithLabelValues(r)
	}
	for _, t := range []Trigger{TriggerStart, TriggerPoll, TriggerWebhook, TriggerWatch, TriggerCatalog, TriggerRetry} {
		m.triggers.WithLabelValues(string(t))
	}
	return m
}

// Webhook counts one webhook request by result; the receiver calls it.
func (m *Metrics) Webhook(result string) { m.webhooks.WithLabelValues(result).Inc() }

// Names lists the names of every metric family registered, for checks
// such as the dashboard test.
func (m *Metrics) Names() (map[string]bool, error) {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names, nil
}

func (m *Metrics) setCatalogs(cs []CatalogState) {
	m.catalogInfo.Reset()
	for _, c := range cs {
		image, digest, _ := strings.Cut(c.Image, "@")
		held := "false"
		if c.Held != "" {
			held = "true"
		}
		m.catalogInfo.WithLabelValues(c.Name, image, digest, held).Set(1)
	}
}
