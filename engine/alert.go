package engine

import (
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// ResolvedRetention is how long a resolved alert is remembered, so its
// resolution can still be delivered and shown.
const ResolvedRetention = 15 * time.Minute

// alertState is one (rule, segment) alert's life. The state machine is
// step: a pure function of (state, outcome, now).
type alertState struct {
	fp       string
	segment  model.Labels // segment_by values
	labels   model.Labels // segment, common series labels, rule labels
	state    model.AlertState
	activeAt time.Time
	firedAt  time.Time
	resolved time.Time
	lastTrue time.Time
	// keepSince is the first evaluation the condition stopped holding
	// while firing, from which keep_firing_for counts (as in Prometheus).
	keepSince time.Time
	lastEval  time.Time

	value       float64
	values      []float64
	segments    []model.SegmentValue
	annotations map[string]string
}

// outcome is what one evaluation says about a segment.
type outcome int

const (
	holds   outcome = iota // the condition is true
	fails                  // the condition is false
	unknown                // keep_state with no data, or an error: change nothing
	absent                 // no samples for the condition: no_data decides
)

// step moves a through the state machine and reports whether its state
// changed. The `for` boundary is inclusive: for 5m fires at exactly 5m.
func step(a *alertState, r *rules.Rule, o outcome, now time.Time) bool {
	a.lastEval = now
	prev := a.state
	switch o {
	case unknown:
		return false
	case holds:
		a.lastTrue, a.keepSince = now, time.Time{}
		switch a.state {
		case model.StateInactive, model.StateResolved:
			a.state, a.activeAt, a.firedAt, a.resolved = model.StatePending, now, time.Time{}, time.Time{}
			if r.For == 0 || r.Trigger == rules.TriggerAtLeastOnce {
				a.state, a.firedAt = model.StateFiring, now
			}
		case model.StatePending:
			if now.Sub(a.activeAt) >= r.For {
				a.state, a.firedAt = model.StateFiring, now
			}
		}
	case fails:
		switch a.state {
		case model.StatePending:
			// keep_firing_for never extends a pending alert.
			a.state = model.StateInactive
		case model.StateFiring:
			// at_least_once: firing while the condition held within the
			// last `for`; only then does keep_firing_for start.
			if r.Trigger == rules.TriggerAtLeastOnce && now.Sub(a.lastTrue) < r.For {
				return false
			}
			if a.keepSince.IsZero() {
				a.keepSince = now
			}
			if now.Sub(a.keepSince) >= r.KeepFiringFor {
				a.state, a.resolved = model.StateResolved, now
			}
		}
	}
	return a.state != prev
}

// snapshot is the alert as notifiers and the API see it.
func (a *alertState) snapshot(r *rules.Rule) model.Alert {
	return model.Alert{
		Fingerprint: a.fp,
		Rule:        r.Name,
		Group:       r.Group,
		Severity:    string(r.Severity),
		Description: r.Description,
		State:       a.state,
		Labels:      a.labels,
		Annotations: a.annotations,
		Segment:     a.segment,
		Segments:    a.segments,
		Value:       a.value,
		Notify:      r.Notify,
		Inhibit:     r.Inhibit,
		ActiveAt:    a.activeAt,
		FiredAt:     a.firedAt,
		ResolvedAt:  a.resolved,
		LastEvalAt:  a.lastEval,
	}
}
