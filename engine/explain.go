package engine

import (
	"errors"
	"math"
	"time"

	"github.com/vigil-alerts/vigil/model"
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
	if st.every != nil {
		x.Across = "every"
	}
	if st.every == a {
		for k := range st.index.segments {
			x.Segments = append(x.Segments, st.explainSegment(k))
		}
		return x
	}
	if k, ok := pos[a.segment.String()]; ok {
		x.Segments = append(x.Segments, st.explainSegment(k))
	} else {
		x.Segments = append(x.Segments, st.unseen(a.segment))
	}
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

// explainSegment reads segment k's aggregates from the columns of the
// last evaluation.
func (st *ruleState) explainSegment(k int) SegmentExplanation {
	seg := st.index.segments[k]
	out := SegmentExplanation{Labels: seg.labels.Copy()}
	for i, ag := range st.rule.Condition.Aggregates {
		v := AggregateValue{Aggregate: ag.Text, Value: math.NaN(), NoData: true}
		if i < len(st.cols) && st.cols[i] != nil && k < len(st.cols[i].vals) && !math.IsNaN(st.cols[i].vals[k]) {
			v.Value, v.NoData = st.cols[i].vals[k], false
		}
		out.Values = append(out.Values, v)
	}
	return out
}

// unseen is a segment the rule has no series of.
func (st *ruleState) unseen(ls model.Labels) SegmentExplanation {
	out := SegmentExplanation{Labels: ls.Copy()}
	for _, ag := range st.rule.Condition.Aggregates {
		out.Values = append(out.Values, AggregateValue{Aggregate: ag.Text, Value: math.NaN(), NoData: true})
	}
	return out
}
