// Package engine evaluates compiled rules against the window store and
// keeps every alert's state. Time is always an argument: the engine never
// reads the wall clock, so tests step a fake one.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// retentionSlack is kept beyond the longest window so that an evaluation
// running a little behind the newest samples still sees a full window.
const retentionSlack = time.Minute

// Engine evaluates a rule set. Its methods are safe for concurrent use;
// evaluations of one engine run one at a time.
type Engine struct {
	store  *Store
	logger *slog.Logger

	mu     sync.Mutex
	set    *rules.RuleSet
	states map[string]*ruleState // by rule name; outlives reloads
	lastGC time.Time
}

// ruleState is what the engine knows about one rule between evaluations.
type ruleState struct {
	rule  *rules.Rule
	index *index
	act   activation
	aggs  []aggregator
	vals  []float64
	// noData[i] is bound when aggregate i has no samples: an error value,
	// so `a || b` still works when only b has data.
	noData    []ref.Val
	lastBoxed []ref.Val
	// results[k*n+i] is aggregate i of segment k (NaN: no data); seen[k]
	// says whether segment k had any sample in the window.
	results []float64
	seen    []bool
	// every is the single alert of an `across: every` rule.
	every *alertState
	// resolved alerts waiting to be forgotten, by fingerprint.
	resolved map[string]*alertState
	// restored alerts (Import) whose segment has no series yet, by key.
	restored map[string]*alertState

	health   Health
	lastEval time.Time
}

// Health of one rule after its last evaluation.
type Health struct {
	OK  bool
	Err string
}

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.logger = l } }

// New returns an engine reading from store.
func New(store *Store, opts ...Option) *Engine {
	e := &Engine{store: store, logger: slog.New(slog.DiscardHandler), states: map[string]*ruleState{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Store returns the engine's window store.
func (e *Engine) Store() *Store { return e.store }

// SetRules swaps in a new rule set. Rules whose meaning did not change
// (same name and StateKey) keep their alerts and pending timers; others
// start afresh.
func (e *Engine) SetRules(rs *rules.RuleSet) {
	e.mu.Lock()
	defer e.mu.Unlock()
	states := make(map[string]*ruleState, len(rs.Rules()))
	for _, r := range rs.Rules() {
		if old, ok := e.states[r.Name]; ok && old.rule.StateKey == r.StateKey {
			old.rule = r // labels, annotations, routes may have changed
			states[r.Name] = old
			continue
		}
		states[r.Name] = newRuleState(r)
	}
	e.states = states
	e.set = rs
	e.store.SetRetention(rs.MaxWindow + retentionSlack)
}

func newRuleState(r *rules.Rule) *ruleState {
	n := len(r.Condition.Aggregates)
	st := &ruleState{
		rule: r, index: newIndex(r),
		aggs: make([]aggregator, n), vals: make([]float64, n),
		noData: make([]ref.Val, n), lastBoxed: make([]ref.Val, n),
		resolved: map[string]*alertState{},
		restored: map[string]*alertState{},
		health:   Health{OK: true},
	}
	st.act.vals = make([]ref.Val, n)
	for i, a := range r.Condition.Aggregates {
		st.noData[i] = types.NewErr("no data for %s", a.Text)
	}
	return st
}

// Rules returns the rule set in use.
func (e *Engine) Rules() *rules.RuleSet {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.set
}

// Eval evaluates every rule at now.
func (e *Engine) Eval(ctx context.Context, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return
	}
	e.gc(now)
	for _, g := range e.set.Groups {
		e.evalGroup(ctx, g, now)
	}
}

// EvalGroup evaluates the rules of one group at now.
func (e *Engine) EvalGroup(ctx context.Context, group string, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return errors.New("no rules loaded")
	}
	for _, g := range e.set.Groups {
		if g.Name == group {
			e.gc(now)
			e.evalGroup(ctx, g, now)
			return nil
		}
	}
	return fmt.Errorf("no rule group %q", group)
}

// gc trims the store at most once per retention slack of evaluation time.
func (e *Engine) gc(now time.Time) {
	if now.Sub(e.lastGC) < retentionSlack {
		return
	}
	e.lastGC = now
	e.store.GC(now)
}

func (e *Engine) evalGroup(ctx context.Context, g *rules.Group, now time.Time) {
	e.store.mu.RLock()
	defer e.store.mu.RUnlock()
	for _, r := range g.Rules {
		st := e.states[r.Name]
		if err := e.evalRule(ctx, st, now); err != nil {
			e.logger.Warn("rule evaluation failed", "rule", r.Name, "err", err)
		}
	}
}

// evalRule evaluates one rule over all its segments. An error marks the
// rule unhealthy and leaves the alerts of the failing segments as they were.
func (e *Engine) evalRule(ctx context.Context, st *ruleState, now time.Time) (err error) {
	r := st.rule
	defer func() {
		st.lastEval = now
		st.health = Health{OK: err == nil}
		if err != nil {
			st.health.Err = err.Error()
		}
	}()
	scopeErr := st.index.update(r, e.store)
	st.index.flatten()
	end := now.UnixNano()
	start := end - int64(r.Window)
	st.aggregate(start, end)
	var firstErr error
	allHold := len(st.index.segments) > 0
	for k, seg := range st.index.segments {
		if len(st.restored) > 0 {
			st.attachRestored(seg)
		}
		if seg.orphan {
			// Gone for longer than any window: whatever no_data says, the
			// alert cannot go on forever.
			seg.lastHolds = false
			if r.Across != rules.AcrossEvery {
				st.stepSegment(seg, fails, now)
			}
			continue
		}
		o, evalErr := st.evalSegment(seg, k)
		if evalErr != nil && firstErr == nil {
			firstErr = evalErr
		}
		if r.Across == rules.AcrossEvery {
			switch o {
			case holds:
				seg.lastHolds = true
			case fails:
				seg.lastHolds = false
			}
			seg.lastValue = st.vals[0]
			if o == holds || st.every != nil {
				seg.lastValue = st.value()
			}
			allHold = allHold && seg.lastHolds
			continue
		}
		st.stepSegment(seg, o, now)
	}
	if r.Across == rules.AcrossEvery {
		o := fails
		if allHold {
			o = holds
		}
		if firstErr != nil && !allHold {
			o = unknown // never resolve because of an error
		}
		st.stepEvery(o, now)
	}
	if len(st.restored) > 0 {
		st.expireRestored(now)
	}
	st.forgetResolved(now)
	if firstErr != nil {
		return firstErr
	}
	return scopeErr
}

// evalSegment computes the segment's aggregates and runs the condition.
// aggregate computes every aggregate of every segment, one aggregate at a
// time over the flat series lists: phase one of an evaluation.
func (st *ruleState) aggregate(start, end int64) {
	n, segs := len(st.rule.Condition.Aggregates), len(st.index.segments)
	st.results = slices.Grow(st.results[:0], n*segs)[:n*segs]
	st.seen = slices.Grow(st.seen[:0], segs)[:segs]
	clear(st.seen)
	for i := range st.rule.Condition.Aggregates {
		a := &st.rule.Condition.Aggregates[i]
		m := st.index.aggOf[i]
		flat, bounds := st.index.flat[m], st.index.bounds[m]
		g := &st.aggs[i]
		for k := range segs {
			v, ok, s := g.compute(a, flat[bounds[k]:bounds[k+1]], start, end)
			if !ok {
				v = math.NaN()
			}
			st.results[k*n+i] = v
			st.seen[k] = st.seen[k] || s
		}
	}
}

// evalSegment decides the condition for segment k from its aggregates:
// phase two of an evaluation.
func (st *ruleState) evalSegment(seg *segment, k int) (outcome, error) {
	r := st.rule
	n := len(r.Condition.Aggregates)
	seen, missing := st.seen[k], false
	for i, v := range st.results[k*n : k*n+n] {
		if math.IsNaN(v) {
			missing = true
			st.vals[i] = math.NaN()
			st.act.vals[i] = st.noData[i]
			continue
		}
		st.vals[i] = v
		if r.Condition.Native == nil && seen {
			st.act.vals[i] = st.boxed(i, v)
		}
	}
	if !seen {
		return st.noDataOutcome(), nil
	}
	if nat := r.Condition.Native; nat != nil && !missing {
		if v, exact := nat.Eval(st.vals); exact {
			if v {
				return holds, nil
			}
			return fails, nil
		}
		st.boxAll()
	}
	st.act.labels = nil
	if r.Condition.UsesLabels {
		st.act.labels = seg.labelsVal
	}
	out, _, err := r.Condition.Program.Eval(&st.act)
	if err != nil {
		return unknown, fmt.Errorf("segment %s: %w", seg.labels, err)
	}
	switch out {
	case types.True:
		return holds, nil
	case types.False:
		return fails, nil
	}
	if missing && types.IsError(out) {
		// Part of what the condition needs has no samples.
		return st.noDataOutcome(), nil
	}
	return unknown, fmt.Errorf("segment %s: condition gave %v", seg.labels, out)
}

// value is the alert value of the segment just evaluated: the left side of
// the condition's comparison, else its first aggregate.
func (st *ruleState) value() float64 {
	if p := st.rule.Condition.Value; p != nil {
		if p.Native != nil && !slices.ContainsFunc(st.vals, math.IsNaN) {
			return p.Native.Value(st.vals)
		}
		st.boxAll()
		if out, _, err := p.Program.Eval(&st.act); err == nil {
			if d, ok := out.(types.Double); ok {
				return float64(d)
			}
		}
	}
	return st.vals[0]
}

// boxed returns v as a CEL value, reusing the last one of slot i when the
// value repeats (0 and 1 of a health check, a steady gauge), because
// boxing a float allocates.
func (st *ruleState) boxed(i int, v float64) ref.Val {
	if d, ok := st.lastBoxed[i].(types.Double); ok && float64(d) == v {
		return st.lastBoxed[i]
	}
	b := ref.Val(types.Double(v))
	st.lastBoxed[i] = b
	return b
}

// boxAll binds every present aggregate for the CEL program, when the
// native path skipped it.
func (st *ruleState) boxAll() {
	for i, v := range st.vals {
		if !math.IsNaN(v) {
			st.act.vals[i] = st.boxed(i, v)
		}
	}
}

func (st *ruleState) noDataOutcome() outcome {
	switch st.rule.NoData {
	case rules.NoDataAlerting:
		return holds
	case rules.NoDataKeepState:
		return unknown
	}
	return fails
}

// stepSegment runs the state machine of one `across: any` segment.
func (st *ruleState) stepSegment(seg *segment, o outcome, now time.Time) {
	a := seg.alert
	if a == nil {
		if o != holds {
			return // the common case: nothing is wrong, nothing to do
		}
		a = st.resolved[model.Fingerprint(st.rule.Name, seg.labels)]
		if a == nil {
			a = &alertState{fp: model.Fingerprint(st.rule.Name, seg.labels), segment: seg.labels}
		}
		delete(st.resolved, a.fp)
		seg.alert = a
	}
	changed := step(a, st.rule, o, now)
	if a.state == model.StateInactive || a.state == model.StateResolved {
		seg.alert = nil
		if a.state == model.StateResolved {
			st.resolved[a.fp] = a
		}
	}
	if o == holds || changed {
		// Re-render only when something shown changed: templates are the
		// costliest step for a firing alert.
		v := st.value()
		if changed || v != a.value || !slices.Equal(a.values, st.vals) {
			a.value = v
			a.values = slices.Clone(st.vals)
			if changed && a.state != model.StateInactive {
				a.labels = st.alertLabels(seg.commonLabels())
			}
			st.render(a)
		}
	}
}

// stepEvery runs the state machine of the single `across: every` alert.
func (st *ruleState) stepEvery(o outcome, now time.Time) {
	a := st.every
	if a == nil {
		if o != holds {
			return
		}
		a = &alertState{fp: model.Fingerprint(st.rule.Name, model.Labels{}), segment: model.Labels{}}
		st.every = a
	}
	changed := step(a, st.rule, o, now)
	if o == holds || changed {
		a.segments = a.segments[:0]
		var common model.Labels
		for _, seg := range st.index.segments {
			a.segments = append(a.segments, model.SegmentValue{Labels: seg.labels, Value: seg.lastValue})
			if changed {
				common = intersect(common, seg.commonLabels())
			}
		}
		sort.Slice(a.segments, func(i, j int) bool { return a.segments[i].Labels.String() < a.segments[j].Labels.String() })
		if len(a.segments) > 0 {
			a.value = a.segments[0].Value
		}
		if changed {
			for _, k := range st.rule.SegmentBy {
				delete(common, k) // they differ per segment; Segments lists them
			}
			a.labels = st.alertLabels(common)
		}
		st.render(a)
	}
	switch a.state {
	case model.StateInactive:
		st.every = nil
	case model.StateResolved:
		st.every = nil
		st.resolved[a.fp] = a
	}
}

func intersect(acc, ls model.Labels) model.Labels {
	if acc == nil {
		return ls.Copy()
	}
	for k, v := range acc {
		if ls[k] != v {
			delete(acc, k)
		}
	}
	return acc
}

// alertLabels adds the rule's labels, alertname and severity.
func (st *ruleState) alertLabels(base model.Labels) model.Labels {
	ls := base.Copy()
	maps.Copy(ls, st.rule.Labels)
	ls["alertname"] = st.rule.Name
	ls["severity"] = string(st.rule.Severity)
	return ls
}

func (st *ruleState) render(a *alertState) {
	values := make(map[string]float64, len(a.values))
	for i, ag := range st.rule.Condition.Aggregates {
		if i < len(a.values) {
			values[ag.Text] = a.values[i]
		}
	}
	a.annotations = st.rule.Expand(&rules.TemplateData{
		Rule: st.rule.Name, Severity: string(st.rule.Severity),
		Labels: a.labels, Value: a.value, Values: values, Segments: a.segments,
	})
}

func (st *ruleState) forgetResolved(now time.Time) {
	for fp, a := range st.resolved {
		if now.Sub(a.resolved) >= ResolvedRetention {
			delete(st.resolved, fp)
		}
	}
}

// Alerts returns every pending, firing and recently resolved alert.
func (e *Engine) Alerts() []model.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []model.Alert
	for _, st := range e.states {
		for _, seg := range st.index.segments {
			if seg.alert != nil {
				out = append(out, seg.alert.snapshot(st.rule))
			}
		}
		if st.every != nil {
			out = append(out, st.every.snapshot(st.rule))
		}
		for _, a := range st.resolved {
			out = append(out, a.snapshot(st.rule))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Labels.String() < out[j].Labels.String()
	})
	return out
}

// RuleStatus is one rule's health, as shown by `vigil` and its API.
type RuleStatus struct {
	Rule     *rules.Rule
	Health   Health
	LastEval time.Time
	Segments int
}

// RuleStatuses returns every rule's status in rule set order.
func (e *Engine) RuleStatuses() []RuleStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return nil
	}
	var out []RuleStatus
	for _, r := range e.set.Rules() {
		st := e.states[r.Name]
		out = append(out, RuleStatus{Rule: r, Health: st.health, LastEval: st.lastEval, Segments: len(st.index.segments)})
	}
	return out
}
