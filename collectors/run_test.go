package collectors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
)

// Shared with other packages' tests.
var (
	silentListener = testkit.SilentListener
)

func find(samples []model.Sample, metric, target string) (model.Sample, bool) {
	for _, s := range samples {
		if s.Metric == metric && s.Labels[collectors.LabelTarget] == target {
			return s, true
		}
	}
	return model.Sample{}, false
}

// A hung HTTP endpoint answers can_connect 0 within the timeout and does
// not hold up the healthy target collected beside it.
func TestHungTargetDoesNotDelayOthers(t *testing.T) {
	open := silentListener(t) // accepts TCP, never answers HTTP
	cs := build(t, load(t, `collectors:
  - name: reach
    type: probe
    timeout: 300ms
    probe: {vantage_point: prod-pods, vantage_tags: {kubernetes.namespace.name: production}}
    targets:
      - {name: hung, address: "http://`+open+`/", tags: {host.hostName: h1}}
      - {name: tcp, address: "`+open+`", tags: {host.hostName: h2}}`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	out, err := cs[0].Collect(context.Background(), now)
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("Collect took %v with a 300ms timeout", took)
	}
	if err != nil {
		t.Fatalf("a failed probe is data: %v", err)
	}
	for _, tc := range []struct {
		target     string
		canConnect float64
		host       string
	}{{"hung", 0, "h1"}, {"tcp", 1, "h2"}} {
		s, ok := find(out, "probe.can_connect", tc.target)
		if !ok || s.Value != tc.canConnect {
			t.Errorf("%s: can_connect %v (found %v), want %v", tc.target, s.Value, ok, tc.canConnect)
		}
		want := model.Labels{"host.hostName": tc.host, "kubernetes.namespace.name": "production",
			"probe.vantage_point": "prod-pods", "collector": "reach", "target": tc.target}
		for k, v := range want {
			if s.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q (all: %v)", tc.target, k, s.Labels[k], v, s.Labels)
			}
		}
		if !s.Time.Equal(now) {
			t.Errorf("time %v", s.Time)
		}
		if up, _ := find(out, collectors.MetricUp, tc.target); up.Value != 1 || up.Labels["host.hostName"] != tc.host {
			t.Errorf("%s: self-metric %v", tc.target, up)
		}
	}
}

// Errors are counted per target across collections, visible as samples
// and in Stats, and the error names the target.
func TestErrorsCountedAndVisible(t *testing.T) {
	cs := build(t, load(t, `collectors:
  - name: checks
    type: exec
    timeout: 2s
    targets:
      - {name: good, command: [echo, ok 1]}
      - {name: garbage, command: [echo, "this is not a metric"], tags: {host.hostName: h1}}`))
	c := cs[0]
	var out []model.Sample
	var err error
	for i := range 2 {
		out, err = c.Collect(context.Background(), time.Unix(int64(i), 0))
	}
	if err == nil || !strings.Contains(err.Error(), `target "garbage"`) {
		t.Fatalf("err = %v", err)
	}
	for _, tc := range []struct {
		target     string
		up, errors float64
	}{{"good", 1, 0}, {"garbage", 0, 2}} {
		up, _ := find(out, collectors.MetricUp, tc.target)
		errs, _ := find(out, collectors.MetricErrors, tc.target)
		if up.Value != tc.up || errs.Value != tc.errors {
			t.Errorf("%s: up %v errors %v, want %v %v", tc.target, up.Value, errs.Value, tc.up, tc.errors)
		}
	}
	if s, ok := find(out, "ok", "good"); !ok || s.Value != 1 {
		t.Errorf("ok = %v (found %v)", s.Value, ok)
	}
	st := c.(*collectors.TargetCollector).Stats()
	if st.Collections != 2 || st.Errors != 2 || st.TargetErrs["garbage"] != 2 {
		t.Errorf("stats %+v", st)
	}
}

// A source that ignores its context or panics still cannot hold up or
// crash a collection.
func TestMisbehavingScraper(t *testing.T) {
	c := collectors.NewTargetCollector(
		collectors.Settings{Name: "bad", Interval: time.Second, Timeout: 100 * time.Millisecond},
		[]collectors.TargetInfo{{Name: "stuck"}, {Name: "panics"}},
		misbehaving{release: t.Context().Done()}, nil)
	start := time.Now()
	out, err := c.Collect(context.Background(), time.Unix(0, 0))
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Errorf("took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "no answer within") || !strings.Contains(err.Error(), "panic: boom") {
		t.Errorf("err = %v", err)
	}
	for _, target := range []string{"stuck", "panics"} {
		if up, _ := find(out, collectors.MetricUp, target); up.Value != 0 {
			t.Errorf("%s up %v", target, up.Value)
		}
	}
}

type misbehaving struct{ release <-chan struct{} }

func (m misbehaving) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	if i == 1 {
		panic("boom")
	}
	<-m.release // ignores ctx on purpose
	return nil, nil
}

// The etcd collector through Build: a crashed member shows as
// etcd.can_connect 0 and vigil.collector.up 0 for that member only,
// within the timeout, with its tags.
func TestEtcdThroughBuild(t *testing.T) {
	cluster := etcdtest.StartCluster(t, 3)
	var targets strings.Builder
	for i, m := range cluster.Members() {
		targets.WriteString("      - {name: " + m.Name + ", address: \"" + m.ClientURL + "\", tags: {host.hostName: host" + string(rune('1'+i)) + "}}\n")
	}
	cs := build(t, load(t, "collectors:\n  - name: etcd\n    type: etcd\n    timeout: 5s\n    targets:\n"+targets.String()))
	c := cs[0]
	out, err := c.Collect(context.Background(), time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cluster.Members() {
		if s, _ := find(out, "etcd.can_connect", m.Name); s.Value != 1 {
			t.Errorf("%s: can_connect %v", m.Name, s.Value)
		}
	}
	victim := cluster.Members()[2]
	victim.Stop()
	start := time.Now()
	out, err = c.Collect(context.Background(), time.Unix(115, 0))
	// The timeout is ample for live members on a loaded machine; the
	// collection returns within it whatever the dead member does.
	if took := time.Since(start); took > 7*time.Second {
		t.Errorf("Collect took %v with a 5s timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), `target "m2"`) {
		t.Errorf("err = %v", err)
	}
	for _, m := range cluster.Members() {
		want := 1.0
		if m == victim {
			want = 0
		}
		s, _ := find(out, "etcd.can_connect", m.Name)
		up, _ := find(out, collectors.MetricUp, m.Name)
		if s.Value != want || up.Value != want {
			t.Errorf("%s: can_connect %v up %v, want %v", m.Name, s.Value, up.Value, want)
		}
		if m == victim && s.Labels["host.hostName"] != "host3" {
			t.Errorf("victim's sample lacks its tags: %v", s.Labels)
		}
	}
}
