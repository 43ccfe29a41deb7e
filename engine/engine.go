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
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// noDataPrefix starts the error bound for an aggregate without samples.
const noDataPrefix = "no data for "

// retentionSlack is kept beyond the longest window so that an evaluation
// running a little behind the newest samples still sees a full window.
const retentionSlack = time.Minute

// Engine evaluates a rule set. Its methods are safe for concurrent use;
// evaluations of one engine run one at a time.
type Engine struct {
	store  *Store
	logger *slog.Logger
	// onFailure is told of every failed rule evaluation (WithEvalFailure).
	onFailure func(r *rules.Rule)

	mu      sync.Mutex
	set     *rules.RuleSet
	states  map[string]*ruleState // by rule name; outlives reloads
	indexes map[string]*index     // by scope and segment_by, shared by rules
	// retired holds the states of rules a reload removed, by name, until
	// their firing alerts are resolved and the resolutions forgotten.
	retired map[string]*ruleState
	lastGC  time.Time
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
	// metrics are the positions in index.metrics of the metrics the rule reads.
	metrics []int
	// cols[i] holds aggregate i for every segment, this evaluation.
	// Columns are the index's, shared with the rules of the same scope and
	// segment_by: colsEnd and colsVersion say which computation was this
	// rule's, so Explain can tell whether another rule has recomputed them.
	cols        []*column
	colsEnd     int64
	colsVersion uint64
	// everySegs and everyVals keep, for an `across: every` rule, each
	// evaluated segment and its aggregates (len(cols) per segment) as this
	// evaluation saw them, for Explain: the columns may be recomputed by
	// another rule before anyone asks.
	everySegs []model.Labels
	everyVals []float64
	// segs[k] is this rule's state for index.segments[k], valid for
	// index generation gen.
	segs []segState
	gen  uint64
	// every is the single alert of an `across: every` rule.
	every *alertState
	// resolved alerts waiting to be forgotten, by fingerprint.
	resolved map[string]*alertState
	// restored alerts (Import) whose segment has no series yet, by key.
	restored map[string]*alertState
	// missing are the alerts of expected segments that are missing, by
	// fingerprint; seen is when each segment last reported, for
	// `expect: seen`.
	missing map[string]*alertState
	seen    map[string]seenSeg
	// clear evaluates clear_when, when the rule has one.
	clear *clearState
	// failures counts the evaluations failed in a row since failingSince,
	// so that a failing rule is logged when it starts failing, when its
	// error changes and when it recovers, not at every evaluation.
	failures     int
	failingSince time.Time
	// history keeps the flapping changes of alerts that went inactive or
	// were forgotten, by fingerprint, for as long as the window counts
	// them.
	history map[string][]time.Time
	// ending are firing alerts of an earlier version of the rule whose
	// alerts are not this version's (another across or segment_by) or of
	// a removed rule: they resolve at the next evaluation.
	ending []*alertState

	health   Health
	lastEval time.Time
}

// segState is a rule's state for one segment.
type segState struct {
	key   string
	alert *alertState
	// lastHolds remembers the last known outcome, which keep_state
	// repeats while the segment has no data.
	lastHolds bool
	lastValue float64
	// counted: the segment took part in the last `across: every` decision.
	counted bool
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

// WithEvalFailure calls f, under the engine's lock, after every
// evaluation of a rule that failed (the daemon counts them per rule).
func WithEvalFailure(f func(r *rules.Rule)) Option { return func(e *Engine) { e.onFailure = f } }

// New returns an engine reading from store.
func New(store *Store, opts ...Option) *Engine {
	e := &Engine{store: store, logger: slog.New(slog.DiscardHandler), states: map[string]*ruleState{}, indexes: map[string]*index{},
		retired: map[string]*ruleState{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Store returns the engine's window store.
func (e *Engine) Store() *Store { return e.store }

// SetRules swaps in a new rule set. Alerts are matched to the new rules
// by rule name and segment labels, as Prometheus matches them by rule name
// and labels: a rule with the same name, across and segment_by keeps its
// alerts and pending timers whatever else changed (condition, for,
// window, scope...), and the next evaluation decides them by the new
// rule. A rule whose across or segment_by changed starts afresh, and the
// firing alerts of such a rule, or of a removed or renamed one, resolve
// at the next evaluation: they are never dropped silently.
func (e *Engine) SetRules(rs *rules.RuleSet) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Rules with the same scope and segment_by share an index holding every
	// metric they read; an index whose metrics did not change is kept, so
	// it need not re-scan the store.
	metrics := map[string][]string{}
	for _, r := range rs.Rules() {
		k := indexKey(r)
		aggs := r.Condition.Aggregates
		if r.ClearWhen != nil {
			aggs = append(slices.Clip(aggs), r.ClearWhen.Aggregates...)
		}
		for _, a := range aggs {
			if !slices.Contains(metrics[k], a.Metric) {
				metrics[k] = append(metrics[k], a.Metric)
			}
		}
	}
	indexes := make(map[string]*index, len(metrics))
	for _, r := range rs.Rules() {
		k := indexKey(r)
		if indexes[k] != nil {
			continue
		}
		sort.Strings(metrics[k])
		if old := e.indexes[k]; old != nil && slices.Equal(old.metrics, metrics[k]) {
			clear(old.columns) // drop aggregates only removed rules asked for
			indexes[k] = old
		} else {
			indexes[k] = newIndex(r, metrics[k])
		}
	}
	states := make(map[string]*ruleState, len(rs.Rules()))
	for _, r := range rs.Rules() {
		st := newRuleState(r, indexes[indexKey(r)])
		old, ok := e.states[r.Name]
		if !ok {
			// Removed a moment ago and back: its resolutions are the
			// same alerts as the new rule's, not a second copy of them.
			old, ok = e.retired[r.Name]
			delete(e.retired, r.Name)
		}
		switch {
		case ok && sameAlerts(old.rule, r):
			st.adopt(old)
		case ok:
			old.retire()
			st.ending, st.resolved = old.ending, old.resolved
		}
		states[r.Name] = st
	}
	for name, old := range e.states {
		if states[name] == nil {
			old.retire()
			e.retired[name] = old
		}
	}
	e.states, e.indexes = states, indexes
	e.set = rs
	e.store.SetRetention(rs.MaxWindow + retentionSlack)
}

// sameAlerts reports whether rules a and b make the same alerts: the same
// name, across and segment_by labels (in any order).
func sameAlerts(a, b *rules.Rule) bool {
	return a.Name == b.Name && a.Across == b.Across && sameNames(a.SegmentBy, b.SegmentBy)
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// adopt takes over old's alerts and per-segment state: old is an earlier
// version of st's rule that makes the same alerts.
func (st *ruleState) adopt(old *ruleState) {
	st.segs, st.gen = old.segs, old.gen
	st.every, st.resolved, st.restored, st.ending = old.every, old.resolved, old.restored, old.ending
	st.history, st.missing, st.seen = old.history, old.missing, old.seen
	st.health, st.lastEval = old.health, old.lastEval
	if old.index != st.index {
		st.gen = st.index.gen - 1 // realign by key at the next evaluation
	}
	if by := st.rule.SegmentBy; !slices.Equal(old.rule.SegmentBy, by) {
		// The same labels in another order: segment keys follow the order.
		aligned := old.index != nil && old.gen == old.index.gen
		st.segs = st.segs[:0:0]
		for k, ss := range old.segs {
			var ls model.Labels
			switch {
			case ss.alert != nil:
				ls = ss.alert.segment
			case aligned && k < len(old.index.segments):
				ls = old.index.segments[k].labels
			default:
				continue
			}
			ss.key, _, _ = segmentOf(by, ls)
			st.segs = append(st.segs, ss)
		}
		st.restored = make(map[string]*alertState, len(old.restored))
		for _, a := range old.restored {
			if key, _, ok := segmentOf(by, a.segment); ok {
				st.restored[key] = a
			}
		}
		st.gen = st.index.gen - 1
	}
	st.refresh(old.rule)
}

// retire moves st's firing alerts to ending and forgets its pending ones
// (nothing was sent about them): st's rule is gone or makes other alerts.
func (st *ruleState) retire() {
	add := func(a *alertState) {
		if a != nil && a.shown() == model.StateFiring {
			st.ending = append(st.ending, a)
		}
	}
	for _, ss := range st.segs {
		add(ss.alert)
	}
	add(st.every)
	for _, a := range st.restored {
		add(a)
	}
	for _, a := range st.missing {
		add(a)
	}
	st.segs, st.every, st.restored, st.missing = nil, nil, map[string]*alertState{}, map[string]*alertState{}
	st.index, st.cols = nil, nil
}

// endRetired resolves the firing alerts of removed rules and forgets their
// states once their resolutions are.
func (e *Engine) endRetired(now time.Time) {
	for name, st := range e.retired {
		st.endOld(now)
		st.forgetResolved(now)
		if len(st.resolved) == 0 {
			delete(e.retired, name)
		}
	}
}

// endOld resolves the ending alerts at now.
func (st *ruleState) endOld(now time.Time) {
	for _, a := range st.ending {
		a.end(now)
		st.resolved[a.fp] = a
	}
	st.ending = nil
}

func newRuleState(r *rules.Rule, ix *index) *ruleState {
	n := len(r.Condition.Aggregates)
	st := &ruleState{
		rule: r, index: ix, gen: ix.gen, cols: make([]*column, n),
		aggs: make([]aggregator, n), vals: make([]float64, n),
		noData: make([]ref.Val, n), lastBoxed: make([]ref.Val, n),
		resolved: map[string]*alertState{},
		restored: map[string]*alertState{},
		missing:  map[string]*alertState{},
		health:   Health{OK: true},
	}
	st.act.vals = make([]ref.Val, n)
	if r.ClearWhen != nil {
		st.clear = newClearState(r.ClearWhen)
	}
	st.metrics = ruleMetrics(r, ix)
	for i, a := range r.Condition.Aggregates {
		st.noData[i] = types.NewErr("%s%s", noDataPrefix, a.Text)
	}
	return st
}

// ruleMetrics lists the positions in ix of the metrics r reads.
func ruleMetrics(r *rules.Rule, ix *index) []int {
	var ms []int
	for _, a := range r.Condition.Aggregates {
		if m := ix.metricIx[a.Metric]; !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	return ms
}

// Rules returns the rule set in use.
func (e *Engine) Rules() *rules.RuleSet {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.set
}

// Eval evaluates every rule at now. A cancelled ctx (leadership lost,
// shutdown) stops it between rules; the rules not reached keep their state.
func (e *Engine) Eval(ctx context.Context, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return nil
	}
	e.gc(now)
	e.endRetired(now)
	for _, g := range e.set.Groups {
		if err := e.evalGroup(ctx, g, now); err != nil {
			return err
		}
	}
	return nil
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
			e.endRetired(now)
			return e.evalGroup(ctx, g, now)
		}
	}
	return fmt.Errorf("no rule group %q", group)
}

// gc trims the store at most once per retention slack of evaluation time.
func (e *Engine) gc(now time.Time) {
	if d := now.Sub(e.lastGC); d >= 0 && d < retentionSlack {
		return // a time before the last GC (a replay, a test) collects again
	}
	e.lastGC = now
	e.store.GC(now)
}

func (e *Engine) evalGroup(ctx context.Context, g *rules.Group, now time.Time) error {
	e.store.mu.RLock()
	defer e.store.mu.RUnlock()
	for _, r := range g.Rules {
		if err := ctx.Err(); err != nil {
			return err
		}
		st := e.states[r.Name]
		prevErr := st.health.Err
		err := e.evalRule(st, now)
		switch {
		case err != nil && (st.failures == 0 || err.Error() != prevErr):
			if st.failures == 0 {
				st.failingSince = now
			}
			st.failures++
			e.logger.Warn("rule evaluation failing", "group", g.Name, "rule", r.Name, "err", err,
				"failing_since", st.failingSince, "failed_evaluations", st.failures)
		case err != nil:
			st.failures++
			e.logger.Debug("rule evaluation failed", "group", g.Name, "rule", r.Name, "err", err)
		case st.failures > 0:
			e.logger.Info("rule evaluation recovered", "group", g.Name, "rule", r.Name,
				"failing_since", st.failingSince, "failed_evaluations", st.failures)
			st.failures = 0
		}
		if err != nil && e.onFailure != nil {
			e.onFailure(r)
		}
	}
	return nil
}

// evalRule evaluates one rule over all its segments. An error marks the
// rule unhealthy and leaves the alerts of the failing segments as they were.
//
// Until the rule's window is covered by data (warm-up: the store's first
// sample is inside the window, right after a start), what the engine has
// not seen is unknown rather than false: a segment without data changes
// nothing, whatever no_data says, and an alert active since before the
// data started (restored from saved state) does not end because the
// condition does not hold over a partial window.
func (e *Engine) evalRule(st *ruleState, now time.Time) (err error) {
	r := st.rule
	defer func() {
		st.lastEval = now
		st.health = Health{OK: err == nil}
		if err != nil {
			st.health.Err = err.Error()
		}
	}()
	if len(st.ending) > 0 {
		st.endOld(now)
	}
	scopeErr := st.index.update(e.store)
	st.index.flatten()
	st.align(now)
	end := now.UnixNano()
	start := end - int64(r.Window)
	first, hasData := e.store.first, e.store.hasData
	warm := hasData && first <= start
	for i := range r.Condition.Aggregates {
		st.cols[i] = st.index.column(&r.Condition.Aggregates[i], &st.aggs[i], start, end, e.store.version)
	}
	st.colsEnd, st.colsVersion = end, e.store.version
	if r.Across == rules.AcrossEvery {
		st.keepEvery()
	}
	everyFiring := st.every != nil && st.every.state == model.StateFiring
	if st.clear != nil {
		st.clear.columns(st.index, start, end, e.store.version)
	}
	expected, expecting := st.expected(e.store, end)
	var firstErr error
	allHold, unsure, counted := true, false, 0
	anyClear := false
	for k, seg := range st.index.segments {
		ss := &st.segs[k]
		if !st.index.reports(k, st.metrics) {
			// The segment exists for another rule of the shared index:
			// none of this rule's metrics ever reported there.
			ss.counted = false
			continue
		}
		if ss.alert == nil && len(st.restored) > 0 {
			if a, ok := st.restored[seg.key]; ok {
				ss.alert = a
				// keep_state repeats the outcome the alert was saved with.
				ss.lastHolds = a.state == model.StatePending || a.state == model.StateFiring && a.keepSince.IsZero()
				delete(st.restored, seg.key)
			}
		}
		o, evalErr := st.evalSegment(seg, k)
		if evalErr != nil && firstErr == nil {
			firstErr = evalErr
		}
		if r.Across == rules.AcrossEvery {
			ss.counted = true
			switch o {
			case holds:
				ss.lastHolds = true
			case fails:
				ss.lastHolds = false
			case absent:
				if !warm {
					// Not collected yet, maybe: neither for nor against.
					unsure = true
					counted++
					ss.lastValue = st.vals[0]
					continue
				}
				switch r.NoData {
				case rules.NoDataAlerting:
					ss.lastHolds = true
				case rules.NoDataOK:
					// A segment that stopped reporting blocks the alert
					// for a window, then no longer counts: a member taken
					// out of the cluster must not keep "every member is
					// down" from firing.
					ss.lastHolds = false
					ss.counted = seg.lastSample(st.metrics) > end-int64(r.Window)-int64(retentionSlack)
				}
			}
			if !ss.counted {
				continue
			}
			if everyFiring && st.clear != nil && !anyClear {
				c, err := st.clear.holds(seg, k)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				anyClear = c
			}
			counted++
			ss.lastValue = st.vals[0]
			if o == holds || st.every != nil {
				ss.lastValue = st.value()
			}
			allHold = allHold && ss.lastHolds
			continue
		}
		kept := false
		switch o {
		case holds:
			ss.lastHolds = true
		case fails:
			ss.lastHolds = false
			if !warm && ss.alert != nil && ss.alert.activeAt.UnixNano() < first {
				o = unknown // a partial window says nothing against a restored alert
			} else if st.clear != nil && ss.alert != nil && ss.alert.state == model.StateFiring {
				cleared, err := st.clear.holds(seg, k)
				if err != nil {
					o = unknown // an error never resolves
					if firstErr == nil {
						firstErr = err
					}
				} else if !cleared {
					o, ss.lastHolds = between, true
				}
			}
		case absent:
			switch {
			case !warm:
				o = unknown
			case expecting && expected[seg.key].segment != nil:
				// The missing alert speaks for an expected segment.
				o = fails
			case r.NoData == rules.NoDataKeepState:
				o, kept = fails, true
				if ss.lastHolds {
					o = holds
				}
			default:
				o = st.noDataOutcome()
			}
		}
		st.stepSegment(seg, ss, o, kept, now)
	}
	if r.Across == rules.AcrossEvery {
		o := fails
		switch {
		case counted == 0:
			// No segment at all: the rule as a whole has no data.
			o = unknown
			if warm {
				o = st.noDataOutcome()
			}
		case allHold && unsure:
			o = unknown
		case allHold:
			o = holds
		case firstErr != nil:
			o = unknown // never resolve because of an error
		case everyFiring && st.clear != nil && !anyClear:
			o = between
		case !warm && st.every != nil && st.every.activeAt.UnixNano() < first:
			o = unknown // a partial window says nothing against a restored alert
		}
		st.stepEvery(o, now)
	}
	switch {
	case expecting:
		st.stepMissing(expected, start, warm, now)
	case r.Expect == nil && len(st.missing) > 0:
		st.stepMissing(nil, start, warm, now) // expect removed by a reload: they resolve
	}
	if len(st.restored) > 0 && hasData {
		st.expireRestored(now)
	}
	st.forgetResolved(now)
	if firstErr != nil {
		return firstErr
	}
	return scopeErr
}

// evalSegment decides the condition for segment k from its aggregates:
// phase two of an evaluation.
func (st *ruleState) evalSegment(seg *segment, k int) (outcome, error) {
	r := st.rule
	seen, missing := false, false
	for i, c := range st.cols {
		v := c.vals[k]
		seen = seen || c.seen[k]
		if math.IsNaN(v) {
			missing = true
			st.vals[i] = math.NaN()
			st.act.vals[i] = st.noData[i]
			continue
		}
		st.vals[i] = v
		if r.Condition.Native == nil {
			st.act.vals[i] = st.boxed(i, v)
		}
	}
	if !seen {
		return absent, nil
	}
	if nat := r.Condition.Native; nat != nil {
		if !missing {
			if v, exact := nat.Eval(st.vals); exact {
				if v {
					return holds, nil
				}
				return fails, nil
			}
		}
		st.boxAll() // the native path skipped binding values for CEL
	}
	st.act.labels = nil
	if r.Condition.UsesLabels {
		st.act.labels = seg.labelsVal
	}
	out, _, err := r.Condition.Program.Eval(&st.act)
	if err != nil {
		if missing && strings.Contains(err.Error(), noDataPrefix) {
			return absent, nil // part of what the condition needs has no samples
		}
		return unknown, fmt.Errorf("segment %s: %w", seg.labels, err)
	}
	switch out {
	case types.True:
		return holds, nil
	case types.False:
		return fails, nil
	}
	if missing && types.IsError(out) {
		return absent, nil
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

// noDataOutcome is what no_data makes of a segment, or of an `across:
// every` rule with no segment at all, without data. (An `across: any`
// segment under keep_state repeats its own last outcome instead.)
func (st *ruleState) noDataOutcome() outcome {
	switch st.rule.NoData {
	case rules.NoDataAlerting:
		return holds
	case rules.NoDataKeepState:
		return unknown
	}
	return fails
}

// stepSegment runs the state machine of one `across: any` segment. kept
// says o is keep_state repeating the last outcome without data: the alert
// keeps the values it showed.
func (st *ruleState) stepSegment(seg *segment, ss *segState, o outcome, kept bool, now time.Time) {
	a := ss.alert
	if a == nil {
		if o != holds {
			return // the common case: nothing is wrong, nothing to do
		}
		a = st.resolved[model.Fingerprint(st.rule.Name, seg.labels)]
		if a == nil {
			a = st.newAlert(model.Fingerprint(st.rule.Name, seg.labels), seg.labels)
		}
		delete(st.resolved, a.fp)
		ss.alert = a
	}
	prev := a.state
	changed := step(a, st.rule, o, now)
	changed = a.flap(st.rule, prev, now) || changed
	if !a.flapping && (a.state == model.StateInactive || a.state == model.StateResolved) {
		ss.alert = nil
		if a.state == model.StateResolved {
			st.resolved[a.fp] = a
		} else {
			st.keepHistory(a)
		}
	}
	if (o == holds || o == between) && !kept || changed {
		// Re-render only when something shown changed: templates are the
		// costliest step for a firing alert.
		render := changed
		if !kept {
			if v := st.value(); v != a.value || !slices.EqualFunc(a.values, st.vals, sameValue) {
				a.value, a.values, render = v, slices.Clone(st.vals), true
			}
		}
		if render {
			if changed && a.state != model.StateInactive && seg != nil {
				a.labels = st.alertLabels(seg.commonLabels(st.metrics))
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
		fp := model.Fingerprint(st.rule.Name, model.Labels{})
		a = st.resolved[fp] // firing again: the same alert, not a second one
		if a == nil {
			a = st.newAlert(fp, model.Labels{})
		}
		delete(st.resolved, fp)
		st.every = a
	}
	prev := a.state
	changed := step(a, st.rule, o, now)
	changed = a.flap(st.rule, prev, now) || changed
	if o == holds || changed {
		a.segments = nil // snapshots handed out share the old slice
		var common model.Labels
		for k, seg := range st.index.segments {
			if !st.segs[k].counted {
				continue
			}
			a.segments = append(a.segments, model.SegmentValue{Labels: seg.labels, Value: st.segs[k].lastValue})
			if changed {
				common = intersect(common, seg.commonLabels(st.metrics))
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
	switch {
	case a.flapping:
	case a.state == model.StateInactive:
		st.every = nil
		st.keepHistory(a)
	case a.state == model.StateResolved:
		st.every = nil
		st.resolved[a.fp] = a
	}
}

// newAlert starts an alert, with the flapping changes its fingerprint
// made recently.
func (st *ruleState) newAlert(fp string, segment model.Labels) *alertState {
	a := &alertState{fp: fp, segment: segment}
	if h, ok := st.history[fp]; ok {
		a.changes = h
		delete(st.history, fp)
	}
	return a
}

// keepHistory remembers the flapping changes of an alert about to be
// dropped, so that it counts them when it comes back.
func (st *ruleState) keepHistory(a *alertState) {
	if st.rule.Flapping == nil || len(a.changes) == 0 {
		return
	}
	if st.history == nil {
		st.history = map[string][]time.Time{}
	}
	st.history[a.fp] = a.changes
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
			st.keepHistory(a)
		}
	}
	if f := st.rule.Flapping; f != nil {
		for fp, h := range st.history {
			if now.Sub(h[len(h)-1]) >= f.Window {
				delete(st.history, fp)
			}
		}
	}
}

// Alerts returns every pending, firing and recently resolved alert.
func (e *Engine) Alerts() []model.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []model.Alert
	add := func(st *ruleState) {
		for _, ss := range st.segs {
			if ss.alert != nil {
				out = append(out, ss.alert.snapshot(st.rule))
			}
		}
		if st.every != nil {
			out = append(out, st.every.snapshot(st.rule))
		}
		for _, a := range st.resolved {
			out = append(out, a.snapshot(st.rule))
		}
		for _, a := range st.restored {
			out = append(out, a.snapshot(st.rule)) // restored, its segment not seen yet
		}
		for _, a := range st.missing {
			out = append(out, a.snapshot(st.rule))
		}
		for _, a := range st.ending {
			out = append(out, a.snapshot(st.rule)) // firing until the next evaluation resolves it
		}
	}
	for _, st := range e.states {
		add(st)
	}
	for _, st := range e.retired {
		add(st)
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

// align brings segs in line with the index: new segments get fresh state;
// after a rebuild, state moves by segment key, and alerts whose segment is
// gone (its series expired) end: firing ones resolve, pending ones drop.
func (st *ruleState) align(now time.Time) {
	ix := st.index
	if st.gen == ix.gen {
		for k := len(st.segs); k < len(ix.segments); k++ {
			st.segs = append(st.segs, segState{key: ix.segments[k].key})
		}
		return
	}
	old := make(map[string]segState, len(st.segs))
	for _, ss := range st.segs {
		old[ss.key] = ss
	}
	st.segs = make([]segState, len(ix.segments))
	for k, seg := range ix.segments {
		st.segs[k] = segState{key: seg.key}
		if prev, ok := old[seg.key]; ok {
			st.segs[k] = prev
			delete(old, seg.key)
		}
	}
	for _, ss := range old {
		// The segment's series are gone for longer than the series
		// retention: its alert ends here, whatever keep_firing_for or
		// at_least_once would say, keeping the value it last showed.
		a := ss.alert
		if a == nil {
			continue
		}
		if a.end(now) {
			st.resolved[a.fp] = a
		}
	}
	st.gen = ix.gen
}

// refresh re-labels and re-renders the rule's alerts after a reload kept
// them, so new labels and annotations show at once rather than at the
// alert's next change.
func (st *ruleState) refresh(prev *rules.Rule) {
	each := func(a *alertState) {
		if a == nil || a.labels == nil {
			return
		}
		base := a.labels.Copy()
		for k := range prev.Labels {
			delete(base, k)
		}
		delete(base, "alertname")
		delete(base, "severity")
		a.labels = st.alertLabels(base)
		st.render(a)
	}
	for i := range st.segs {
		each(st.segs[i].alert)
	}
	each(st.every)
	for _, a := range st.resolved {
		each(a)
	}
	for _, a := range st.restored {
		each(a)
	}
	for _, a := range st.missing {
		each(a)
	}
}

// sameValue is == where NaN (no data) equals NaN.
func sameValue(a, b float64) bool { return a == b || (a != a && b != b) }
