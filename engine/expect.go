package engine

import (
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// expectedSeg is a segment a rule expects: its segment_by values, and the
// labels its missing alert shows (an inventory member's whole label set).
type expectedSeg struct {
	segment, labels model.Labels
}

// seenSeg is when a segment last reported, for `expect: seen`.
type seenSeg struct {
	segment model.Labels
	last    int64
}

// expected returns the segments st's rule expects at end, by segment key.
// It returns false when the rule expects nothing, or cannot tell yet: an
// inventory its collector has not reported since the start. The caller
// holds the store's read lock.
func (st *ruleState) expected(s *Store, end int64) (map[string]expectedSeg, bool) {
	x := st.rule.Expect
	if x == nil {
		return nil, false
	}
	out := map[string]expectedSeg{}
	by := st.rule.SegmentBy
	switch {
	case x.Inventory != "":
		inv, ok := s.inventories[x.Inventory]
		if !ok {
			return nil, false
		}
		for _, m := range inv.Members {
			// A member without every segment_by label is not one of
			// this rule's segments.
			if key, seg, ok := segmentOf(by, m); ok {
				out[key] = expectedSeg{seg, m}
			}
		}
	case x.Segments != nil:
		for _, ls := range x.Segments {
			key, seg, _ := segmentOf(by, ls)
			out[key] = expectedSeg{seg, seg}
		}
	default:
		if st.seen == nil {
			st.seen = map[string]seenSeg{}
		}
		for _, seg := range st.index.segments {
			if last := seg.lastSample(st.metrics); last > st.seen[seg.key].last {
				st.seen[seg.key] = seenSeg{seg.labels, last}
			}
		}
		for key, sn := range st.seen {
			if sn.last <= end-int64(x.Seen) {
				delete(st.seen, key)
				continue
			}
			out[key] = expectedSeg{sn.segment, sn.segment}
		}
	}
	return out, true
}

// missingFingerprint is the identity of a segment's missing alert: not the
// segment's own alert, which may fire or resolve beside it.
func missingFingerprint(rule string, segment model.Labels) string {
	ls := segment.Copy()
	ls[LabelMissing] = "true"
	return model.Fingerprint(rule, ls)
}

// stepMissing runs the missing alerts: an expected segment without a
// sample of the rule's metrics in the window (start, end] is missing, and
// its alert fires after `for`; one that reports again, or is no longer
// expected, resolves. In warm-up what has not reported may just not have
// been collected yet: nothing changes.
func (st *ruleState) stepMissing(expected map[string]expectedSeg, start int64, warm bool, now time.Time) {
	r := st.rule
	visited := make(map[string]bool, len(st.missing))
	for key, x := range expected {
		fp := missingFingerprint(r.Name, x.segment)
		visited[fp] = true
		o := fails
		if seg := st.index.byKey[key]; seg == nil || seg.lastSample(st.metrics) <= start {
			o = holds
			if !warm {
				o = unknown
			}
		}
		a := st.missing[fp]
		if a == nil {
			if o != holds {
				continue
			}
			a = st.resolved[fp]
			if a == nil {
				a = st.newAlert(fp, x.segment)
				a.missing, a.value = true, nanValue
			}
			delete(st.resolved, fp)
			st.missing[fp] = a
		}
		st.stepMissingAlert(a, o, x.labels, now)
	}
	for fp, a := range st.missing {
		if !visited[fp] {
			// No longer expected (a member removed from the cluster).
			st.stepMissingAlert(a, fails, nil, now)
		}
	}
}

func (st *ruleState) stepMissingAlert(a *alertState, o outcome, labels model.Labels, now time.Time) {
	prev := a.state
	changed := step(a, st.rule, o, now)
	changed = a.flap(st.rule, prev, now) || changed
	if changed && labels != nil && a.state != model.StateInactive {
		ls := st.alertLabels(labels)
		ls[LabelMissing] = "true"
		a.labels = ls
		st.render(a)
	}
	if !a.flapping && (a.state == model.StateInactive || a.state == model.StateResolved) {
		delete(st.missing, a.fp)
		if a.state == model.StateResolved {
			st.resolved[a.fp] = a
		} else {
			st.keepHistory(a)
		}
	}
}
