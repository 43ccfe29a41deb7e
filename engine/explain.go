package engine

import (
	"errors"
	"maps"
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
		a := st.find(fingerprint)
		if a == nil {
			continue
		}
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
			return x, nil
		}
		k := st.segmentIndex(a.segment)
		if k < 0 {
			x.Segments = append(x.Segments, st.unseen(a.segment))
			return x, nil
		}
		x.Segments = append(x.Segments, st.explainSegment(k))
		return x, nil
	}
	return Explanation{}, ErrNoAlert
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

// segmentIndex is the position of the segment with these labels in the
// rule's index, or -1.
func (st *ruleState) segmentIndex(ls model.Labels) int {
	for k, seg := range st.index.segments {
		if maps.Equal(seg.labels, ls) {
			return k
		}
	}
	return -1
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
