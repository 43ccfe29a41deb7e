package engine

import (
	"errors"
	"math"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// Explanation says why an alert is in its state: the value of each
// aggregate of its rule's condition for its segment (for `across: every`,
// for every segment) as the rule's last evaluation computed them.
type Explanation struct {
	Rule      string
	Condition string
	Window    time.Duration
	For       time.Duration
	Across    string // "any" or "every"
	Alert     model.Alert
	// At is the rule's last evaluation; zero if it was never evaluated.
	At       time.Time
	Segments []SegmentExplanation
}

// SegmentExplanation is one segment's aggregates.
type SegmentExplanation struct {
	Labels model.Labels
	Values []AggregateValue
}

// AggregateValue is one aggregate as written in the condition and its
// value; NoData when the segment had no samples for it in the window.
type AggregateValue struct {
	Aggregate string
	Value     float64
	NoData    bool
}

// ErrNoAlert is returned by Explain for a fingerprint no alert has.
var ErrNoAlert = errors.New("no such alert")

// Explain returns the explanation of the alert with this fingerprint.
// It reads what the last evaluation computed and costs evaluation
// nothing. A segment the rule no longer sees (an expected segment that is
// missing, an alert restored before its series came back) is listed with
// no data.
func (e *Engine) Explain(fingerprint string) (Explanation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return Explanation{}, ErrNoAlert
	}
	for _, r := range e.set.Rules() {
		st := e.states[r.Name]
		if a := st.find(fingerprint); a != nil {
			return st.explain(a, st.segmentPositions()), nil
		}
	}
	return Explanation{}, ErrNoAlert
}

// ExplainRule explains every alert of the rule named name, by
// fingerprint, in one pass: a rule page showing thousands of alerts must
// not look each one up among all the others.
func (e *Engine) ExplainRule(name string) map[string]Explanation {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.states[name]
	if st == nil {
		return nil
	}
	pos := st.segmentPositions()
	out := map[string]Explanation{}
	add := func(a *alertState) {
		if a != nil {
			out[a.fp] = st.explain(a, pos)
		}
	}
	add(st.every)
	for _, ss := range st.segs {
		add(ss.alert)
	}
	for _, m := range []map[string]*alertState{st.resolved, st.restored, st.missing} {
		for _, a := range m {
			add(a)
		}
	}
	for _, a := range st.ending {
		add(a)
	}
	return out
}

// explain builds a's explanation; pos maps a segment's labels to its
// position in the rule's index.
func (st *ruleState) explain(a *alertState, pos map[string]int) Explanation {
	r := st.rule
	x := Explanation{Rule: r.Name, Window: r.Window, For: r.For, Across: "any",
		Alert: a.snapshot(r), At: st.lastEval}
	if r.Condition != nil {
		x.Condition = r.Condition.Source
	}
	if r.Across == rules.AcrossEvery {
		x.Across = "every"
	}
	if st.every == a {
		n := len(st.rule.Condition.Aggregates)
		for j, ls := range st.everySegs {
			x.Segments = append(x.Segments, st.segmentOf(ls.Copy(), st.everyVals[j*n:(j+1)*n]))
		}
		return x
	}
	vals := a.values // as the alert last changed, when the column is gone
	if k, ok := pos[a.segment.String()]; ok {
		if v, ok := st.ownColumns(k); ok {
			vals = v
		}
	}
	x.Segments = append(x.Segments, st.segmentOf(a.segment.Copy(), vals))
	return x
}

// find returns the rule's alert with fingerprint fp, in any state.
func (st *ruleState) find(fp string) *alertState {
	if st.every != nil && st.every.fp == fp {
		return st.every
	}
	for _, ss := range st.segs {
		if ss.alert != nil && ss.alert.fp == fp {
			return ss.alert
		}
	}
	for _, m := range []map[string]*alertState{st.resolved, st.restored, st.missing} {
		for _, a := range m {
			if a.fp == fp {
				return a
			}
		}
	}
	for _, a := range st.ending {
		if a.fp == fp {
			return a
		}
	}
	return nil
}

// segmentPositions maps each segment's labels to its position in the
// rule's index.
func (st *ruleState) segmentPositions() map[string]int {
	pos := make(map[string]int, len(st.index.segments))
	for k, seg := range st.index.segments {
		pos[seg.labels.String()] = k
	}
	return pos
}

// ownColumns returns segment k's aggregates from the columns while they
// still hold this rule's last evaluation: a rule sharing the index
// recomputes them for its own time, and a rebuild renumbers segments.
func (st *ruleState) ownColumns(k int) ([]float64, bool) {
	if st.colsEnd == 0 || st.gen != st.index.gen {
		return nil, false
	}
	out := make([]float64, len(st.cols))
	for i, c := range st.cols {
		if c == nil || c.end != st.colsEnd || c.version != st.colsVersion || k >= len(c.vals) {
			return nil, false
		}
		out[i] = c.vals[k]
	}
	return out, true
}

// keepEvery copies the columns of the segments the rule evaluated, for
// Explain; only `across: every` rules pay it.
func (st *ruleState) keepEvery() {
	st.everySegs, st.everyVals = st.everySegs[:0], st.everyVals[:0]
	for k, seg := range st.index.segments {
		// As evaluation: a segment none of the rule's metrics reported
		// in exists for another rule sharing the index.
		if !st.index.reports(k, st.metrics) {
			continue
		}
		st.everySegs = append(st.everySegs, seg.labels)
		for _, c := range st.cols {
			st.everyVals = append(st.everyVals, c.vals[k])
		}
	}
}

// segmentOf is a segment's explanation from its aggregates' values
// (vals[i] for aggregate i; missing or NaN: no data).
func (st *ruleState) segmentOf(ls model.Labels, vals []float64) SegmentExplanation {
	out := SegmentExplanation{Labels: ls}
	for i, ag := range st.rule.Condition.Aggregates {
		v := AggregateValue{Aggregate: ag.Text, Value: math.NaN(), NoData: true}
		if i < len(vals) && !math.IsNaN(vals[i]) {
			v.Value, v.NoData = vals[i], false
		}
		out.Values = append(out.Values, v)
	}
	return out
}
