package rules

import (
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-alerts/vigil/model"
)

// compileStateFields reads the fields that shape an alert's life beyond
// `for`: clear_when (hysteresis), flapping (damping) and expect (segments
// that must report).
func (c *compiler) compileStateFields(r *Rule, rn *ruleNode, lines [][]byte, fail func(Pos, string, ...any)) {
	if rn.ClearWhen.Set {
		if strings.TrimSpace(rn.ClearWhen.Value) == "" {
			fail(rn.ClearWhen.Pos, `clear_when: give a condition, e.g. clear_when: avg("cpu") < 70`)
		} else {
			cond, cerrs := c.compileCondition(rn.ClearWhen.Value)
			for _, ce := range cerrs {
				fail(celPos(lines, rn.ClearWhen, ce), "clear_when: %s", ce.Msg)
			}
			if cond != nil && len(cond.Aggregates) == 0 {
				fail(rn.ClearWhen.Pos, `clear_when uses no metric: compare an aggregate such as avg("cpu") < 70`)
			}
			r.ClearWhen = cond
		}
	}
	if f := rn.Flapping; f != nil {
		r.Flapping = &Flapping{}
		at := r.Pos
		if f.Changes.Set {
			at = f.Changes.Pos
		}
		n, err := strconv.Atoi(f.Changes.Value)
		switch {
		case !f.Changes.Set:
			fail(at, "flapping: changes is required: how many times the alert may fire or resolve within window")
		case err != nil || n < 1:
			fail(f.Changes.Pos, "flapping: changes %q: want a whole number, 1 or more", f.Changes.Value)
		default:
			r.Flapping.Changes = n
		}
		if !f.Window.Set {
			fail(at, "flapping: window is required, e.g. window: 30m")
		} else if d, err := parseDuration(f.Window.Value); err != nil || d <= 0 {
			fail(f.Window.Pos, "flapping: window %q: want a positive duration like 30m or 1h%s", f.Window.Value, because(err))
		} else {
			r.Flapping.Window = d
		}
	}
	if e := rn.Expect; e != nil {
		c.compileExpect(r, e, fail)
	}
}

func (c *compiler) compileExpect(r *Rule, e *expectNode, fail func(Pos, string, ...any)) {
	r.Expect = &Expect{}
	at := r.Pos
	given := 0
	if e.Inventory.Set {
		given, at = given+1, e.Inventory.Pos
		if !channelPattern.MatchString(e.Inventory.Value) {
			fail(e.Inventory.Pos, "expect: inventory %q: want a collector name", e.Inventory.Value)
		}
		r.Expect.Inventory = e.Inventory.Value
	}
	if e.Segments != nil {
		given++
		if len(e.Segments) == 0 {
			fail(at, "expect: segments: list at least one segment")
		}
		for i, seg := range e.Segments {
			ls := model.Labels{}
			var pos Pos
			for k, v := range seg {
				pos = v.Pos
				if !slices.Contains(r.SegmentBy, k) {
					fail(v.Pos, "expect: segments[%d]: %q is not a segment_by label (segment_by: %s)", i, k, strings.Join(r.SegmentBy, ", "))
				}
				ls[k] = v.Value
			}
			if pos.Line > 0 {
				at = pos
			}
			for _, k := range r.SegmentBy {
				if _, ok := seg[k]; !ok {
					fail(at, "expect: segments[%d]: give every segment_by label; %q is missing", i, k)
				}
			}
			r.Expect.Segments = append(r.Expect.Segments, ls)
		}
	}
	if e.Seen.Set {
		given, at = given+1, e.Seen.Pos
		if d, err := parseDuration(e.Seen.Value); err != nil || d <= 0 {
			fail(e.Seen.Pos, "expect: seen %q: want a positive duration like 1h%s", e.Seen.Value, because(err))
		} else {
			r.Expect.Seen = d
		}
	}
	switch {
	case given != 1:
		fail(at, "expect: give one of inventory, segments or seen")
	case len(r.SegmentBy) == 0:
		fail(at, "expect: needs segment_by: the expected segments are named by its labels")
	case r.Across != AcrossAny:
		fail(at, "expect: works with across: any, where each segment is its own alert")
	}
}
