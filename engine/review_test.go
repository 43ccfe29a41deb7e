package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Regression tests for what a code review found after the engine grew
// shared indexes and state records.

func at(m int) time.Time { return time.Date(2026, 1, 1, 0, m, 0, 0, time.UTC) }

func feedEval(t *testing.T, e *Engine, m int, samples ...model.Sample) {
	t.Helper()
	for i := range samples {
		samples[i].Time = at(m)
	}
	e.Store().Append(samples...)
	if err := e.Eval(context.Background(), at(m)); err != nil {
		t.Fatal(err)
	}
}

func up(host string, v float64) model.Sample {
	return model.Sample{Metric: "up", Labels: model.Labels{"host": host}, Value: v}
}

// An every-alert that fires again soon after resolving is one alert, not a
// firing one beside a resolved one with the same fingerprint.
func TestEveryRefireIsOneAlert(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: AllDown
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
`))
	for m, v := range []float64{0, 1, 0} {
		feedEval(t, e, m, up("a", v))
	}
	got := e.Alerts()
	if len(got) != 1 || got[0].State != model.StateFiring {
		t.Fatalf("alerts after fire, resolve, fire: %+v; want one firing", got)
	}
}

// Conditions on the CEL path (they read labels) bind every aggregate of
// each segment, so they agree with the same condition on the native path.
func TestCELPathBindsEveryAggregate(t *testing.T) {
	for _, cond := range []string{
		`count("hb") == 0 && last("up") == 1`,
		`count("hb") == 0 && last("up") == 1 && labels["host"] != "zzz"`,
		`last("up") == 1 && count("hb") == 0 && labels["host"] != "zzz"`,
	} {
		e := New(NewStore(time.Hour))
		e.SetRules(loadRules(t, "groups:\n  - name: g\n    rules:\n      - name: NoHeartbeat\n        severity: high\n        segment_by: [host]\n        condition: '"+cond+"'\n"))
		feedEval(t, e, 0, up("a", 1), up("b", 1), model.Sample{Metric: "hb", Labels: model.Labels{"host": "a"}, Value: 1})
		got := e.Alerts()
		if len(got) != 1 || got[0].Segment["host"] != "b" {
			t.Errorf("%s: alerts %+v; want one, for host b (no heartbeat)", cond, got)
		}
	}
}

// A NaN sample (a summary quantile with no observations) neither hides the
// real samples of its window nor counts as one.
func TestNaNSampleIsIgnored(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: Slow
        severity: high
        segment_by: [host]
        window: 5m
        condition: max("lat") > 5
`))
	for m, v := range []float64{10, 10, math.NaN(), 10} {
		feedEval(t, e, m, model.Sample{Metric: "lat", Labels: model.Labels{"host": "a"}, Value: v})
		if got := e.Alerts(); len(got) != 1 || got[0].State != model.StateFiring {
			t.Fatalf("minute %d: %+v; want firing throughout", m, got)
		}
	}
}

// Alerts hands out snapshots: later evaluations do not change them.
func TestSnapshotsDoNotChange(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: AllHigh
        severity: high
        segment_by: [host]
        across: every
        condition: max("v") > 1
`))
	feedEval(t, e, 0, model.Sample{Metric: "v", Labels: model.Labels{"host": "a"}, Value: 50})
	snap := e.Alerts()[0]
	feedEval(t, e, 1, model.Sample{Metric: "v", Labels: model.Labels{"host": "a"}, Value: 60})
	if snap.Segments[0].Value != 50 {
		t.Fatalf("an earlier snapshot changed: segment value %v, want 50", snap.Segments[0].Value)
	}
}

// keep_firing_for counts on across a restart from where it started.
func TestExportKeepsKeepFiringOrigin(t *testing.T) {
	src := `groups:
  - name: g
    rules:
      - name: Down
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        keep_firing_for: 5m
`
	run := func(restartAt int) (resolvedAt int) {
		e := New(NewStore(time.Hour))
		e.SetRules(loadRules(t, src))
		for m := 0; m <= 10; m++ {
			if m == restartAt {
				b, _ := json.Marshal(e.Export())
				var recs []AlertRecord
				json.Unmarshal(b, &recs)
				e = New(NewStore(time.Hour))
				e.SetRules(loadRules(t, src))
				e.Import(recs)
			}
			v := 1.0
			if m == 0 {
				v = 0
			}
			feedEval(t, e, m, up("a", v))
			for _, a := range e.Alerts() {
				if a.State == model.StateResolved && resolvedAt == 0 {
					resolvedAt = m
				}
			}
		}
		return resolvedAt
	}
	if plain, restarted := run(-1), run(3); plain != 6 || restarted != plain {
		t.Fatalf("resolved at %dm without a restart, %dm with one at 3m; want 6m both", plain, restarted)
	}
}

// A scope that fails on a series keeps the rule unhealthy at every
// evaluation, not only the one that first met the series.
func TestScopeErrorStaysReported(t *testing.T) {
	e := New(NewStore(time.Hour))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: HighPort
        severity: low
        scope: int(labels["port"]) > 1000
        condition: max("up") == 0
`))
	for m := range 3 {
		feedEval(t, e, m, model.Sample{Metric: "up", Labels: model.Labels{"port": "http"}, Value: 0})
		if h := e.RuleStatuses()[0].Health; h.OK || h.Err == "" {
			t.Fatalf("minute %d: rule healthy (%+v); want the scope error reported", m, h)
		}
	}
}

// A failing rule is logged when it starts failing and when it recovers
// (with how many evaluations failed), not at every evaluation: a down
// data source must not bury the log.
func TestFailingRuleLoggedOnChange(t *testing.T) {
	var logs bytes.Buffer
	e := New(NewStore(time.Hour), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	e.SetRules(loadRules(t, `groups:
  - name: g
    rules:
      - name: Overflow
        severity: low
        condition: int(last("x")) > 1
`))
	for m := range 4 {
		feedEval(t, e, m, model.Sample{Metric: "x", Value: 1e300}) // int() overflows
	}
	feedEval(t, e, 4, model.Sample{Metric: "x", Value: 0})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines (failing, recovered), got %d:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; !strings.Contains(l, "level=WARN") || !strings.Contains(l, `msg="rule evaluation failing"`) || !strings.Contains(l, "rule=Overflow") {
		t.Errorf("first line %q; want a WARN that Overflow is failing", l)
	}
	if l := lines[1]; !strings.Contains(l, "level=INFO") || !strings.Contains(l, `msg="rule evaluation recovered"`) || !strings.Contains(l, "failed_evaluations=4") {
		t.Errorf("second line %q; want an INFO that Overflow recovered after 4 failures", l)
	}
	if h := e.RuleStatuses()[0].Health; !h.OK {
		t.Errorf("health after recovery = %+v", h)
	}
}
