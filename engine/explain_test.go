package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Explain gives, for a firing alert, each aggregate of the condition for
// its segment as the last evaluation computed it, and for an `across:
// every` alert the aggregates of every segment.
func TestExplain(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: SlowMember
        severity: high
        segment_by: [host]
        window: 3m
        condition: avg("lat") > 0.1 && max("up") == 1
      - name: AllDown
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
`))
	sample := func(metric, host string, v float64) model.Sample {
		return model.Sample{Metric: metric, Labels: model.Labels{"host": host}, Value: v}
	}
	// a is slow (0.2, 0.3, 0.4: avg 0.3), b is fast; at minute 3 both
	// are down (AllDown holds for every segment).
	for m := range 3 {
		feedEval(t, e, m, sample("lat", "a", 0.2+0.1*float64(m)), sample("up", "a", 1),
			sample("lat", "b", 0.01), sample("up", "b", 1))
	}
	var slow model.Alert
	for _, a := range e.Alerts() {
		if a.Rule == "SlowMember" {
			slow = a
		}
	}
	if slow.Segment["host"] != "a" {
		t.Fatalf("alerts %+v; want SlowMember for host a", e.Alerts())
	}
	x, err := e.Explain(slow.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if x.Rule != "SlowMember" || x.Condition != `avg("lat") > 0.1 && max("up") == 1` || x.Across != "any" || !x.At.Equal(at(2)) {
		t.Errorf("explanation header %+v", x)
	}
	if got := fmt.Sprint(x.Segments); got != `[{{host="a"} [{avg("lat") 0.3 false} {max("up") 1 false}]}]` {
		t.Errorf("segments = %s; want a's avg latency 0.3 and max up 1", got)
	}

	feedEval(t, e, 3, sample("lat", "a", 0.01), sample("up", "a", 0), sample("lat", "b", 0.01), sample("up", "b", 0))
	var all model.Alert
	for _, a := range e.Alerts() {
		if a.Rule == "AllDown" {
			all = a
		}
	}
	x, err = e.Explain(all.Fingerprint)
	if err != nil {
		t.Fatalf("AllDown (%+v): %v", all, err)
	}
	if got := fmt.Sprint(x.Segments); x.Across != "every" || got != `[{{host="a"} [{max("up") 0 false}]} {{host="b"} [{max("up") 0 false}]}]` {
		t.Errorf("every: across %s, segments %s; want both hosts with max up 0", x.Across, got)
	}

	if _, err := e.Explain("no-such-fingerprint"); !errors.Is(err, ErrNoAlert) {
		t.Errorf("unknown fingerprint: %v, want ErrNoAlert", err)
	}
}

// Rules of one scope and segment_by share their columns. An explanation
// gives the numbers its own rule's last evaluation saw, not those another
// rule computed since, and an `across: every` one lists only the segments
// its rule evaluates.
func TestExplainIsTheRulesOwnEvaluation(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: slow
    rules:
      - name: Down
        severity: high
        segment_by: [host]
        condition: max("up") == 0
      - name: AllDown
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
  - name: fast
    rules:
      - name: Up
        severity: info
        segment_by: [host]
        condition: max("up") == 1
      - name: DiskFull
        severity: info
        segment_by: [host]
        condition: max("disk") > 0.9
`))
	feedEval(t, e, 0, up("a", 0), model.Sample{Metric: "disk", Labels: model.Labels{"host": "b"}, Value: 0.5})
	// a is back; only the fast group evaluates, recomputing max("up").
	e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 1, Time: at(5)})
	if err := e.EvalGroup(context.Background(), "fast", at(5)); err != nil {
		t.Fatal(err)
	}
	for _, a := range e.Alerts() {
		if a.Rule != "Down" && a.Rule != "AllDown" {
			continue
		}
		x, err := e.Explain(a.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if len(x.Segments) != 1 || x.Segments[0].Labels["host"] != "a" {
			t.Fatalf("%s explained over %+v, want host a only (b reports disk, not up)", a.Rule, x.Segments)
		}
		if v := x.Segments[0].Values[0]; v.NoData || v.Value != 0 {
			t.Errorf("%s: max(\"up\") = %+v, want 0 as its last evaluation saw", a.Rule, v)
		}
	}
}
