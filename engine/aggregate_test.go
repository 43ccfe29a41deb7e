package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// TestAcrossFirstJitter: samples stamped a few seconds off the group's
// interval still meet in one step, so a member is never counted twice or
// dropped because its clock runs ahead of another's. Grouping by exact
// timestamp would see one member per step and a count changing at every
// step.
func TestAcrossFirstJitter(t *testing.T) {
	set := ruleSet(t, `
name: R
severity: info
segment_by: [cluster]
window: 10m
condition: last(sum("up")) >= 0 && changes(count("up")) >= 0 && increase(max("c")) >= 0
annotations:
  sum: '{{ index .Values "last(sum(\"up\"))" }}'
  changes: '{{ index .Values "changes(count(\"up\"))" }}'
  increase: '{{ index .Values "increase(max(\"c\"))" }}'`)
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)
	for i := range 11 {
		at := base.Add(time.Duration(i) * time.Minute)
		eng.Store().Append(
			model.Sample{Metric: "up", Labels: model.Labels{"cluster": "x", "host": "a"}, Value: 1, Time: at},
			model.Sample{Metric: "up", Labels: model.Labels{"cluster": "x", "host": "b"}, Value: 2, Time: at.Add(-3 * time.Second)},
			model.Sample{Metric: "up", Labels: model.Labels{"cluster": "x", "host": "c"}, Value: 4, Time: at.Add(-59 * time.Second)},
			// b's counter is ahead: the max is b's at every step.
			model.Sample{Metric: "c", Labels: model.Labels{"cluster": "x", "host": "a"}, Value: float64(100 + i), Time: at},
			model.Sample{Metric: "c", Labels: model.Labels{"cluster": "x", "host": "b"}, Value: float64(200 + 2*i), Time: at.Add(-2 * time.Second)},
		)
	}
	now := base.Add(10 * time.Minute)
	if err := eng.Eval(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	var got []model.Alert
	for _, a := range eng.Alerts() {
		if a.State == model.StateFiring {
			got = append(got, a)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d firing alerts, want 1: %+v", len(got), got)
	}
	// The step ending at 10m holds a's sample at 10m, b's at 9m57s and
	// c's at 9m01s; b's counter went from 202 at 1m to 220 at 10m.
	want := map[string]string{"sum": "7", "changes": "0", "increase": "18"}
	for k, w := range want {
		if g := got[0].Annotations[k]; g != w {
			t.Errorf("%s = %s, want %s", k, g, w)
		}
	}
}
