package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// observer turns successive alert lists into what a receiver would hear:
// "3m R{host="a"} resolved". A firing alert that disappears is "vanished"
// (the dispatcher resolves it, but the engine said nothing), and so is one
// that goes back to pending (a new life of the same alert); one that goes
// from firing to firing with another FiredAt is "refired" (paged again).
type observer struct {
	last   map[string]model.Alert
	events []string
}

func (o *observer) see(now time.Time, alerts []model.Alert) {
	cur := map[string]model.Alert{}
	var evs []string
	ev := func(k, what string) { evs = append(evs, fmt.Sprintf("%s %s %s", now.Sub(base), k, what)) }
	for _, a := range alerts {
		k := a.Rule + a.Segment.String()
		cur[k] = a
		p, had := o.last[k]
		switch {
		case a.State == model.StateFiring && had && p.State == model.StateFiring && !p.FiredAt.Equal(a.FiredAt):
			ev(k, "refired")
		case a.State == model.StateFiring && (!had || p.State != model.StateFiring):
			ev(k, "fired")
		case a.State == model.StateResolved && (!had || p.State != model.StateResolved):
			ev(k, "resolved")
		case a.State == model.StatePending && (!had || p.State != model.StatePending):
			ev(k, "pending")
		}
	}
	for k, p := range o.last {
		if a, ok := cur[k]; p.State == model.StateFiring && (!ok || a.State == model.StatePending) {
			ev(k, "vanished")
		}
	}
	slices.Sort(evs)
	o.events = append(o.events, evs...)
	o.last = cur
}

// TestEditKeepsAlerts: alerts are matched to an edited rule by rule name
// and segment labels. A changed threshold, for, window or scope keeps
// firing alerts firing (never paged again) and the new rule decides them
// at the next evaluation: one resolution if it no longer holds. A changed
// segment_by or across, or a renamed rule, starts afresh, and the old
// firing alerts resolve at the next evaluation rather than vanish. The same
// holds for a restart after the edit (Export, JSON, Import), where the only
// difference is warm-up: the first evaluation of the new process cannot
// end a restored alert, and alerts the new rules do not match are left to
// the dispatcher's delivery records (they vanish from the engine).
func TestEditKeepsAlerts(t *testing.T) {
	const (
		anyRule   = "name: R\nseverity: high\nsegment_by: [host, dc]\ncondition: max(\"up\") == 0\nfor: 2m\n"
		everyRule = "name: E\nseverity: critical\nsegment_by: [host, dc]\nacross: every\ncondition: max(\"up\") == 0\nfor: 1m\n"
	)
	const (
		ra = `R{dc="x", host="a"}`
		rb = `R{dc="x", host="b"}`
	)
	// Before the edit at 3m (both hosts down from 0m): E fired at 1m, R's
	// alerts at 2m.
	before := []string{
		`0s E{} pending`, `0s ` + ra + ` pending`, `0s ` + rb + ` pending`,
		`1m0s E{} fired`,
		`2m0s ` + ra + ` fired`, `2m0s ` + rb + ` fired`,
	}
	tests := []struct {
		name        string
		any, every  string // the edited rules
		want        []string
		wantRestart []string // when it differs after a restart
	}{
		{name: "unchanged", any: anyRule, every: everyRule},
		{
			name: "threshold changed, still holds",
			any:  strings.Replace(anyRule, "== 0", "< 0.5", 1), every: strings.Replace(everyRule, "== 0", "<= 0", 1),
		},
		{
			name: "threshold changed, no longer holds",
			any:  strings.Replace(anyRule, "== 0", "== 5", 1), every: strings.Replace(everyRule, "== 0", "> 1", 1),
			want:        []string{`3m0s E{} resolved`, `3m0s ` + ra + ` resolved`, `3m0s ` + rb + ` resolved`},
			wantRestart: []string{`4m0s E{} resolved`, `4m0s ` + ra + ` resolved`, `4m0s ` + rb + ` resolved`},
		},
		{
			name: "for lengthened: firing stays firing",
			any:  strings.Replace(anyRule, "2m", "30m", 1), every: strings.Replace(everyRule, "1m", "30m", 1),
		},
		{
			name:  "window, scope, trigger, keep_firing_for and no_data changed",
			any:   anyRule + "window: 5m\nscope: labels[\"dc\"] == \"x\"\nkeep_firing_for: 1m\nno_data: alerting\n",
			every: everyRule + "window: 5m\ntrigger: at_least_once\n",
		},
		{
			name: "segment_by reordered",
			any:  strings.Replace(anyRule, "[host, dc]", "[dc, host]", 1), every: strings.Replace(everyRule, "[host, dc]", "[dc, host]", 1),
		},
		{
			name: "segment_by changed: old alerts resolve, new ones start afresh",
			any:  strings.Replace(anyRule, "[host, dc]", "[host]", 1), every: strings.Replace(everyRule, "[host, dc]", "[dc]", 1),
			want: []string{
				`3m0s E{} vanished`, `3m0s E{} pending`, // same identity, a new life: one alert
				`3m0s ` + ra + ` resolved`, `3m0s ` + rb + ` resolved`,
				`3m0s R{host="a"} pending`, `3m0s R{host="b"} pending`,
				`4m0s E{} fired`,
				`5m0s R{host="a"} fired`, `5m0s R{host="b"} fired`,
			},
			wantRestart: []string{
				`3m0s E{} vanished`, `3m0s E{} pending`, `3m0s R{host="a"} pending`, `3m0s R{host="b"} pending`,
				`3m0s ` + ra + ` vanished`, `3m0s ` + rb + ` vanished`,
				`4m0s E{} fired`,
				`5m0s R{host="a"} fired`, `5m0s R{host="b"} fired`,
			},
		},
		{
			name: "renamed",
			any:  strings.Replace(anyRule, "name: R", "name: R2", 1), every: strings.Replace(everyRule, "name: E", "name: E2", 1),
			want: []string{
				`3m0s E2{} pending`, `3m0s E{} resolved`,
				`3m0s R2{dc="x", host="a"} pending`, `3m0s R2{dc="x", host="b"} pending`,
				`3m0s ` + ra + ` resolved`, `3m0s ` + rb + ` resolved`,
				`4m0s E2{} fired`,
				`5m0s R2{dc="x", host="a"} fired`, `5m0s R2{dc="x", host="b"} fired`,
			},
			wantRestart: []string{
				`3m0s E2{} pending`, `3m0s E{} vanished`,
				`3m0s R2{dc="x", host="a"} pending`, `3m0s R2{dc="x", host="b"} pending`,
				`3m0s ` + ra + ` vanished`, `3m0s ` + rb + ` vanished`,
				`4m0s E2{} fired`,
				`5m0s R2{dc="x", host="a"} fired`, `5m0s R2{dc="x", host="b"} fired`,
			},
		},
		{
			name: "across changed",
			any:  anyRule + "across: every\n", every: strings.Replace(everyRule, "across: every", "across: any", 1),
			want: []string{
				`3m0s E{dc="x", host="a"} pending`, `3m0s E{dc="x", host="b"} pending`, `3m0s E{} resolved`,
				`3m0s R{} pending`, `3m0s ` + ra + ` resolved`, `3m0s ` + rb + ` resolved`,
				`4m0s E{dc="x", host="a"} fired`, `4m0s E{dc="x", host="b"} fired`,
				`5m0s R{} fired`,
			},
			wantRestart: []string{
				`3m0s E{dc="x", host="a"} pending`, `3m0s E{dc="x", host="b"} pending`, `3m0s E{} vanished`,
				`3m0s R{} pending`, `3m0s ` + ra + ` vanished`, `3m0s ` + rb + ` vanished`,
				`4m0s E{dc="x", host="a"} fired`, `4m0s E{dc="x", host="b"} fired`,
				`5m0s R{} fired`,
			},
		},
	}
	feed := func(eng *engine.Engine, now time.Time) {
		for _, h := range []string{"a", "b"} {
			eng.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": h, "dc": "x"}, Value: 0, Time: now})
		}
	}
	for _, tc := range tests {
		for _, restart := range []bool{false, true} {
			name := tc.name
			if restart {
				name += ", after a restart"
			}
			t.Run(name, func(t *testing.T) {
				eng := engine.New(engine.NewStore(time.Hour))
				eng.SetRules(ruleSet(t, anyRule, everyRule))
				var o observer
				for i := range 8 {
					now := base.Add(time.Duration(i) * time.Minute)
					if i == 3 {
						edited := ruleSet(t, tc.any, tc.every)
						if restart {
							saved, err := json.Marshal(eng.Export())
							if err != nil {
								t.Fatal(err)
							}
							var recs []engine.AlertRecord
							if err := json.Unmarshal(saved, &recs); err != nil {
								t.Fatal(err)
							}
							eng = engine.New(engine.NewStore(time.Hour))
							eng.SetRules(edited)
							eng.Import(recs)
						} else {
							eng.SetRules(edited)
						}
					}
					feed(eng, now)
					if err := eng.Eval(context.Background(), now); err != nil {
						t.Fatal(err)
					}
					o.see(now, eng.Alerts())
				}
				want := tc.want
				if restart && tc.wantRestart != nil {
					want = tc.wantRestart
				}
				want = append(slices.Clone(before), want...)
				slices.Sort(want) // times 0s..7m sort as text
				if !slices.Equal(o.events, want) {
					t.Errorf("events\n  got  %s\n  want %s", strings.Join(o.events, "\n       "), strings.Join(want, "\n       "))
				}
			})
		}
	}
}
