package notifiers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// member returns the per-member alert of rule for etcd member i.
func member(rule string, i int, state model.AlertState, notify ...string) model.Alert {
	seg := model.Labels{"member": fmt.Sprintf("etcd-%02d", i)}
	labels := model.Labels{"alertname": rule, "severity": "high", "cluster": "prod", "member": seg["member"]}
	a := model.Alert{
		Fingerprint: model.Fingerprint(rule, seg), Rule: rule, Severity: "high",
		Description: "etcd member cannot be reached", State: state, Labels: labels,
		Annotations: map[string]string{"summary": "member down", "runbook_url": "https://runbooks.example/etcd"},
		Segment:     seg, Value: 0, Notify: notify, ActiveAt: t0.Add(-time.Minute), FiredAt: t0,
	}
	if state == model.StateResolved {
		a.ResolvedAt = t0.Add(10 * time.Minute)
	}
	return a
}

func members(rule string, n int, state model.AlertState, notify ...string) []model.Alert {
	out := make([]model.Alert, n)
	for i := range out {
		out[i] = member(rule, i, state, notify...)
	}
	return out
}

// receiver is a real HTTP webhook endpoint that records payloads and
// answers from a script (then 200).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []webhook.Payload
	bodies   [][]byte
	headers  []http.Header
	times    []time.Time
	script   []func(w http.ResponseWriter)
	hits     int
}

func newReceiver(t *testing.T, script ...func(w http.ResponseWriter)) *receiver {
	r := &receiver{script: script}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		i := r.hits
		r.hits++
		r.times = append(r.times, time.Now())
		var step func(http.ResponseWriter)
		if i < len(r.script) {
			step = r.script[i]
		}
		if step == nil {
			var p webhook.Payload
			_ = json.Unmarshal(body, &p)
			r.payloads = append(r.payloads, p)
			r.bodies = append(r.bodies, body)
			r.headers = append(r.headers, req.Header.Clone())
		}
		r.mu.Unlock()
		if step != nil {
			step(w)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

// hitCount is the number of requests, answered or not.
func (r *receiver) hitCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

func (r *receiver) got() []webhook.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Payload(nil), r.payloads...)
}

// syncBuffer is an io.Writer safe for concurrent use (logs, console).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	d   *notifiers.Dispatcher
	reg *prometheus.Registry
	log *syncBuffer
}

// build starts a dispatcher with fast backoff and a captured log, and
// stops it when the test ends.
func build(t *testing.T, cfg notifiers.Config, opts ...notifiers.Option) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	cfg = testDefaults(cfg)
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]notifiers.Option{notifiers.WithLogger(logger), notifiers.WithRegisterer(h.reg)}, opts...)
	d, err := notifiers.Build(cfg, opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	h.d = d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return h
}

// testDefaults are build's: fast backoff, a short delivery timeout.
func testDefaults(cfg notifiers.Config) notifiers.Config {
	if cfg.GroupWait == 0 {
		cfg.GroupWait = 30 * time.Second
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 5 * time.Millisecond
		cfg.BackoffMax = 20 * time.Millisecond
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = 5 * time.Second
	}
	return cfg
}

// apply is Dispatcher.Apply with build's defaults.
func (h *harness) apply(t *testing.T, cfg notifiers.Config) {
	t.Helper()
	if err := h.d.Apply(testDefaults(cfg)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// settle waits until no group is in flight and nothing is queued.
func (h *harness) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		for _, g := range h.d.Status() {
			busy = busy || g.InFlight
		}
		if !busy {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("deliveries did not settle: %+v", h.d.Status())
}

// series reports whether metric name has a series for channel.
func (h *harness) series(name, channel string) bool { return h.metric(name, channel) != nil }

// metric is metric name's series for channel, or nil.
func (h *harness) metric(name, channel string) *dto.Metric {
	mfs, err := h.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" && l.GetValue() == channel {
					return m
				}
			}
		}
	}
	return nil
}

// total is the value of an unlabelled counter.
func (h *harness) total(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// waitUntil polls cond: it waits for an event (a delivery, a worker
// returning), never for a duration of the dispatcher's clock.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) counter(name, channel string) float64 {
	return h.metric(name, channel).GetCounter().GetValue()
}

func webhookChannel(name, url string) notifiers.ChannelConfig {
	return notifiers.ChannelConfig{Name: name, Webhook: &webhook.Config{URL: url}}
}

func ptr[T any](v T) *T { return &v }
