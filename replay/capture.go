package replay

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// CaptureOptions say which alert of a recording becomes a rule test.
type CaptureOptions struct {
	Rule string
	// Match, when set, picks the alert whose labels include these.
	Match model.Labels
	// Before and After widen the captured span around the firing, beyond
	// the rule's own window and `for` before it.
	Before, After time.Duration
	// Out is where the test file will be written: rule_files are given
	// relative to its directory.
	Out string
}

// epoch is where `vigil test` timelines start (ruletest's epoch).
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Capture replays samples through rs, finds the first firing of the
// rule's alert, and writes a `vigil test` file to w: the series the rule
// reads for that alert over the incident, re-based to the start of a
// test's timeline, and the alert states as they happened at each change.
func Capture(w io.Writer, rs *rules.RuleSet, samples []model.Sample, o CaptureOptions) error {
	var rule *rules.Rule
	var group *rules.Group
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			if r.Name == o.Rule {
				rule, group = r, g
			}
		}
	}
	if rule == nil {
		return fmt.Errorf("no rule named %q", o.Rule)
	}
	if group.Schedule != "" {
		return fmt.Errorf("rule %s: its group runs on a schedule (%s); vigil test evaluates at an interval", o.Rule, group.Schedule)
	}
	tl, err := Run(rs, samples)
	if err != nil {
		return err
	}
	var ep *Episode
	for _, e := range tl.Episodes() {
		if e.Rule == o.Rule && includes(e.Labels, o.Match) {
			ep = &e
			break
		}
	}
	if ep == nil {
		return fmt.Errorf("rule %s never fires on this recording (%s to %s)%s", o.Rule,
			tl.Start.UTC().Format(stamp), tl.End.UTC().Format(stamp), matchText(o.Match))
	}
	step := group.Interval
	from := ep.FiredAt.Add(-rule.For - rule.Window - o.Before).Truncate(step)
	to := tl.End
	if !ep.ResolvedAt.IsZero() {
		to = ep.ResolvedAt.Add(o.After)
	}
	if from.Before(tl.Start) {
		from = tl.Start.Truncate(step)
	}
	if to.After(tl.End) {
		to = tl.End
	}

	// The series the rule reads for this alert: its metrics, and for an
	// `across: any` rule only the alert's segment.
	metrics := map[string]bool{}
	for _, a := range rule.Condition.Aggregates {
		metrics[a.Metric] = true
	}
	type key struct{ metric, labels string }
	series := map[key]*captured{}
	for _, s := range samples {
		if s.Time.Before(from) || s.Time.After(to) || !metrics[s.Metric] {
			continue
		}
		if rule.Across != rules.AcrossEvery && !includes(s.Labels, ep.Segment) {
			continue
		}
		k := key{s.Metric, s.Labels.String()}
		c := series[k]
		if c == nil {
			c = &captured{metric: s.Metric, labels: s.Labels}
			series[k] = c
		}
		// Collections land on the evaluation grid; jitter rounds to the
		// nearest step.
		i := int((s.Time.Sub(from) + step/2) / step)
		for len(c.values) <= i {
			c.values = append(c.values, math.NaN())
		}
		c.values[i] = s.Value
	}
	var list []*captured
	for _, c := range series {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].metric != list[j].metric {
			return list[i].metric < list[j].metric
		}
		return list[i].labels.String() < list[j].labels.String()
	})
	steps := int(to.Sub(from)/step) + 1

	// The expected states: what `vigil test` computes on the captured
	// series, which the replay above found on the whole recording.
	expect, err := expectations(rs, rule, list, step, steps)
	if err != nil {
		return err
	}

	ruleFile := rule.File
	if at := strings.LastIndexByte(ruleFile, '@'); at > 0 && !strings.Contains(ruleFile[at:], "/") {
		ruleFile = ruleFile[:at]
	}
	if o.Out != "" {
		absOut, err1 := filepath.Abs(o.Out)
		absRule, err2 := filepath.Abs(ruleFile)
		if err1 == nil && err2 == nil {
			if rel, err := filepath.Rel(filepath.Dir(absOut), absRule); err == nil {
				ruleFile = rel
			}
		}
	}
	fmt.Fprintf(w, "# Captured by vigil capture: %s %s, fired %s", o.Rule, segment(ep.Segment), ep.FiredAt.UTC().Format(stamp))
	if !ep.ResolvedAt.IsZero() {
		fmt.Fprintf(w, ", resolved %s", ep.ResolvedAt.UTC().Format(stamp))
	}
	fmt.Fprintf(w, ".\n# The recording from %s to %s; `at` counts from its start.\n", from.UTC().Format(stamp), to.UTC().Format(stamp))
	fmt.Fprintf(w, "rule_files: [%s]\nevaluation_interval: %s\ntests:\n", yq(filepath.ToSlash(ruleFile)), step)
	fmt.Fprintf(w, "  - name: %s\n    interval: %s\n    input_series:\n", yq(fmt.Sprintf("%s %s from %s", o.Rule, segment(ep.Segment), from.UTC().Format(stamp))), step)
	for _, c := range list {
		fmt.Fprintf(w, "      - metric: %s\n", yq(c.metric))
		if len(c.labels) > 0 {
			fmt.Fprintf(w, "        labels: {")
			for i, n := range c.labels.Names() {
				if i > 0 {
					fmt.Fprint(w, ", ")
				}
				fmt.Fprintf(w, "%s: %s", yq(n), yq(c.labels[n]))
			}
			fmt.Fprintln(w, "}")
		}
		fmt.Fprintf(w, "        values: %s\n", yq(notation(c.values)))
	}
	fmt.Fprintln(w, "    expect:")
	for _, e := range expect {
		fmt.Fprintf(w, "      - at: %s\n        rule: %s\n", e.at, yq(o.Rule))
		if len(e.alerts) == 0 {
			fmt.Fprintln(w, "        alerts: []")
			continue
		}
		fmt.Fprintln(w, "        alerts:")
		for _, a := range e.alerts {
			fmt.Fprintf(w, "          - state: %s\n", a.State)
			if len(a.Segment) > 0 {
				fmt.Fprint(w, "            labels: {")
				for i, n := range a.Segment.Names() {
					if i > 0 {
						fmt.Fprint(w, ", ")
					}
					fmt.Fprintf(w, "%s: %s", yq(n), yq(a.Segment[n]))
				}
				fmt.Fprintln(w, "}")
			}
		}
	}
	return nil
}

type captured struct {
	metric string
	labels model.Labels
	values []float64
}

type expectation struct {
	at     time.Duration
	alerts []model.Alert
}

// expectations evaluates the captured series as `vigil test` will (every
// group at each step from the timeline's start) and keeps the rule's
// alerts at each time they change.
func expectations(rs *rules.RuleSet, rule *rules.Rule, list []*captured, step time.Duration, steps int) ([]expectation, error) {
	store := engine.NewStore(rs.MaxWindow)
	// Series that stop are forgotten as the daemon forgets them.
	store.SetSeriesRetention(engine.SeriesRetentionFor(rs, engine.DefaultSeriesSlack))
	eng := engine.New(store)
	eng.SetRules(rs)
	var out []expectation
	prev := "-"
	for k := 0; k < steps; k++ {
		now := epoch.Add(time.Duration(k) * step)
		for _, c := range list {
			if k < len(c.values) && !math.IsNaN(c.values[k]) {
				store.Append(model.Sample{Metric: c.metric, Labels: c.labels, Value: c.values[k], Time: now})
			}
		}
		if err := eng.Eval(context.Background(), now); err != nil {
			return nil, err
		}
		var cur []model.Alert
		for _, a := range eng.Alerts() {
			if a.Rule != rule.Name || (a.State == model.StateResolved && !a.ResolvedAt.Equal(now)) {
				continue
			}
			cur = append(cur, a)
		}
		slices.SortFunc(cur, func(a, b model.Alert) int { return strings.Compare(a.Segment.String(), b.Segment.String()) })
		var sig strings.Builder
		for _, a := range cur {
			sig.WriteString(a.Segment.String() + a.State.String() + ";")
		}
		if sig.String() != prev {
			prev = sig.String()
			out = append(out, expectation{at: time.Duration(k) * step, alerts: cur})
		}
	}
	return out, nil
}

// notation writes values one per step, `_` for a step without a sample:
// plain values mean the same in Vigil's and promtool's notation.
func notation(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		if math.IsNaN(v) {
			parts[i] = "_"
		} else {
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return strings.Join(parts, " ")
}

func includes(ls, want model.Labels) bool {
	for k, v := range want {
		if ls[k] != v {
			return false
		}
	}
	return true
}

func matchText(m model.Labels) string {
	if len(m) == 0 {
		return ""
	}
	return " for " + m.String()
}

// yq quotes a YAML scalar.
func yq(s string) string { return strconv.Quote(s) }
