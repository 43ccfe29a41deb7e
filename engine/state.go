package engine

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// AlertRecord is one alert's state as saved (to a file, to etcd) and
// restored at start, so a restart neither pages again nor resets a `for`.
// Records are matched to the loaded rules as a reload matches alerts: by
// rule name, across and segment_by (see Engine.SetRules).
type AlertRecord struct {
	Rule     string `json:"rule"`
	StateKey uint64 `json:"state_key"` // the rule's meaning when saved
	// Across and SegmentBy are the saved rule's; a record without them
	// (saved by an older Vigil) only matches an unchanged rule (StateKey).
	Across      string            `json:"across,omitempty"`
	SegmentBy   []string          `json:"segment_by,omitempty"`
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
	// Values are the condition's aggregates by their text, and Segments
	// the segments of an `across: every` alert: what templates show, so a
	// restored alert re-rendered (a reload) still says what it said.
	Values   map[string]float64   `json:"values,omitempty"`
	Segments []model.SegmentValue `json:"segments,omitempty"`
	Every    bool                 `json:"every,omitempty"` // the single alert of an `across: every` rule
	// Changes are the times the alert fired or resolved within its rule's
	// flapping window; Flapping says it is held as flapping (shown
	// firing) since FlapSince, whatever State says underneath.
	Changes   []time.Time `json:"changes,omitempty"`
	Flapping  bool        `json:"flapping,omitempty"`
	FlapSince time.Time   `json:"flap_since,omitzero"`
	// Missing marks the alert of an expected segment that is missing.
	Missing bool `json:"missing,omitempty"`
}

func (a *alertState) record(r *rules.Rule, every bool) AlertRecord {
	rec := AlertRecord{
		Rule: r.Name, StateKey: r.StateKey, Across: string(r.Across), SegmentBy: r.SegmentBy,
		Fingerprint: a.fp, Segment: a.segment, Labels: a.labels,
		Annotations: a.annotations, State: a.state.String(), ActiveAt: a.activeAt, FiredAt: a.firedAt,
		ResolvedAt: a.resolved, LastTrue: a.lastTrue, KeepSince: a.keepSince, Value: a.value,
		Segments: a.segments, Every: every,
		Changes: a.changes, Flapping: a.flapping, FlapSince: a.flapSince, Missing: a.missing,
	}
	for i, ag := range r.Condition.Aggregates {
		if i < len(a.values) {
			if rec.Values == nil {
				rec.Values = make(map[string]float64, len(a.values))
			}
			rec.Values[ag.Text] = a.values[i]
		}
	}
	return rec
}

// matches reports whether rec is an alert of rule r.
func (rec *AlertRecord) matches(r *rules.Rule) bool {
	if rec.Across == "" {
		return rec.StateKey == r.StateKey
	}
	return rec.Rule == r.Name && rec.Across == string(r.Across) && sameNames(rec.SegmentBy, r.SegmentBy)
}

// number is a float64 that JSON can carry when it is NaN (a no-data
// alert's value) or infinite: as the strings "NaN", "+Inf" and "-Inf".
// encoding/json refuses those values, and one of them made the whole
// state unsavable.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.AppendQuote(nil, strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return json.Marshal(f)
}

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		*n = number(f)
		return err
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = number(f)
	return err
}

type segmentJSON struct {
	Labels model.Labels `json:"labels"`
	Value  number       `json:"value"`
}

// alertRecordJSON is AlertRecord with its numbers JSON can carry.
type alertRecordJSON struct {
	plainRecord
	Value    number            `json:"value"`
	Values   map[string]number `json:"values,omitempty"`
	Segments []segmentJSON     `json:"segments,omitempty"`
}

type plainRecord AlertRecord // without the methods

// MarshalJSON writes NaN and infinite values as strings.
func (rec AlertRecord) MarshalJSON() ([]byte, error) {
	out := alertRecordJSON{plainRecord: plainRecord(rec), Value: number(rec.Value)}
	if rec.Values != nil {
		out.Values = make(map[string]number, len(rec.Values))
		for k, v := range rec.Values {
			out.Values[k] = number(v)
		}
	}
	for _, s := range rec.Segments {
		out.Segments = append(out.Segments, segmentJSON{s.Labels, number(s.Value)})
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (rec *AlertRecord) UnmarshalJSON(b []byte) error {
	var in alertRecordJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*rec = AlertRecord(in.plainRecord)
	rec.Value = float64(in.Value)
	rec.Values = nil
	if in.Values != nil {
		rec.Values = make(map[string]float64, len(in.Values))
		for k, v := range in.Values {
			rec.Values[k] = float64(v)
		}
	}
	rec.Segments = nil
	for _, s := range in.Segments {
		rec.Segments = append(rec.Segments, model.SegmentValue{Labels: s.Labels, Value: float64(s.Value)})
	}
	return nil
}

// Export returns every pending, firing and recently resolved alert's state.
// Firing alerts of removed rules, resolved at the next evaluation, are not
// in it: after a restart the dispatcher's delivery records resolve them.
func (e *Engine) Export() []AlertRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []AlertRecord
	for _, st := range e.states {
		r := st.rule
		for _, ss := range st.segs {
			if ss.alert != nil {
				out = append(out, ss.alert.record(r, false))
			}
		}
		for _, a := range st.restored {
			out = append(out, a.record(r, false))
		}
		for _, a := range st.missing {
			out = append(out, a.record(r, false))
		}
		if st.every != nil {
			out = append(out, st.every.record(r, true))
		}
		for _, a := range st.resolved {
			out = append(out, a.record(r, r.Across == rules.AcrossEvery))
		}
	}
	return out
}

// Import restores saved alert states into the loaded rules. Records are
// matched as a reload matches alerts (SetRules): by rule name, across and
// segment_by, so a restart after a threshold edit keeps its alerts. Records
// of rules that no longer exist or make other alerts are dropped and
// counted. Call it after SetRules, before evaluating: a rule already
// evaluated keeps its own state, and records for it are dropped too, since
// a second copy of a live alert would page twice.
func (e *Engine) Import(recs []AlertRecord) (restored, dropped int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, rec := range recs {
		st, ok := e.states[rec.Rule]
		state, okState := model.ParseAlertState(rec.State)
		if !ok || !rec.matches(st.rule) || !okState || state == model.StateInactive && !rec.Flapping || !st.lastEval.IsZero() {
			dropped++
			continue
		}
		a := &alertState{
			fp: rec.Fingerprint, segment: rec.Segment, labels: rec.Labels, annotations: rec.Annotations,
			state: state, activeAt: rec.ActiveAt, firedAt: rec.FiredAt, resolved: rec.ResolvedAt,
			lastTrue: rec.LastTrue, keepSince: rec.KeepSince, value: rec.Value,
			segments: slices.Clone(rec.Segments),
			changes:  slices.Clone(rec.Changes), flapSince: rec.FlapSince, missing: rec.Missing,
		}
		// A hold outlives a restart only if the rule still damps flapping.
		a.flapping = rec.Flapping && st.rule.Flapping != nil
		if a.shown() == model.StateInactive {
			dropped++
			continue
		}
		if a.segment == nil {
			a.segment = model.Labels{}
		}
		if rec.Values != nil {
			a.values = make([]float64, len(st.rule.Condition.Aggregates))
			for i, ag := range st.rule.Condition.Aggregates {
				v, ok := rec.Values[ag.Text]
				if !ok {
					v = math.NaN() // an aggregate the saved condition did not have
				}
				a.values[i] = v
			}
		}
		switch {
		case a.missing:
			if st.rule.Expect == nil {
				dropped++
				continue
			}
			st.missing[a.fp] = a
			if key, _, ok := segmentOf(st.rule.SegmentBy, a.segment); ok && st.rule.Expect.Seen > 0 {
				// Seen last about when it went missing: still expected
				// for `seen` after that.
				if st.seen == nil {
					st.seen = map[string]seenSeg{}
				}
				st.seen[key] = seenSeg{a.segment, a.activeAt.UnixNano()}
			}
		case a.shown() == model.StateResolved:
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
// within a window (plus slack) of the first evaluation with data after the
// restart: a firing one resolves, a pending one is dropped.
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
		if a.end(now) {
			st.resolved[a.fp] = a
		}
	}
}
