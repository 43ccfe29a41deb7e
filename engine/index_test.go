package engine

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Two rules reading the same aggregate share one computation per
// evaluation, but samples arriving between their groups at the same
// evaluation time must still be seen by the second.
func TestSharedAggregatesSeeSamplesAddedBetweenGroups(t *testing.T) {
	set := loadRules(t, `groups:
  - name: first
    rules:
      - name: A
        severity: low
        segment_by: [host]
        condition: min("up") == 0
  - name: second
    rules:
      - name: B
        severity: high
        segment_by: [host]
        condition: min("up") == 0
`)
	e := New(NewStore(time.Hour))
	e.SetRules(set)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 1, Time: now.Add(-30 * time.Second)})
	ctx := context.Background()
	if err := e.EvalGroup(ctx, "first", now); err != nil {
		t.Fatal(err)
	}
	// Same series, so the segments are unchanged: only the store's version
	// tells the cached aggregate is stale.
	e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 0, Time: now.Add(-10 * time.Second)})
	if err := e.EvalGroup(ctx, "second", now); err != nil {
		t.Fatal(err)
	}
	var firing []string
	for _, a := range e.Alerts() {
		firing = append(firing, a.Rule+"/"+a.Segment["host"])
	}
	if len(firing) != 1 || firing[0] != "B/a" {
		t.Fatalf("alerts = %v, want only B/a (A ran before the 0 arrived)", firing)
	}
}

// When a reload moves a rule to another index (a rule beside it now reads
// more metrics), its firing alert stays the same alert.
func TestReloadKeepsAlertsWhenIndexChanges(t *testing.T) {
	one := `groups:
  - name: g
    rules:
      - name: Down
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        for: 2m
`
	two := one + `      - name: Slow
        severity: low
        segment_by: [host]
        condition: avg("latency") > 1
`
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, one))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	step := func(i int) model.Alert {
		now := base.Add(time.Duration(i) * time.Minute)
		e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 0, Time: now})
		e.Eval(ctx, now)
		for _, a := range e.Alerts() {
			if a.Rule == "Down" {
				return a
			}
		}
		t.Fatalf("no Down alert at %dm", i)
		return model.Alert{}
	}
	step(0)
	first := step(1)
	e.SetRules(loadRules(t, two))
	a := step(2)
	if a.State != model.StateFiring || !a.ActiveAt.Equal(first.ActiveAt) || a.Fingerprint != first.Fingerprint {
		t.Fatalf("after reload: %s active since %s (%s); want firing, same alert since %s", a.State, a.ActiveAt, a.Fingerprint, first.ActiveAt)
	}
}

// A cancelled context (leadership lost, shutdown) stops an evaluation
// before it changes any alert.
func TestEvalStopsOnCancelledContext(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, restartRules))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 0, Time: now})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Eval(ctx, now); err == nil {
		t.Fatal("Eval with a cancelled context returned no error")
	}
	if got := e.Alerts(); len(got) != 0 {
		t.Fatalf("cancelled evaluation changed alerts: %v", got)
	}
	if err := e.Eval(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if got := e.Alerts(); len(got) != 1 || got[0].State != model.StatePending {
		t.Fatalf("after a normal evaluation: %v, want one pending alert", got)
	}
}

// Rules sharing an index see only the segments where their own metrics
// report: a host sending only latency is no host to "no_data: alerting" on
// "up", and does not block an every-rule over "up".
func TestSharedIndexSegmentsBelongToTheirMetrics(t *testing.T) {
	set := loadRules(t, `groups:
  - name: g
    rules:
      - name: Silent
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        no_data: alerting
      - name: AllDown
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
      - name: Slow
        severity: low
        segment_by: [host]
        condition: avg("latency") > 1
`)
	e := New(NewStore(time.Hour))
	e.SetRules(set)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.Store().Append(
		model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 0, Time: now},
		model.Sample{Metric: "latency", Labels: model.Labels{"host": "b", "zone": "z1"}, Value: 2, Time: now},
	)
	if err := e.Eval(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	got := map[string]model.Alert{}
	for _, a := range e.Alerts() {
		got[a.Rule+"/"+a.Segment["host"]] = a
	}
	for _, want := range []string{"Silent/a", "AllDown/", "Slow/b"} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing alert %s; have %v", want, got)
		}
	}
	if _, ok := got["Silent/b"]; ok {
		t.Errorf("Silent fired for host b, which never sent up")
	}
	if n := len(got["AllDown/"].Segments); n != 1 {
		t.Errorf("AllDown lists %d segments, want 1 (host b sends no up)", n)
	}
	if len(got) != 3 {
		t.Errorf("alerts: %v", got)
	}
}

// A reload that changes only a rule's annotations and labels keeps its
// alert and shows the new text at once, and restored alerts are visible
// before their segment reports again.
func TestReloadRerendersKeptAlerts(t *testing.T) {
	src := func(summary, team string) string {
		return restartRules + "        labels: {team: " + team + "}\n        annotations:\n          summary: '" + summary + " {{ label \"host\" }}'\n"
	}
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, src("down:", "a")))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "h1"}, Value: 0, Time: now})
	if err := e.Eval(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	e.SetRules(loadRules(t, src("host is down:", "b")))
	got := e.Alerts()
	if len(got) != 1 || got[0].Annotations["summary"] != "host is down: h1" || got[0].Labels["team"] != "b" || got[0].State != model.StatePending {
		t.Fatalf("after reload: %+v", got)
	}

	e2 := New(NewStore(time.Hour))
	e2.SetRules(loadRules(t, src("host is down:", "b")))
	e2.Import(e.Export())
	if got := e2.Alerts(); len(got) != 1 || got[0].Segment["host"] != "h1" {
		t.Fatalf("restored alert not visible before its segment reports: %+v", got)
	}
}
