package engine

import (
	"fmt"
	"math"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/vigil-alerts/vigil/rules"
)

// clearState evaluates a rule's clear_when: its own aggregates, values and
// activation, beside the condition's.
type clearState struct {
	cond   *rules.Condition
	act    activation
	aggs   []aggregator
	vals   []float64
	noData []ref.Val
	cols   []*column
}

func newClearState(c *rules.Condition) *clearState {
	n := len(c.Aggregates)
	cs := &clearState{cond: c, aggs: make([]aggregator, n), vals: make([]float64, n),
		noData: make([]ref.Val, n), cols: make([]*column, n)}
	cs.act.vals = make([]ref.Val, n)
	for i, a := range c.Aggregates {
		cs.noData[i] = types.NewErr("%s%s", noDataPrefix, a.Text)
	}
	return cs
}

// columns computes clear_when's aggregates for every segment of ix.
func (cs *clearState) columns(ix *index, start, end int64, version uint64) {
	for i := range cs.cond.Aggregates {
		cs.cols[i] = ix.column(&cs.cond.Aggregates[i], &cs.aggs[i], start, end, version)
	}
}

// holds says whether clear_when holds for segment k. Without data it does
// not: a firing alert is not cleared by silence (no_data decides that).
func (cs *clearState) holds(seg *segment, k int) (bool, error) {
	missing := false
	for i, c := range cs.cols {
		v := c.vals[k]
		cs.vals[i] = v
		if math.IsNaN(v) {
			missing = true
			cs.act.vals[i] = cs.noData[i]
			continue
		}
		cs.act.vals[i] = types.Double(v)
	}
	if nat := cs.cond.Native; nat != nil && !missing {
		if v, exact := nat.Eval(cs.vals); exact {
			return v, nil
		}
	}
	cs.act.labels = nil
	if cs.cond.UsesLabels {
		cs.act.labels = seg.labelsVal
	}
	out, _, err := cs.cond.Program.Eval(&cs.act)
	switch {
	case err != nil && missing:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("segment %s: clear_when: %w", seg.labels, err)
	}
	return out == types.True, nil
}
