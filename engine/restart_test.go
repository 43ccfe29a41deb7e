package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// outageRules: an every-alert over cluster main's members, a quorum alert
// per cluster whose summary shows two aggregates, and a silent-host alert
// (no_data: alerting, value NaN).
var outageRules = []string{
	`name: E
severity: critical
scope: labels["cluster"] == "main"
segment_by: [host]
across: every
condition: max("up") == 0
for: 1m
annotations: {summary: 'all {{ len .Segments }} members down'}`,
	`name: Q
severity: critical
segment_by: [cluster]
condition: sum(last("up")) < (count(last("up")) + 1) / 2
annotations: {summary: '{{ index .Values "sum(last(\"up\"))" }} of {{ index .Values "count(last(\"up\"))" }} answer'}`,
	`name: S
severity: medium
segment_by: [host]
condition: max("hb") == 0
no_data: alerting`,
}

// TestRestartDuringOutage: Vigil restarted in the middle of an outage
// carries on as if it had not been: restored alerts are neither resolved
// by the evaluations before the first collection (an every rule with no
// segments yet) nor by partial windows, keep the values their templates
// show (a reload re-renders them), and a restored firing alert whose
// segment never returns is resolved, not dropped, window + 1m after the
// first data.
func TestRestartDuringOutage(t *testing.T) {
	set := ruleSet(t, outageRules...)
	up := map[string]float64{"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 1}
	cluster := map[string]string{"a": "main", "b": "main", "c": "main", "d": "side", "e": "side", "f": "side"}
	feed := func(eng *engine.Engine, now time.Time, hosts ...string) {
		for _, h := range hosts {
			eng.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": h, "cluster": cluster[h]}, Value: up[h], Time: now})
		}
	}
	all := []string{"a", "b", "c", "d", "e", "f"}
	at := func(m float64) time.Time { return base.Add(time.Duration(m * float64(time.Minute))) }

	var o observer
	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	for m := range 4 {
		if m == 2 {
			up["d"] = 1 // side regains quorum: Q{side} resolves at 2m
		}
		feed(eng, at(float64(m)), all...)
		if m == 0 {
			eng.Store().Append(model.Sample{Metric: "hb", Labels: model.Labels{"host": "g"}, Value: 1, Time: at(0)})
		}
		eng.Eval(context.Background(), at(float64(m)))
		o.see(at(float64(m)), eng.Alerts())
	}
	saved, err := json.Marshal(eng.Export())
	if err != nil {
		t.Fatalf("saving the state: %v", err) // S{g}'s value is NaN
	}
	wantBefore := []string{
		`0s E{} pending`, `0s Q{cluster="main"} fired`, `0s Q{cluster="side"} fired`,
		`1m0s E{} fired`, `1m0s S{host="g"} fired`,
		`2m0s Q{cluster="side"} resolved`,
	}
	if !slices.Equal(o.events, wantBefore) {
		t.Fatalf("before the restart:\n  got  %q\n  want %q", o.events, wantBefore)
	}

	var recs []engine.AlertRecord
	if err := json.Unmarshal(saved, &recs); err != nil {
		t.Fatal(err)
	}
	eng = engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	if restored, dropped := eng.Import(recs); restored != 4 || dropped != 0 {
		t.Fatalf("Import: restored %d, dropped %d; want 4, 0", restored, dropped)
	}
	mainSummary := "0 of 3 answer"
	check := func(when string) {
		t.Helper()
		for _, a := range eng.Alerts() {
			var want string
			switch a.Rule + a.Segment.String() {
			case "E{}":
				want = "all 3 members down"
			case `Q{cluster="main"}`:
				want = mainSummary
			case `Q{cluster="side"}`:
				want = "2 of 3 answer"
				if a.Value != 2 {
					t.Errorf("%s: Q{side} value %v, want 2", when, a.Value)
				}
			case `S{host="g"}`:
				if !math.IsNaN(a.Value) {
					t.Errorf("%s: S{g} value %v, want NaN (no data)", when, a.Value)
				}
				continue
			}
			if got := a.Annotations["summary"]; got != want {
				t.Errorf("%s: %s%s summary %q, want %q", when, a.Rule, a.Segment, got, want)
			}
		}
	}
	check("restored")
	// Evaluated before the first collection: nothing is known, nothing ends.
	eng.Eval(context.Background(), at(3.5))
	o.see(at(3.5), eng.Alerts())
	eng.SetRules(ruleSet(t, outageRules...)) // a reload re-renders every alert
	check("after a reload")
	// The first collection reaches only two members of main in time.
	feed(eng, at(4), "a", "b")
	eng.Eval(context.Background(), at(4))
	o.see(at(4), eng.Alerts())
	for m := 5; m <= 8; m++ {
		if m == 7 {
			up["c"] = 1 // c answers: main is no longer all down
			mainSummary = "1 of 3 answer"
		}
		feed(eng, at(float64(m)), all...)
		eng.Eval(context.Background(), at(float64(m)))
		o.see(at(float64(m)), eng.Alerts())
	}
	check("at the end")
	// S{g}'s host never reports after the restart: resolved at 6m, the
	// first data (4m) plus window (1m) plus 1m.
	want := append(wantBefore, `6m0s S{host="g"} resolved`, `7m0s E{} resolved`)
	if !slices.Equal(o.events, want) {
		t.Errorf("events\n  got  %s\n  want %s", strings.Join(o.events, "\n       "), strings.Join(want, "\n       "))
	}
}

// TestKeepStateAfterRestart: keep_state repeats the outcome a restored
// alert was saved with, so a pending alert whose for elapses while its
// segment has no data fires, showing the value it last had rather than
// NaN.
func TestKeepStateAfterRestart(t *testing.T) {
	const rule = "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") <= 0\nfor: 3m\nno_data: keep_state"
	at := func(m float64) time.Time { return base.Add(time.Duration(m * float64(time.Minute))) }
	down := func(m float64) model.Sample {
		return model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: -1, Time: at(m)}
	}
	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(ruleSet(t, rule))
	eng.Store().Append(down(0))
	eng.Eval(context.Background(), at(0))
	recs := eng.Export()

	eng = engine.New(engine.NewStore(time.Hour))
	eng.SetRules(ruleSet(t, rule))
	eng.Import(recs)
	// A sample at 2m, then none: the first evaluation after the restart,
	// at 3.5m, finds the segment without data in its window.
	eng.Store().Append(down(2))
	eng.Eval(context.Background(), at(3.5))
	got := eng.Alerts()
	if len(got) != 1 || got[0].State != model.StateFiring || !got[0].ActiveAt.Equal(at(0)) || got[0].Value != -1 {
		t.Fatalf("after a gap past for: %+v; want one alert firing, active since 0m, value -1", got)
	}
}
