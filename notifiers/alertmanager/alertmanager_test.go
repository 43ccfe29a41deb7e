package alertmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"
	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
)

// A real Alertmanager v0.35.0 API, wired as its app package wires it
// (silences, the in-memory alerts provider, api.New, Update with a
// config, Register) and served by exporter-toolkit as Alertmanager
// serves it, on addr ("127.0.0.1:0" for any port), with webConfig as
// its --web.config.file when set (TLS, basic auth). Its app package
// itself embeds the web UI's built assets, which the module lacks. It
// returns the address and a stop, also run at cleanup.
func startAlertmanager(t *testing.T, addr, webConfig string) (string, func()) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	initFlags.Do(func() { compat.InitFromFlags(logger, featurecontrol.NoopFlags{}) })
	ctx, cancel := context.WithCancel(context.Background())
	sil, err := silence.New(silence.Options{Retention: time.Hour, Logger: logger, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := mem.NewAlerts(ctx, time.Minute, 0, nil, logger, eventrecorder.Recorder{}, reg, featurecontrol.NoopFlags{})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := amconfig.Load("route: {receiver: default}\nreceivers: [{name: default}]\n")
	if err != nil {
		t.Fatal(err)
	}
	silencer := silence.NewSilencer(sil, logger, eventrecorder.Recorder{})
	apih, err := api.New(api.Options{
		Alerts: alerts, Silences: sil, Logger: logger, Registry: reg, Timeout: 10 * time.Second,
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "alertmanager_http_request_duration_seconds"},
			[]string{"handler", "method", "code"}),
		GroupFunc: func(context.Context, func(*dispatch.Route) bool, dispatch.AlertFilter) (dispatch.AlertGroups, map[pmodel.Fingerprint][]string, error) {
			return nil, nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	apih.Update(conf, func(ctx context.Context, ls labelset.LabelSet) { silencer.Mutes(ctx, ls) })
	mux := apih.Register(route.New(), "/")

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	webFile := ""
	if webConfig != "" {
		webFile = filepath.Join(t.TempDir(), "web.yml")
		if err := os.WriteFile(webFile, []byte(webConfig), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		systemd := false
		_ = web.Serve(l, srv, &web.FlagConfig{WebSystemdSocket: &systemd, WebConfigFile: &webFile}, logger)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
			<-served
			apih.Shutdown()
			alerts.Close()
			cancel()
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

var initFlags sync.Once

// gettable is the part of GET /api/v2/alerts the tests read.
type gettable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// alertsOf asks the Alertmanager at base for its alerts (by default the
// ones not yet resolved) with client c.
func alertsOf(t *testing.T, c *http.Client, base string) []gettable {
	t.Helper()
	resp, err := c.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET alerts: %s: %s", resp.Status, b)
	}
	var out []gettable
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func alertAt(rule string, member int, state model.AlertState, fired, eval time.Time) model.Alert {
	seg := model.Labels{"member": fmt.Sprintf("etcd-%d", member)}
	a := model.Alert{
		Fingerprint: model.Fingerprint(rule, seg), Rule: rule, Severity: "critical", State: state,
		Description: "etcd member cannot be reached",
		Labels:      model.Labels{"alertname": rule, "severity": "critical", "cluster": "prod", "member": seg["member"]},
		Annotations: map[string]string{"summary": "member down", "runbook_url": "https://runbooks.example/etcd"},
		Segment:     seg, ActiveAt: fired.Add(-time.Minute), FiredAt: fired, LastEvalAt: eval,
		Source: &model.Source{File: "etcd.yaml", Line: 12, Commit: "1d22bfc5e0a1b2c3d4e5f60718293a4b5c6d7e8f"},
	}
	if state == model.StateResolved {
		a.ResolvedAt = eval
	}
	return a
}

type harness struct {
	d   *notifiers.Dispatcher
	reg *prometheus.Registry
}

func build(t *testing.T, am alertmanager.Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	d, err := notifiers.Build(notifiers.Config{
		Channels:        []notifiers.ChannelConfig{{Name: "team-am", Alertmanager: &am}},
		DefaultChannels: []string{"team-am"},
		BackoffBase:     5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, DeliveryTimeout: 5 * time.Second,
	}, notifiers.WithRegisterer(h.reg), notifiers.WithExternalURL("https://vigil.example"),
		notifiers.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
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

// process hands alerts to the dispatcher at now and waits until what it
// decided to send has been delivered (or failed for good).
func (h *harness) process(t *testing.T, now time.Time, alerts ...model.Alert) {
	t.Helper()
	h.d.Process(now, alerts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy := false
		for _, g := range h.d.Status() {
			busy = busy || g.InFlight
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not settle: %+v", h.d.Status())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) counter(name string, labels map[string]string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestRealAlertmanager: a firing alert reaches a real Alertmanager with
// its labels, annotations and generatorURL, is resent before it would
// expire and stays active, and is resolved there when it resolves.
//
// The dispatcher's clock is the test's; Alertmanager's is the wall
// clock, which decides what is active: the test's clock starts 5 minutes
// in the past, so that endsAt (evaluation + 4 x 2m) is in the future
// while the alert fires and the resolution time is in the past.
func TestRealAlertmanager(t *testing.T) {
	addr, _ := startAlertmanager(t, "127.0.0.1:0", "")
	base := "http://" + addr
	h := build(t, alertmanager.Config{URLs: []string{base}, ResendInterval: 2 * time.Minute, EvalInterval: 2 * time.Minute})
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	const rule = "EtcdMemberUnreachable"

	h.process(t, t0, alertAt(rule, 1, model.StateFiring, t0, t0))
	got := alertsOf(t, http.DefaultClient, base)
	if len(got) != 1 {
		t.Fatalf("Alertmanager has %d alerts, want 1: %+v", len(got), got)
	}
	a := got[0]
	want := map[string]string{"alertname": rule, "severity": "critical", "cluster": "prod", "member": "etcd-1"}
	if fmt.Sprint(a.Labels) != fmt.Sprint(want) {
		t.Errorf("labels = %v, want %v", a.Labels, want)
	}
	if a.Annotations["summary"] != "member down" || a.Annotations["description"] != "etcd member cannot be reached" ||
		a.Annotations["vigil_source"] != "etcd.yaml:12@1d22bfc5" {
		t.Errorf("annotations = %v", a.Annotations)
	}
	if a.GeneratorURL != "https://vigil.example/rules/"+rule {
		t.Errorf("generatorURL = %q", a.GeneratorURL)
	}
	if a.Status.State != "active" || !a.StartsAt.Equal(t0) || !a.EndsAt.Equal(t0.Add(8*time.Minute)) {
		t.Errorf("state %s, %s - %s; want active, %s - %s", a.Status.State, a.StartsAt, a.EndsAt, t0, t0.Add(8*time.Minute))
	}

	// Evaluations every minute: resent every 2 minutes, each time with
	// endsAt moved on; active throughout.
	for i := 1; i <= 4; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		h.process(t, now, alertAt(rule, 1, model.StateFiring, t0, now))
		got := alertsOf(t, http.DefaultClient, base)
		resent := t0.Add(time.Duration(i/2*2) * time.Minute)
		if len(got) != 1 || got[0].Status.State != "active" || !got[0].EndsAt.Equal(resent.Add(8*time.Minute)) {
			t.Fatalf("after evaluation %d: %+v, want active until %s", i, got, resent.Add(8*time.Minute))
		}
	}

	// Resolved at t0+4m30s (in the past for Alertmanager): no longer
	// among its alerts.
	res := t0.Add(4*time.Minute + 30*time.Second)
	h.process(t, res, alertAt(rule, 1, model.StateResolved, t0, res))
	if got := alertsOf(t, http.DefaultClient, base); len(got) != 0 {
		t.Fatalf("after the resolution Alertmanager still has %+v", got)
	}
	if n := h.counter("vigil_notifications_sent_total", map[string]string{"channel": "team-am"}); n != 4 {
		t.Errorf("messages sent = %v, want 4 (page, 2 resends, resolution)", n)
	}
}

// TestOneAlertmanagerDown: of two Alertmanagers one is down. The other
// still gets the alert, the failed post is counted for the one that is
// down (not as a failed message: it was delivered), and what it missed
// goes with the next post to it once it is back, with nothing lost.
func TestOneAlertmanagerDown(t *testing.T) {
	downAddr, stopDown := startAlertmanager(t, "127.0.0.1:0", "")
	stopDown() // its port is now closed
	upAddr, _ := startAlertmanager(t, "127.0.0.1:0", "")
	down, up := "http://"+downAddr, "http://"+upAddr
	h := build(t, alertmanager.Config{URLs: []string{down, up}, ResendInterval: 2 * time.Minute, EvalInterval: 2 * time.Minute})
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	const rule = "EtcdMemberUnreachable"

	h.process(t, t0, alertAt(rule, 1, model.StateFiring, t0, t0))
	if got := alertsOf(t, http.DefaultClient, up); len(got) != 1 || got[0].Labels["member"] != "etcd-1" {
		t.Fatalf("the Alertmanager that is up has %+v", got)
	}
	if n := h.counter("vigil_alertmanager_posts_failed_total", map[string]string{"channel": "team-am", "alertmanager": "0"}); n != 1 {
		t.Errorf("failed posts to the one down = %v, want 1", n)
	}
	if n := h.counter("vigil_alertmanager_posts_failed_total", map[string]string{"channel": "team-am", "alertmanager": "1"}); n != 0 {
		t.Errorf("failed posts to the one up = %v, want 0", n)
	}
	if n := h.counter("vigil_notifications_failed_total", map[string]string{"channel": "team-am"}); n != 0 {
		t.Errorf("failed messages = %v, want 0: one Alertmanager took it", n)
	}

	// It comes back on the same address. An alert of another rule (another
	// group) fires; the first one's group has nothing new to send, but the
	// post carries it: it is owed to this Alertmanager.
	if _, err := net.Dial("tcp", downAddr); err == nil {
		t.Fatal("the stopped Alertmanager still accepts connections")
	}
	startAlertmanager(t, downAddr, "")
	h.process(t, t0.Add(time.Minute), alertAt(rule, 1, model.StateFiring, t0, t0.Add(time.Minute)),
		alertAt("EtcdNoLeader", 2, model.StateFiring, t0.Add(time.Minute), t0.Add(time.Minute)))
	var members []string
	for _, a := range alertsOf(t, http.DefaultClient, down) {
		members = append(members, a.Labels["member"])
	}
	if strings.Join(members, ",") != "etcd-1,etcd-2" && strings.Join(members, ",") != "etcd-2,etcd-1" {
		t.Fatalf("the Alertmanager back up has %v, want etcd-1 (missed) and etcd-2", members)
	}
}

// TestAllAlertmanagersDown: when no Alertmanager takes the alerts the
// message fails and is retried (the dispatcher keeps it as not sent).
func TestAllAlertmanagersDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := alertmanager.New(alertmanager.Config{URLs: []string{"http://" + addr, "http://" + addr + "/prefix"}, Timeout: time.Second}, alertmanager.Options{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	retry, err := n.Notify(context.Background(), alertAt("R", 1, model.StateFiring, now, now))
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want a retryable error", retry, err)
	}
	if !strings.Contains(err.Error(), "alertmanager 0") || !strings.Contains(err.Error(), "alertmanager 1") {
		t.Errorf("error %q does not name both", err)
	}
}

// TestConfigErrors: every mistake at once, without quoting credentials.
func TestConfigErrors(t *testing.T) {
	_, err := alertmanager.New(alertmanager.Config{URLs: []string{"ftp://am", "http://user:hunter2@am:9093"}, ResendInterval: -time.Second}, alertmanager.Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"urls[0]", "urls[1]", "negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if _, err := alertmanager.New(alertmanager.Config{}, alertmanager.Options{}); err == nil || !strings.Contains(err.Error(), "urls") {
		t.Errorf("no URLs: %v", err)
	}
}
