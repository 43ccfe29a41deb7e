package engine_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/ruletest"
)

// base is the start of every timeline; step i is base.Add(i*step).
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ruleSet builds a rule set from rules whose fields are written at column
// 0, all in one group. The first rule of every scenario is named R.
func ruleSet(t *testing.T, rulesFields ...string) *rules.RuleSet {
	t.Helper()
	var b strings.Builder
	b.WriteString("groups:\n  - name: g\n    interval: 1m\n    rules:\n")
	for _, f := range rulesFields {
		lines := strings.Split(strings.TrimSpace(f), "\n")
		b.WriteString("      - " + strings.Join(lines, "\n        ") + "\n")
	}
	set, err := rules.Parse([]string{"mem.yaml"}, map[string][]byte{"mem.yaml": []byte(b.String())})
	if err != nil {
		t.Fatalf("rules:\n%s\n%v", b.String(), err)
	}
	return set
}

// in is one input series: values in the compact notation of `vigil test`,
// one per step from base; labels as "k=v,k2=v2".
type in struct {
	metric, labels, values string
}

func parseLabels(s string) model.Labels {
	ls := model.Labels{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			ls[k] = v
		}
	}
	return ls
}

// timeline feeds series into a fresh engine, evaluates at each time and
// records rule R's alerts after each evaluation.
type timeline struct {
	step   time.Duration   // between samples and, unless evals is set, evaluations; default 1m
	evals  []time.Duration // evaluation times, when not every step
	series []in
}

type run struct {
	eng   *engine.Engine
	times []time.Time
	// alerts[i] are rule R's alerts after evaluation i, by segment key.
	alerts []map[string]model.Alert
	health []engine.Health
}

func (tl timeline) run(t *testing.T, set *rules.RuleSet, steps int) *run {
	t.Helper()
	step := tl.step
	if step == 0 {
		step = time.Minute
	}
	var samples []model.Sample
	for _, s := range tl.series {
		vals, err := ruletest.ParseValues(s.values)
		if err != nil {
			t.Fatal(err)
		}
		steps = max(steps, len(vals))
		for k, v := range vals {
			if !math.IsNaN(v) {
				samples = append(samples, model.Sample{Metric: s.metric, Labels: parseLabels(s.labels), Value: v, Time: base.Add(time.Duration(k) * step)})
			}
		}
	}
	slices.SortStableFunc(samples, func(a, b model.Sample) int { return a.Time.Compare(b.Time) })
	evals := tl.evals
	if evals == nil {
		for i := range steps {
			evals = append(evals, time.Duration(i)*step)
		}
	}
	r := &run{eng: engine.New(engine.NewStore(set.MaxWindow))}
	r.eng.SetRules(set)
	next := 0
	for _, at := range evals {
		now := base.Add(at)
		k := next
		for k < len(samples) && !samples[k].Time.After(now) {
			k++
		}
		r.eng.Store().Append(samples[next:k]...)
		next = k
		r.eng.Eval(context.Background(), now)
		r.record(now)
	}
	return r
}

func (r *run) record(now time.Time) {
	got := map[string]model.Alert{}
	for _, a := range r.eng.Alerts() {
		if a.Rule != "R" {
			continue
		}
		if a.State == model.StateResolved && !a.ResolvedAt.Equal(now) {
			continue // resolved earlier, remembered for delivery only
		}
		key := segKey(a.Segment)
		if _, dup := got[key]; dup {
			panic(fmt.Sprintf("two alerts for segment %q at %v", key, now))
		}
		got[key] = a
	}
	r.times = append(r.times, now)
	r.alerts = append(r.alerts, got)
	for _, st := range r.eng.RuleStatuses() {
		if st.Rule.Name == "R" {
			r.health = append(r.health, st.Health)
		}
	}
}

// segKey is the segment's values in label name order: "a" for {host="a"},
// "" for a rule without segment_by or an `across: every` alert.
func segKey(seg model.Labels) string {
	var vs []string
	for _, k := range seg.Names() {
		vs = append(vs, seg[k])
	}
	return strings.Join(vs, ",")
}

// trace is one segment's history: "." no alert, P pending, F firing,
// R resolved at that evaluation; an `across: every` alert adds the number
// of segments it lists (F2).
func (r *run) trace(key string) string {
	toks := make([]string, len(r.alerts))
	for i, m := range r.alerts {
		a, ok := m[key]
		switch {
		case !ok:
			toks[i] = "."
			continue
		case a.State == model.StatePending:
			toks[i] = "P"
		case a.State == model.StateFiring:
			toks[i] = "F"
		case a.State == model.StateResolved:
			toks[i] = "R"
		default:
			toks[i] = "?" + a.State.String()
		}
		if len(a.Segments) > 0 {
			toks[i] += fmt.Sprint(len(a.Segments))
		}
	}
	return strings.Join(toks, " ")
}

func (r *run) keys() []string {
	var out []string
	for _, m := range r.alerts {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (r *run) checkTraces(t *testing.T, want map[string]string) {
	t.Helper()
	for key, w := range want {
		if got := r.trace(key); got != strings.Join(strings.Fields(w), " ") {
			t.Errorf("segment %q\n  at   %s\n  got  %s\n  want %s", key, r.timesLine(), got, w)
		}
	}
	for _, key := range r.keys() {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected alerts for segment %q: %s", key, r.trace(key))
		}
	}
}

func (r *run) timesLine() string {
	var s []string
	for _, tm := range r.times {
		s = append(s, tm.Sub(base).String())
	}
	return strings.Join(s, " ")
}

// minutes lists evaluation times from..to minutes.
func minutes(from, to int) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*time.Minute)
	}
	return out
}

// TestStateMachine runs each scenario through the engine on a stepped
// clock and compares every segment's trace.
func TestStateMachine(t *testing.T) {
	// long raises the store's retention so that gaps in a series test
	// no_data, not the forgetting of series that stopped reporting.
	const long = "name: Long\nseverity: info\nwindow: 10m\ncondition: max(\"unrelated\") == 0"
	const down = "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0\n"
	tests := []struct {
		name  string
		rules []string
		tl    timeline
		want  map[string]string
	}{
		{
			name:  "for fires once held for that long",
			rules: []string{down + "for: 3m"},
			tl:    timeline{series: []in{{"up", "host=a", "1 0x5"}}},
			want:  map[string]string{"a": ". P P P F F F"},
		},
		{
			name:  "for boundary is inclusive: fires at exactly 5m, not at 4m59s",
			rules: []string{down + "for: 5m"},
			tl: timeline{
				series: []in{{"up", "host=a", "0x6"}},
				evals:  []time.Duration{0, time.Minute, 4 * time.Minute, 5*time.Minute - time.Second, 5 * time.Minute, 6 * time.Minute},
			},
			want: map[string]string{"a": "P P P P F F"},
		},
		{
			name:  "for boundary with 30s steps",
			rules: []string{down + "for: 1m"},
			tl:    timeline{step: 30 * time.Second, series: []in{{"up", "host=a", "0x3"}}},
			want:  map[string]string{"a": "P P F F"},
		},
		{
			name:  "for 0 fires at once and resolves at once",
			rules: []string{down},
			tl:    timeline{series: []in{{"up", "host=a", "1 0 0 1 1"}}},
			want:  map[string]string{"a": ". F F R ."},
		},
		{
			name:  "a false evaluation during pending resets it",
			rules: []string{down + "for: 3m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 1 0 0 0 0"}}},
			want:  map[string]string{"a": "P P . P P P F"},
		},
		{
			name:  "flapping never completes for",
			rules: []string{down + "for: 2m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 0 1 0 1 0 0 0"}}},
			want:  map[string]string{"a": "P . P . P . P P F"},
		},
		{
			name:  "flapping without for fires and resolves each time",
			rules: []string{down},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 0 1 0"}}},
			want:  map[string]string{"a": "F R F R F"},
		},
		{
			name:  "keep_firing_for keeps firing after the condition clears",
			rules: []string{down + "keep_firing_for: 3m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 1"}}},
			want:  map[string]string{"a": "F F F"},
		},
		{
			name:  "keep_firing_for: the condition back in time keeps the same firing alert",
			rules: []string{down + "keep_firing_for: 2m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 0 1 0"}}},
			want:  map[string]string{"a": "F F F F F"},
		},
		{
			name:  "keep_firing_for does not extend a pending alert",
			rules: []string{down + "for: 3m\nkeep_firing_for: 10m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 1 0"}}},
			want:  map[string]string{"a": "P P . P"},
		},
		{
			name:  "at_least_once fires at the first true and holds for `for`",
			rules: []string{down + "for: 3m\ntrigger: at_least_once"},
			tl:    timeline{series: []in{{"up", "host=a", "1 0 1 1 1 1 0"}}},
			want:  map[string]string{"a": ". F F F R . F"},
		},
		{
			name:  "resolve then fire again",
			rules: []string{down + "for: 1m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 0 1 1 0 0 0"}}},
			want:  map[string]string{"a": "P F F R . P F F"},
		},
		{
			name:  "any: segments appearing fire on their own",
			rules: []string{down},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0"},
				{"up", "host=b", "_ _ 0 0 0 0"},
				{"up", "host=c", "_ _ _ 1 1 0"},
			}},
			want: map[string]string{"a": "F F F F F F", "b": ". . F F F F", "c": ". . . . . F"},
		},
		{
			name:  "every: segments appearing; one not holding resolves",
			rules: []string{down + "across: every"},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0"},
				{"up", "host=b", "_ _ 0 0 0 0"},
				{"up", "host=c", "_ _ _ 1 1 0"},
			}},
			want: map[string]string{"": "F1 F1 F2 R3 . F3"},
		},
		{
			name:  "every resolves as soon as one segment stops holding",
			rules: []string{down + "across: every\nfor: 1m"},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0"},
				{"up", "host=b", "0 0 0 1 0 0"},
			}},
			want: map[string]string{"": "P2 F2 F2 R2 P2 F2"},
		},
		{
			// b stops reporting: with no_data ok it no longer meets the
			// condition, so the alert resolves; a window and a minute later
			// b no longer counts (a member taken out of the cluster must not
			// keep "every member is down" from firing).
			name:  "every: a segment going silent resolves, then stops counting",
			rules: []string{down + "across: every"},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0 0"},
				{"up", "host=b", "0 0 0 _ _ _ _"},
			}},
			want: map[string]string{"": "F2 F2 F2 R2 F1 F1 F1"},
		},
		{
			name:  "every never fires with zero segments",
			rules: []string{down + "across: every"},
			tl:    timeline{series: []in{{"other", "host=a", "0 0 0"}}},
			want:  map[string]string{},
		},
		{
			// No segment at all: the rule has no data and no_data decides
			// (once the window is covered by data: 1m).
			name:  "every with zero segments and no_data alerting fires",
			rules: []string{down + "across: every\nno_data: alerting\nscope: labels[\"role\"] == \"etcd\""},
			tl:    timeline{series: []in{{"up", "host=a,role=web", "0 0 0"}}},
			want:  map[string]string{"": ". F F"},
		},
		{
			name:  "every with zero segments and no_data ok resolves",
			rules: []string{down + "across: every\nscope: labels[\"role\"] == \"etcd\""},
			tl:    timeline{series: []in{{"up", "host=a,role=etcd", "0 0 _x60"}, {"up", "host=b,role=web", "0x69"}}, evals: []time.Duration{0, time.Minute, 61 * time.Minute, 62 * time.Minute}},
			want:  map[string]string{"": "F1 F1 R ."},
		},
		{
			name:  "every with zero segments and no_data keep_state keeps firing",
			rules: []string{down + "across: every\nno_data: keep_state\nscope: labels[\"role\"] == \"etcd\""},
			tl:    timeline{series: []in{{"up", "host=a,role=etcd", "0 0 _x60"}, {"up", "host=b,role=web", "0x69"}}, evals: []time.Duration{0, time.Minute, 61 * time.Minute, 62 * time.Minute}},
			want:  map[string]string{"": "F1 F1 F1 F1"},
		},
		{
			name:  "no_data ok resolves",
			rules: []string{down, long},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 _ _ 0"}}},
			want:  map[string]string{"a": "F F R . F"},
		},
		{
			name:  "no_data ok ends pending",
			rules: []string{down + "for: 2m", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 _ 0 0 0"}}},
			want:  map[string]string{"a": "P . P P F"},
		},
		{
			name:  "no_data alerting keeps a firing alert",
			rules: []string{down + "no_data: alerting", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 _ _ 1"}}},
			want:  map[string]string{"a": "F F F F R"},
		},
		{
			name:  "no_data alerting fires a healthy segment",
			rules: []string{down + "no_data: alerting", long},
			tl:    timeline{series: []in{{"up", "host=a", "1 _ _ 1"}}},
			want:  map[string]string{"a": ". F F R"},
		},
		{
			name:  "no_data alerting counts towards for",
			rules: []string{down + "no_data: alerting\nfor: 2m", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 _ _ _"}}},
			want:  map[string]string{"a": "P P F F"},
		},
		{
			name:  "no_data keep_state keeps firing",
			rules: []string{down + "no_data: keep_state", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 0 _ _ 1"}}},
			want:  map[string]string{"a": "F F F F R"},
		},
		{
			name:  "no_data keep_state keeps a healthy segment quiet",
			rules: []string{down + "no_data: keep_state", long},
			tl:    timeline{series: []in{{"up", "host=a", "1 _ _ 0"}}},
			want:  map[string]string{"a": ". . . F"},
		},
		{
			// The for clock runs through the gap: pending since 0m, it
			// fires at 2m without data, as the same rule with every does.
			name:  "no_data keep_state neither resolves nor restarts pending",
			rules: []string{down + "no_data: keep_state\nfor: 2m", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 _ _ 0"}}},
			want:  map[string]string{"a": "P P F F"},
		},
		{
			name:  "no_data keep_state: every fires during the gap too",
			rules: []string{down + "no_data: keep_state\nfor: 2m\nacross: every", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 _ _ 0"}}},
			want:  map[string]string{"": "P1 P1 F1 F1"},
		},
		{
			// A gap longer than for: no longer pending at 1m, forgotten
			// with its series an hour after its last sample.
			name:  "no_data keep_state fires a pending alert in a long gap",
			rules: []string{down + "no_data: keep_state\nfor: 5m", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 _x70"}}, evals: []time.Duration{0, time.Minute, 4 * time.Minute, 5 * time.Minute, 30 * time.Minute, 59 * time.Minute, 61 * time.Minute}},
			want:  map[string]string{"a": "P P P F F F R"},
		},
		{
			// keep_state repeats the last outcome: false, so a firing alert
			// counting down keep_firing_for goes on counting in the gap.
			name:  "no_data keep_state repeats a false outcome",
			rules: []string{down + "no_data: keep_state\nkeep_firing_for: 2m", long},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 _ _ _"}}},
			want:  map[string]string{"a": "F F F R ."},
		},
		{
			// Increases: 60 60 (reset to 30) 30 60 over 4m: 210/240s.
			// Without reset handling the last two steps would not hold.
			name:  "rate handles counter resets",
			rules: []string{"name: R\nseverity: low\nsegment_by: [host]\nwindow: 10m\ncondition: rate(\"req\") > 0.8"},
			tl:    timeline{series: []in{{"req", "host=a", "0 60 120 30 90"}}, evals: minutes(1, 4)},
			want:  map[string]string{"a": "F F F F"},
		},
		{
			// A drop to 0 is a reset with no increase since: rate 0, where
			// last minus first would give a negative rate.
			name:  "rate needs two samples; a drop is a reset, not a negative rate",
			rules: []string{"name: R\nseverity: low\nsegment_by: [host]\nwindow: 10m\ncondition: rate(\"req\") >= 0 && rate(\"req\") < 0.1"},
			tl:    timeline{series: []in{{"req", "host=a", "5 5 5 0"}}, evals: minutes(1, 3)},
			want:  map[string]string{"a": "F F F"},
		},
		{
			name:  "two-level: rates per series, averaged across the segment",
			rules: []string{"name: R\nseverity: low\nsegment_by: [cluster]\nwindow: 10m\ncondition: avg(rate(\"req\")) > 1.5"},
			tl: timeline{series: []in{
				{"req", "cluster=x,host=a", "0+60x3"},  // 1/s
				{"req", "cluster=x,host=b", "0+180x3"}, // 3/s
				{"req", "cluster=y,host=c", "0+60x3"},  // 1/s
			}, evals: minutes(1, 3)},
			want: map[string]string{"x": "F F F"},
		},
		{
			// Median of 4; 1 3 4 is 3; 1 2 3 4 is 2.5, interpolated.
			name:  "percentile interpolates between ranks",
			rules: []string{"name: R\nseverity: low\nwindow: 10m\ncondition: percentile(\"lat\", 50) > 2.4 && percentile(\"lat\", 50) < 2.6"},
			tl:    timeline{series: []in{{"lat", "host=a", "4 1 3 2"}}},
			want:  map[string]string{"": ". F R F"},
		},
		{
			// Population standard deviation; 2 4 4 4 5 5 7 9 has 2.
			name:  "stddev",
			rules: []string{"name: R\nseverity: low\nwindow: 10m\ncondition: stddev(\"lat\") > 1.2"},
			tl:    timeline{series: []in{{"lat", "host=a", "2 4 4 4 5 5 7 9"}}},
			want:  map[string]string{"": ". . . . . . F F"},
		},
		{
			// At 2m the window (0, 2m] holds the samples at 1m and 2m only.
			name:  "window is left-open: count",
			rules: []string{"name: R\nseverity: low\nwindow: 2m\ncondition: count(\"up\") == 2"},
			tl:    timeline{series: []in{{"up", "host=a", "1 1 1 1"}}},
			want:  map[string]string{"": ". F F F"},
		},
		{
			name:  "window is left-open: a sample exactly window ago is outside",
			rules: []string{down, long},
			tl: timeline{
				series: []in{{"up", "host=a", "0"}},
				evals:  []time.Duration{0, 30 * time.Second, time.Minute - time.Nanosecond, time.Minute},
			},
			want: map[string]string{"a": "F F F R"},
		},
		{
			name:  "a changed segment value is a different alert",
			rules: []string{down},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 _ _"},
				{"up", "host=b", "_ _ 0 0"},
			}},
			want: map[string]string{"a": "F F R .", "b": ". . F F"},
		},
		{
			name:  "scope: series out of scope are ignored, missing labels too",
			rules: []string{down + "scope: labels[\"role\"] == \"etcd\" && metric == \"up\""},
			tl: timeline{series: []in{
				{"up", "host=a,role=etcd", "0 0"},
				{"up", "host=b,role=web", "0 0"},
				{"up", "host=c", "0 0"},
			}},
			want: map[string]string{"a": "F F"},
		},
		{
			name:  "scope by prefix",
			rules: []string{"name: R\nseverity: high\nsegment_by: [ns]\nscope: labels[\"ns\"].startsWith(\"prod\")\ncondition: max(\"up\") == 0"},
			tl: timeline{series: []in{
				{"up", "ns=prod-eu", "0"},
				{"up", "ns=production", "0"},
				{"up", "ns=staging", "0"},
			}},
			want: map[string]string{"prod-eu": "F", "production": "F"},
		},
		{
			name:  "two metrics compared",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\nwindow: 10m\ncondition: last(\"used\") / last(\"quota\") > 0.8"},
			tl: timeline{series: []in{
				{"used", "host=a", "7 8 9 7"},
				{"quota", "host=a", "10 10 10 10"},
			}},
			want: map[string]string{"a": ". . F R"},
		},
		{
			name:  "labels in a condition",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0 && labels[\"host\"] != \"b\""},
			tl: timeline{series: []in{
				{"up", "host=a", "0"},
				{"up", "host=b", "0"},
			}},
			want: map[string]string{"a": "F"},
		},
		// Found by these tests in the first engine (commit 71baa00):
		{
			// keep_firing_for counts from the first evaluation at which the
			// condition no longer holds (as Prometheus does), not from the
			// last at which it held: cleared at 1m, kept 3m, resolved at 4m.
			name:  "keep_firing_for counts from when the condition cleared",
			rules: []string{down + "keep_firing_for: 3m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 1 1 1 1"}}},
			want:  map[string]string{"a": "F F F F R ."},
		},
		{
			// A host that stops reporting altogether is what no_data:
			// alerting is for: it must keep firing while the host stays
			// silent, not resolve once its samples leave the store.
			name:  "no_data alerting keeps firing for a host that vanished",
			rules: []string{down + "no_data: alerting"},
			tl:    timeline{series: []in{{"up", "host=a", "1 _x20"}}},
			want:  map[string]string{"a": ". F F F F F F F F F F F F F F F F F F F F"},
		},
		{
			// quota is not collected yet: until the 5m window is covered
			// by data (from 0m), that may be a collector yet to run, so
			// no_data waits; then the segment has no data and fires.
			name:  "warm-up: no data before the window is covered changes nothing",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\nwindow: 5m\ncondition: last(\"used\") / last(\"quota\") > 0.8\nno_data: alerting"},
			tl:    timeline{series: []in{{"used", "host=a", "1x6"}}},
			want:  map[string]string{"a": ". . . . . F F"},
		},
		{
			// b's quota is not collected yet: during warm-up b is neither
			// for nor against, so "every host is over quota" cannot hold
			// on a alone; once warm, b has no data and (no_data ok) fails.
			name:  "warm-up: every does not hold without the segments not yet seen",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\nacross: every\nwindow: 5m\ncondition: last(\"used\") / last(\"quota\") > 0.8"},
			tl: timeline{series: []in{
				{"used", "host=a", "1x6"}, {"quota", "host=a", "1x6"},
				{"used", "host=b", "1x6"},
			}},
			want: map[string]string{},
		},
		{
			// Forgotten an hour after its last sample (0m): the firing
			// alert resolves then, whatever no_data says; it is not dropped.
			name:  "a firing alert whose series are forgotten resolves",
			rules: []string{down + "no_data: alerting"},
			tl:    timeline{series: []in{{"up", "host=a", "0 _x70"}}, evals: []time.Duration{0, time.Minute, 59 * time.Minute, 60 * time.Minute, 61 * time.Minute}},
			want:  map[string]string{"a": "F F F R ."},
		},
		{
			name:  "every: a segment going silent still counts with no_data alerting",
			rules: []string{down + "across: every\nno_data: alerting"},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0 0"},
				{"up", "host=b", "0 0 0 _ _ _ _"},
			}},
			want: map[string]string{"": "F2 F2 F2 F2 F2 F2 F2"},
		},
		{
			// One sample in the window is not enough for a rate: that is
			// no data, not a failed evaluation (checked below: healthy).
			// (Data from 0m, so that the 10m window is covered: no warm-up.)
			name:  "rate over a single sample is no data",
			rules: []string{"name: R\nseverity: low\nsegment_by: [host]\nwindow: 10m\ncondition: rate(\"req\") > 0.8\nno_data: alerting"},
			tl:    timeline{series: []in{{"req", "host=a", "_x10 0 60"}, {"other", "", "0"}}, evals: minutes(10, 11)},
			want:  map[string]string{"a": "F F"},
		},
		{
			name:  "one of two metrics without samples is no data, not an error",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"a\") == 0 || max(\"b\") == 0\nno_data: ok"},
			tl:    timeline{series: []in{{"a", "host=x", "1 0"}}, step: time.Minute},
			want:  map[string]string{"x": ". F"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.tl.run(t, ruleSet(t, tc.rules...), 0)
			r.checkTraces(t, tc.want)
			for i, h := range r.health {
				if !h.OK {
					t.Errorf("rule R unhealthy at %v: %s", r.times[i].Sub(base), h.Err)
				}
			}
		})
	}
}

// TestAlertIdentity: an alert that resolves and fires again keeps its
// Fingerprint and gets a new ActiveAt; another segment is another alert.
func TestAlertIdentity(t *testing.T) {
	set := ruleSet(t, "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0\nfor: 1m")
	r := timeline{series: []in{
		{"up", "host=a", "0 0 0 1 1 0 0 0"},
		{"up", "host=b", "1 1 1 1 1 0 0 0"},
	}}.run(t, set, 0)
	r.checkTraces(t, map[string]string{"a": "P F F R . P F F", "b": ". . . . . P F F"})
	first, resolved, second := r.alerts[2]["a"], r.alerts[3]["a"], r.alerts[7]["a"]
	checks := []struct {
		what      string
		got, want any
	}{
		{"first ActiveAt", first.ActiveAt, base},
		{"first FiredAt", first.FiredAt, base.Add(time.Minute)},
		{"ResolvedAt", resolved.ResolvedAt, base.Add(3 * time.Minute)},
		{"resolved keeps FiredAt", resolved.FiredAt, base.Add(time.Minute)},
		{"second ActiveAt", second.ActiveAt, base.Add(5 * time.Minute)},
		{"second FiredAt", second.FiredAt, base.Add(6 * time.Minute)},
		{"second ResolvedAt", second.ResolvedAt, time.Time{}},
		{"same Fingerprint after refiring", second.Fingerprint, first.Fingerprint},
		{"resolved Fingerprint", resolved.Fingerprint, first.Fingerprint},
		{"other segment, other Fingerprint", r.alerts[7]["b"].Fingerprint != first.Fingerprint, true},
		{"Fingerprint not empty", first.Fingerprint != "", true},
		{"LastEvalAt", second.LastEvalAt, base.Add(7 * time.Minute)},
		{"Segment", second.Segment.String(), `{host="a"}`},
		{"Labels", second.Labels.String(), `{alertname="R", host="a", severity="high"}`},
		{"Severity", second.Severity, "high"},
		{"Group", second.Group, "g"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// TestAlertContent: labels common to the segment's series, the rule's
// labels, the value, and annotations, including one whose template fails
// at run time: the alert still fires, carrying the error.
func TestAlertContent(t *testing.T) {
	set := ruleSet(t, `name: R
severity: high
segment_by: [host.mac]
window: 10m
condition: last("used") / last("quota") > 0.8
labels: {team: storage}
annotations:
  summary: '{{ label "host.hostName" }} at {{ value | humanizePercentage }}'
  broken: '{{ index .Segments 3 }}'`)
	r := timeline{series: []in{
		{"used", "host.mac=aa,host.hostName=etcd-1,disk=sda", "9"},
		{"quota", "host.mac=aa,host.hostName=etcd-1,disk=sdb", "10"},
	}}.run(t, set, 0)
	a, ok := r.alerts[0]["aa"]
	if !ok || a.State != model.StateFiring {
		t.Fatalf("alerts %v, want R firing for aa", r.alerts[0])
	}
	if got, want := a.Labels.String(), `{alertname="R", host.hostName="etcd-1", host.mac="aa", severity="high", team="storage"}`; got != want {
		t.Errorf("labels %s, want %s (disk differs between the series, so it is not common)", got, want)
	}
	if math.Abs(a.Value-0.9) > 1e-9 {
		t.Errorf("value %v, want 0.9 (the left side of the comparison)", a.Value)
	}
	if got, want := a.Annotations["summary"], "etcd-1 at 90%"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if b := a.Annotations["broken"]; !strings.Contains(b, "template error") || !strings.Contains(b, "index") {
		t.Errorf("broken annotation %q, want the template error", b)
	}
}

// TestEveryAlertContent: the single alert of `across: every` lists its
// segments with their values and keeps only the labels they share.
func TestEveryAlertContent(t *testing.T) {
	set := ruleSet(t, `name: R
severity: critical
segment_by: [host]
across: every
condition: max("up") == 0
annotations:
  summary: 'all {{ len .Segments }} members of {{ label "cluster" }} are down'`)
	r := timeline{series: []in{
		{"up", "host=a,cluster=main", "0"},
		{"up", "host=b,cluster=main", "0"},
	}}.run(t, set, 0)
	a := r.alerts[0][""]
	if a.State != model.StateFiring || len(a.Segments) != 2 {
		t.Fatalf("got %+v, want one firing alert with 2 segments", a)
	}
	if got, want := a.Labels.String(), `{alertname="R", cluster="main", severity="critical"}`; got != want {
		t.Errorf("labels %s, want %s", got, want)
	}
	if a.Segments[0].Labels["host"] != "a" || a.Segments[1].Labels["host"] != "b" {
		t.Errorf("segments %v, want a then b", a.Segments)
	}
	if got, want := a.Annotations["summary"], "all 2 members of main are down"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// TestRuntimeError: a condition that fails at run time marks the rule
// unhealthy with the error, never resolves a firing alert, and other rules
// go on.
func TestRuntimeError(t *testing.T) {
	// true || error is true; false || error is an error.
	const cond = `condition: max("up") == 0 || labels["missing"] == "x"`
	tests := []struct {
		name   string
		rule   string
		series []in
		want   map[string]string
		// healthy[i] is R's health after evaluation i.
		healthy []bool
	}{
		{
			name:    "any",
			rule:    "name: R\nseverity: high\nsegment_by: [host]\n" + cond,
			series:  []in{{"up", "host=a", "0 0 1 1 0"}},
			want:    map[string]string{"a": "F F F F F"},
			healthy: []bool{true, true, false, false, true},
		},
		{
			name:    "any, pending",
			rule:    "name: R\nseverity: high\nsegment_by: [host]\nfor: 3m\n" + cond,
			series:  []in{{"up", "host=a", "0 1 0 0 0"}},
			want:    map[string]string{"a": "P P P F F"},
			healthy: []bool{true, false, true, true, true},
		},
		{
			// Segment c appears at 1m and errs before it ever held: an
			// error is neither for nor against, so the alert stays firing.
			name: "every, a new segment errs",
			rule: "name: R\nseverity: high\nsegment_by: [host]\nacross: every\n" + cond,
			series: []in{
				{"up", "host=a", "0 0 0 0"},
				{"up", "host=b", "0 0 0 0"},
				{"up", "host=c", "_ 1 1 0"},
			},
			want:    map[string]string{"": "F2 F2 F2 F3"},
			healthy: []bool{true, false, false, true},
		},
		{
			name: "every",
			rule: "name: R\nseverity: high\nsegment_by: [host]\nacross: every\n" + cond,
			series: []in{
				{"up", "host=a", "0 0 0 0"},
				{"up", "host=b", "0 1 1 0"},
			},
			want:    map[string]string{"": "F2 F2 F2 F2"},
			healthy: []bool{true, false, false, true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := ruleSet(t, tc.rule, "name: Other\nseverity: low\ncondition: max(\"up\") == 1")
			r := timeline{series: tc.series}.run(t, set, 0)
			r.checkTraces(t, tc.want)
			var got []bool
			for i, h := range r.health {
				got = append(got, h.OK)
				if !h.OK && !strings.Contains(h.Err, "missing") {
					t.Errorf("at %v: error %q does not say what failed", r.times[i].Sub(base), h.Err)
				}
				if h.OK && h.Err != "" {
					t.Errorf("at %v: healthy with error %q", r.times[i].Sub(base), h.Err)
				}
			}
			if !slices.Equal(got, tc.healthy) {
				t.Errorf("health %v, want %v", got, tc.healthy)
			}
			var otherFired bool
			for _, a := range r.eng.Alerts() {
				otherFired = otherFired || a.Rule == "Other"
			}
			for _, st := range r.eng.RuleStatuses() {
				if st.Rule.Name == "Other" && !st.Health.OK {
					t.Errorf("rule Other unhealthy: %s", st.Health.Err)
				}
			}
			if !otherFired {
				t.Error("rule Other was not evaluated")
			}
		})
	}
}

// TestSetRules: a reload keeps a pending alert's timer unless the rule's
// across or segment_by changed; a changed condition or for decides it from
// the next evaluation; a changed annotation shows at once.
func TestSetRules(t *testing.T) {
	const rule = "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0\nfor: 3m\n"
	tests := []struct {
		name   string
		reload string // the rule set swapped in after the evaluation at 1m
		want   string
	}{
		{"unchanged", rule, "P P P F F"},
		{"annotation changed", rule + "annotations: {summary: new}", "P P P F F"},
		{"severity changed", strings.Replace(rule, "high", "low", 1), "P P P F F"},
		// Alerts match by rule name and segment labels: a new condition
		// or for decides the alerts the rule has, from the next evaluation.
		{"condition changed", strings.Replace(rule, "== 0", "< 1", 1), "P P P F F"},
		{"condition no longer holds", strings.Replace(rule, "== 0", "> 0", 1), "P P . . ."},
		{"for shortened", strings.Replace(rule, "3m", "2m", 1), "P P F F F"},
		{"for lengthened", strings.Replace(rule, "3m", "4m", 1), "P P P P F"},
		{"window changed", rule + "window: 5m", "P P P F F"},
		{"scope changed", rule + `scope: labels["host"] != ""`, "P P P F F"},
		{"segment_by changed", strings.Replace(rule, "[host]", "[host, dc]", 1), "P P . . ."},
		{"across changed", rule + "across: every", "P P P P P"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := engine.New(engine.NewStore(time.Hour))
			eng.SetRules(ruleSet(t, rule))
			var toks []string
			for i := range 5 {
				now := base.Add(time.Duration(i) * time.Minute)
				if i == 2 {
					eng.SetRules(ruleSet(t, tc.reload))
				}
				eng.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": "a"}, Value: 0, Time: now})
				eng.Eval(context.Background(), now)
				tok := "."
				for _, a := range eng.Alerts() {
					switch a.State {
					case model.StatePending:
						tok = "P"
					case model.StateFiring:
						tok = "F"
						if tc.name == "annotation changed" && a.Annotations["summary"] != "new" {
							t.Errorf("annotation %q after reload, want new", a.Annotations["summary"])
						}
						if tc.name == "severity changed" && a.Severity != "low" {
							t.Errorf("severity %q after reload, want low", a.Severity)
						}
					}
				}
				toks = append(toks, tok)
			}
			if got := strings.Join(toks, " "); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSetRulesRemovesRule: the firing alert of a rule removed by a reload
// resolves at the next evaluation (once: the receiver is told it is over),
// its pending alert goes quietly, and both are forgotten after the resolved
// retention.
func TestSetRulesRemovesRule(t *testing.T) {
	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(ruleSet(t, "name: R\nseverity: high\ncondition: max(\"up\") == 0",
		"name: P\nseverity: high\ncondition: max(\"up\") == 0\nfor: 1h",
		"name: S\nseverity: low\ncondition: max(\"up\") == 0"))
	eng.Store().Append(model.Sample{Metric: "up", Value: 0, Time: base})
	eng.Eval(context.Background(), base)
	if n := len(eng.Alerts()); n != 3 {
		t.Fatalf("%d alerts, want 3", n)
	}
	eng.SetRules(ruleSet(t, "name: S\nseverity: low\ncondition: max(\"up\") == 0"))
	if st := eng.RuleStatuses(); len(st) != 1 || st[0].Rule.Name != "S" {
		t.Errorf("statuses %v, want only S", st)
	}
	states := func() map[string]string {
		got := map[string]string{}
		for _, a := range eng.Alerts() {
			got[a.Rule] = a.State.String()
			if a.Rule == "R" && a.State == model.StateResolved && !a.ResolvedAt.Equal(base.Add(time.Minute)) {
				t.Errorf("R resolved at %v, want 1m", a.ResolvedAt.Sub(base))
			}
		}
		return got
	}
	if got := states(); got["R"] != "firing" || got["P"] != "" {
		t.Errorf("before the next evaluation: %v, want R firing until then, P gone", got)
	}
	for _, step := range []struct {
		min  int
		want string
	}{{1, "resolved"}, {10, "resolved"}, {16, ""}} {
		i, want := step.min, step.want
		now := base.Add(time.Duration(i) * time.Minute)
		eng.Store().Append(model.Sample{Metric: "up", Value: 0, Time: now})
		eng.Eval(context.Background(), now)
		if got := states(); got["R"] != want || got["P"] != "" || got["S"] != "firing" {
			t.Errorf("at %dm: %v, want R %q, no P, S firing", i, got, want)
		}
	}
}

// TestStoreBounded: memory follows the rules' longest window, not uptime.
func TestStoreBounded(t *testing.T) {
	eng := engine.New(engine.NewStore(0))
	eng.SetRules(ruleSet(t, "name: R\nseverity: low\nwindow: 5m\nsegment_by: [host]\ncondition: avg(\"cpu\") > 0.9"))
	const hosts, step = 10, 10 * time.Second
	maxSamples := 0
	for i := range 1000 { // almost three hours
		now := base.Add(time.Duration(i) * step)
		var batch []model.Sample
		for h := range hosts {
			if h == 0 && i > 100 {
				continue // host 0 stops reporting after ~17 minutes
			}
			batch = append(batch, model.Sample{Metric: "cpu", Labels: model.Labels{"host": fmt.Sprint(h)}, Value: 0.5, Time: now})
		}
		eng.Store().Append(batch...)
		eng.Eval(context.Background(), now)
		_, n := eng.Store().Stats()
		maxSamples = max(maxSamples, n)
	}
	retention := eng.Store().Retention()
	if retention < 5*time.Minute || retention > 10*time.Minute {
		t.Errorf("retention %v for a 5m window", retention)
	}
	// Each series holds at most a retention's worth of samples, plus what
	// arrives between two GCs.
	limit := hosts * int((retention+2*time.Minute)/step)
	if maxSamples > limit {
		t.Errorf("store peaked at %d samples, want at most %d", maxSamples, limit)
	}
	series, _ := eng.Store().Stats()
	if series != hosts-1 {
		t.Errorf("%d series, want %d: the host that stopped reporting is dropped", series, hosts-1)
	}
}

// TestStoreGC: samples older than the retention go; a series that stopped
// reporting goes too, eventually, while others keep reporting.
func TestStoreGC(t *testing.T) {
	s := engine.NewStore(2 * time.Minute)
	for i := range 10 {
		now := base.Add(time.Duration(i) * time.Minute)
		s.Append(model.Sample{Metric: "a", Value: 1, Time: now})
		if i < 3 {
			s.Append(model.Sample{Metric: "b", Value: 1, Time: now})
		}
	}
	if series, samples := s.Stats(); series != 2 || samples != 2+2 {
		t.Fatalf("before GC: %d series, %d samples; want 2, 4 (appends trim to 2m behind each series' newest)", series, samples)
	}
	s.GC(base.Add(9 * time.Minute))
	if _, samples := s.Stats(); samples != 2 {
		t.Errorf("after GC: %d samples; want 2 (a keeps (7m, 9m]; b's are older)", samples)
	}
	// The same time twice replaces the value.
	s.Append(model.Sample{Metric: "a", Value: 2, Time: base.Add(9 * time.Minute)})
	if _, samples := s.Stats(); samples != 2 {
		t.Errorf("%d samples after a repeated time, want 2", samples)
	}
	// a reports for a day; b never again.
	for i := 10; i < 24*60; i++ {
		now := base.Add(time.Duration(i) * time.Minute)
		s.Append(model.Sample{Metric: "a", Value: 1, Time: now})
		s.GC(now)
	}
	if series, samples := s.Stats(); series != 1 || samples != 2 {
		t.Errorf("a day later: %d series, %d samples; want 1, 2 (b forgotten)", series, samples)
	}
	// A sample again for a forgotten series starts it afresh.
	s.Append(model.Sample{Metric: "b", Value: 1, Time: base.Add(24 * time.Hour)})
	if series, _ := s.Stats(); series != 2 {
		t.Errorf("%d series after b came back, want 2", series)
	}
}

// TestConcurrentUse: collectors append while the scheduler evaluates and
// the API reads; run with -race.
func TestConcurrentUse(t *testing.T) {
	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(ruleSet(t, "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			eng.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": fmt.Sprint(i % 7)}, Value: float64(i % 2), Time: base.Add(time.Duration(i) * time.Second)})
		}
	}()
	for i := range 200 {
		eng.Eval(context.Background(), base.Add(time.Duration(i)*time.Second))
		_ = eng.Alerts()
		_ = eng.RuleStatuses()
		if i == 100 {
			eng.SetRules(ruleSet(t, "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0"))
		}
	}
	<-done
}
