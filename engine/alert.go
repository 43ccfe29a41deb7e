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

	// changes are the times, within the rule's flapping window, the alert
	// fired or resolved. While flapping is set the alert is shown firing,
	// labelled vigil_flapping="true", whatever state says underneath.
	changes   []time.Time
	flapping  bool
	flapSince time.Time
	// missing marks the alert of an expected segment that does not report.
	missing bool
}

// Labels Vigil sets on alerts in a state of their own.
const (
	// LabelFlapping marks an alert held as flapping.
	LabelFlapping = "vigil_flapping"
	// LabelMissing marks the alert of an expected segment that is missing.
	LabelMissing = "vigil_missing"
)

// outcome is what one evaluation says about a segment.
type outcome int

const (
	holds   outcome = iota // the condition is true
	fails                  // the condition is false
	unknown                // keep_state with no data, or an error: change nothing
	absent                 // no samples for the condition: no_data decides
	// between: the condition does not hold, but clear_when does not
	// either: a firing alert stays firing (hysteresis).
	between
)

// step moves a through the state machine and reports whether its state
// changed. The `for` boundary is inclusive: for 5m fires at exactly 5m.
func step(a *alertState, r *rules.Rule, o outcome, now time.Time) bool {
	a.lastEval = now
	prev := a.state
	switch o {
	case unknown:
		return false
	case between:
		if a.state == model.StateFiring {
			a.keepSince = time.Time{} // keep_firing_for counts from clear_when
			return false
		}
		return step(a, r, fails, now)
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

// shown is the state notifiers and the API see: firing while held as
// flapping.
func (a *alertState) shown() model.AlertState {
	if a.flapping {
		return model.StateFiring
	}
	return a.state
}

// flap counts a's visible changes (to firing, to resolved) within the
// rule's flapping window after a step from prev, holds a as flapping
// when they exceed the limit, and releases it once none is left in the
// window: then a shows what it is underneath, a resolution if it no
// longer fires. It reports whether what a shows changed.
func (a *alertState) flap(r *rules.Rule, prev model.AlertState, now time.Time) bool {
	f := r.Flapping
	if f == nil {
		return false
	}
	if a.state != prev && (a.state == model.StateFiring || a.state == model.StateResolved) {
		a.changes = append(a.changes, now)
	}
	a.trimChanges(f.Window, now)
	switch {
	case !a.flapping && len(a.changes) > f.Changes:
		a.flapping, a.flapSince = true, now
		return true
	case a.flapping && len(a.changes) == 0 && a.state != model.StatePending:
		// A pending alert is neither firing nor resolved yet: the hold
		// lasts until it is one or the other.
		a.flapping, a.flapSince = false, time.Time{}
		if a.state != model.StateFiring {
			a.state, a.resolved = model.StateResolved, now
		}
		return true
	}
	return false
}

// trimChanges forgets changes at or before window before now.
func (a *alertState) trimChanges(window time.Duration, now time.Time) {
	i := 0
	for i < len(a.changes) && now.Sub(a.changes[i]) >= window {
		i++
	}
	if i > 0 {
		a.changes = append(a.changes[:0:0], a.changes[i:]...)
	}
}

// end resolves a at now if it shows firing (its segment is gone, its rule
// changed) and reports whether it did.
func (a *alertState) end(now time.Time) bool {
	firing := a.shown() == model.StateFiring
	a.flapping, a.lastEval = false, now
	if firing {
		a.state, a.resolved = model.StateResolved, now
	}
	return firing
}

// snapshot is the alert as notifiers and the API see it.
func (a *alertState) snapshot(r *rules.Rule) model.Alert {
	if a.flapping {
		al := a.plainSnapshot(r)
		al.State, al.ResolvedAt = model.StateFiring, time.Time{}
		if al.FiredAt.IsZero() {
			al.FiredAt = a.flapSince
		}
		al.Labels = al.Labels.Copy()
		al.Labels[LabelFlapping] = "true"
		return al
	}
	return a.plainSnapshot(r)
}

func (a *alertState) plainSnapshot(r *rules.Rule) model.Alert {
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
		Source:      r.Source,
		ActiveAt:    a.activeAt,
		FiredAt:     a.firedAt,
		ResolvedAt:  a.resolved,
		LastEvalAt:  a.lastEval,
	}
}
