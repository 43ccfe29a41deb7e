package engine

import (
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// AlertRecord is one alert's state as saved (to a file, to etcd) and
// restored at start, so a restart neither pages again nor resets a `for`.
type AlertRecord struct {
	Rule        string            `json:"rule"`
	StateKey    uint64            `json:"state_key"` // the rule's meaning when saved
	Fingerprint string            `json:"fingerprint"`
	Segment     model.Labels      `json:"segment"`
	Labels      model.Labels      `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	LastTrue    time.Time         `json:"last_true,omitzero"`
	KeepSince   time.Time         `json:"keep_since,omitzero"` // keep_firing_for counts from here
	Value       float64           `json:"value"`
	Every       bool              `json:"every,omitempty"` // the single alert of an `across: every` rule
}

func (a *alertState) record(rule string, key uint64, every bool) AlertRecord {
	return AlertRecord{
		Rule: rule, StateKey: key, Fingerprint: a.fp, Segment: a.segment, Labels: a.labels,
		Annotations: a.annotations, State: a.state.String(), ActiveAt: a.activeAt, FiredAt: a.firedAt,
		ResolvedAt: a.resolved, LastTrue: a.lastTrue, KeepSince: a.keepSince, Value: a.value, Every: every,
	}
}

// Export returns every pending, firing and recently resolved alert's state.
func (e *Engine) Export() []AlertRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []AlertRecord
	for name, st := range e.states {
		key := st.rule.StateKey
		for _, ss := range st.segs {
			if ss.alert != nil {
				out = append(out, ss.alert.record(name, key, false))
			}
		}
		for _, a := range st.restored {
			out = append(out, a.record(name, key, false))
		}
		if st.every != nil {
			out = append(out, st.every.record(name, key, true))
		}
		for _, a := range st.resolved {
			out = append(out, a.record(name, key, st.rule.Across == rules.AcrossEvery))
		}
	}
	return out
}

// Import restores saved alert states into the loaded rules. Records of
// rules that no longer exist, or whose meaning changed since (StateKey),
// are dropped and counted. Call it after SetRules, before evaluating: a
// rule already evaluated keeps its own state, and records for it are
// dropped too, since a second copy of a live alert would page twice.
func (e *Engine) Import(recs []AlertRecord) (restored, dropped int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, rec := range recs {
		st, ok := e.states[rec.Rule]
		state, okState := model.ParseAlertState(rec.State)
		if !ok || st.rule.StateKey != rec.StateKey || !okState || state == model.StateInactive || !st.lastEval.IsZero() {
			dropped++
			continue
		}
		a := &alertState{
			fp: rec.Fingerprint, segment: rec.Segment, labels: rec.Labels, annotations: rec.Annotations,
			state: state, activeAt: rec.ActiveAt, firedAt: rec.FiredAt, resolved: rec.ResolvedAt,
			lastTrue: rec.LastTrue, keepSince: rec.KeepSince, value: rec.Value,
		}
		if a.segment == nil {
			a.segment = model.Labels{}
		}
		switch {
		case state == model.StateResolved:
			st.resolved[a.fp] = a
		case rec.Every:
			st.every = a
		default:
			key, _, ok := segmentOf(st.rule.SegmentBy, a.segment)
			if !ok {
				dropped++
				continue
			}
			st.restored[key] = a
		}
		restored++
	}
	return restored, dropped
}

// expireRestored ends restored alerts whose segment has not come back
// within a window (plus slack) of the first evaluation after the restart:
// a firing one resolves, a pending one is dropped.
func (st *ruleState) expireRestored(now time.Time) {
	for key, a := range st.restored {
		if a.lastEval.IsZero() || a.lastEval.Before(a.activeAt) {
			a.lastEval = now
			continue
		}
		if now.Sub(a.lastEval) < st.rule.Window+retentionSlack {
			continue
		}
		delete(st.restored, key)
		if a.state == model.StateFiring {
			a.state, a.resolved, a.lastEval = model.StateResolved, now, now
			st.resolved[a.fp] = a
		}
	}
}
