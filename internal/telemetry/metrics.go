package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// Namespace prefixes every metric of hsmhost's own.
const Namespace = "hsmbridge"

// NoBackend is the backend label of operations refused before routing (by
// the access policy, for want of a route, for a reference that does not
// parse).
const NoBackend = "none"

// LatencyBuckets are the histogram's bounds in seconds: from the tenth of
// a millisecond a local backend takes to the seconds a throttled cloud HSM
// can.
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are hsmhost's Prometheus metrics, in a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	ops      *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	restarts *prometheus.CounterVec

	mu       sync.RWMutex
	children map[opKey]opChild
}

// opKey is one counter child; its strings are the report's own, so that
// looking it up allocates nothing.
type opKey struct {
	backend string
	op      core.Operation
	alg     string
	kind    core.ErrorKind
}

type opChild struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// NewMetrics registers hsmhost's metrics, Go's runtime metrics and the
// process's; version goes into hsmbridge_build_info.
func NewMetrics(version string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), children: map[opKey]opChild{}}
	m.ops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "key_operations_total",
		Help: "Key operations that ended, by backend, operation, algorithm and result (ok or the error kind).",
	}, []string{"backend", "op", "algorithm", "result"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "key_operation_duration_seconds",
		Help:    "Time from a key operation reaching hsmhost's service to its answer, backend call included.",
		Buckets: LatencyBuckets,
	}, []string{"backend", "op"})
	m.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "plugin_restarts_total",
		Help: "Relaunches of a backend's plugin after it exited (failed relaunches included).",
	}, []string{"backend"})
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info", Help: "hsmhost's version; always 1.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	info.Set(1)
	m.Registry.MustRegister(m.ops, m.latency, m.restarts, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// KeyOperation counts ev and observes its latency.
func (m *Metrics) KeyOperation(ev hostsvc.KeyOp) {
	k := opKey{backend: ev.Backend, op: ev.Op, alg: ev.Algorithm, kind: ev.Kind}
	m.mu.RLock()
	c, ok := m.children[k]
	m.mu.RUnlock()
	if !ok {
		c = m.child(k)
	}
	c.count.Inc()
	c.latency.Observe(ev.Latency.Seconds())
}

// child resolves and keeps the children of a key first seen.
func (m *Metrics) child(k opKey) opChild {
	backend := k.backend
	if backend == "" {
		backend = NoBackend
	}
	c := opChild{
		count:   m.ops.WithLabelValues(backend, string(k.op), k.alg, resultLabel(k.kind)),
		latency: m.latency.WithLabelValues(backend, string(k.op)),
	}
	m.mu.Lock()
	m.children[k] = c
	m.mu.Unlock()
	return c
}

// resultLabel is "ok" or the error kind; a kind hsmbridge does not define
// (a third-party plugin's) is counted as internal, so that no label holds
// what a plugin made up.
func resultLabel(k core.ErrorKind) string {
	switch k {
	case "":
		return "ok"
	case core.KindInternal, core.KindInvalidReference, core.KindNotFound, core.KindOperationNotAllowed,
		core.KindUnsupported, core.KindInvalidInput, core.KindUnavailable, core.KindPermissionDenied,
		core.KindUnauthenticated, core.KindAlreadyExists, core.KindNoRoute:
		return string(k)
	}
	return string(core.KindInternal)
}

// Backend makes the restart counter of a configured backend exist (at 0)
// and returns the hook pluginhost.Spec.Restarted calls.
func (m *Metrics) Backend(name string) func() {
	c := m.restarts.WithLabelValues(name)
	return c.Inc
}

// WatchServer exports the socket server's clients, read at each scrape.
func (m *Metrics) WatchServer(stats func() socketserver.Stats) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "client_connections",
			Help: "Open connections of client processes (OpenSSL's provider, the hsmhost CLI) to hsmhost's socket.",
		}, func() float64 { return float64(stats().Connections) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "client_sessions",
			Help: "Application processes connected now: sessions named by the provider's hello with a connection open.",
		}, func() float64 { return float64(stats().Sessions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: "client_connections_refused_total",
			Help: "Connections refused because their uid held max_connections_per_uid already.",
		}, func() float64 { return float64(stats().Refused) }),
	)
}

// backendEvents is the one family the backends' own counters are exported
// in, labelled by backend and event.
var backendEvents = prometheus.NewDesc(Namespace+"_backend_events_total",
	"Events a backend plugin counts of its own work, by event; Managed HSM: retries (tries sent again after a throttled, failed or timed-out one), throttled (429 answers), token_requests (access tokens asked of its credential: the first and each refresh). They start again at 0 when the plugin is restarted.",
	[]string{"backend", "event"}, nil)

// backendStats collects the backends' counters at each scrape.
type backendStats struct {
	read func(context.Context) map[string][]core.Counter
}

func (backendStats) Describe(ch chan<- *prometheus.Desc) { ch <- backendEvents }

func (b backendStats) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, counters := range b.read(ctx) {
		for _, c := range counters {
			ch <- prometheus.MustNewConstMetric(backendEvents, prometheus.CounterValue, float64(c.Value), name, c.Name)
		}
	}
}

// WatchBackends exports the counters the backends keep of their own work
// (hostsvc.Service.BackendStats), read from the plugins at each scrape.
func (m *Metrics) WatchBackends(read func(context.Context) map[string][]core.Counter) {
	m.Registry.MustRegister(backendStats{read: read})
}

// WatchAudit exports how many audit lines the rate limit dropped.
func (m *Metrics) WatchAudit(a *Audit) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: "audit_lines_suppressed_total",
		Help: "Audit lines the audit_rate limit dropped (each drop is also summed up in an \"audit lines suppressed\" log line).",
	}, func() float64 { return float64(a.Suppressed()) }))
}

// Handler serves the registry in Prometheus' formats (text, or OpenMetrics
// when a scraper asks for it) at /metrics.
func (m *Metrics) Handler(log hclog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		Registry:          m.Registry,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hsmhost: metrics are at /metrics")
	})
	return mux
}

// Server serves the metrics on one listener.
type Server struct {
	http *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen opens addr (metrics_listen, host:port) and serves h there.
func Listen(addr string, h http.Handler, log hclog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan struct{}), http: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return s, nil
}

// Addr is the address served (with the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting running scrapes finish within ctx.
func (s *Server) Close(ctx context.Context) {
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	<-s.done
}

// Tee reports each operation to every observer in turn; nil ones are
// left out, and none at all gives nil (no observer: no cost).
func Tee(observers ...hostsvc.Observer) hostsvc.Observer {
	var list tee
	for _, o := range observers {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type tee []hostsvc.Observer

func (t tee) KeyOperation(ev hostsvc.KeyOp) {
	for _, o := range t {
		o.KeyOperation(ev)
	}
}
