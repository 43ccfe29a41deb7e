// Package rules reads, validates and compiles Vigil rule files. It is only
// the rule language: no goroutines, no clocks. The engine evaluates what
// this package produces.
package rules

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/vigil-alerts/vigil/model"
)

// Severity says how urgent an alert is.
type Severity string

// Severities, most urgent first.
var Severities = []Severity{"critical", "high", "medium", "low", "info"}

// Across says how segments combine into alerts.
type Across string

const (
	// AcrossAny: each segment is its own alert.
	AcrossAny Across = "any"
	// AcrossEvery: one alert, only while every segment meets the condition.
	AcrossEvery Across = "every"
)

// Trigger says how `for` is read.
type Trigger string

const (
	// TriggerSustained fires once the condition held at every evaluation for `for`.
	TriggerSustained Trigger = "sustained"
	// TriggerAtLeastOnce fires while the condition held at any evaluation
	// within the last `for`.
	TriggerAtLeastOnce Trigger = "at_least_once"
)

// NoData says what a segment without samples in the window does.
type NoData string

const (
	NoDataOK        NoData = "ok"         // treated as the condition not holding
	NoDataAlerting  NoData = "alerting"   // treated as the condition holding
	NoDataKeepState NoData = "keep_state" // nothing changes
)

// Rule is one compiled rule. It is immutable once loaded and safe to share
// between goroutines; alert state lives in the engine, keyed by rule name.
type Rule struct {
	Name  string
	Group string
	File  string
	Pos   Pos
	// Source is File relative to its rules directory, the line of the
	// rule's name and the git commit the file was loaded at. It is set by
	// Load and LoadEach (nil from Parse) and shared by the rule's alerts.
	Source      *model.Source
	Description string
	Severity    Severity
	Labels      model.Labels

	Scope     *Scope // nil: every series
	SegmentBy []string
	Across    Across
	Window    time.Duration
	Condition *Condition

	For           time.Duration
	Trigger       Trigger
	KeepFiringFor time.Duration
	NoData        NoData

	Annotations map[string]*template.Template
	Notify      []string
	NotifyPos   []Pos // where each Notify entry is written
	Inhibit     *model.Inhibit

	// ClearWhen, when set, is the condition that resolves a firing alert
	// (hysteresis): a firing alert whose Condition stops holding stays
	// firing until ClearWhen holds.
	ClearWhen *Condition
	// Flapping, when set, holds an alert that changes state too often.
	Flapping *Flapping
	// Expect, when set, names the segments that must report.
	Expect *Expect

	// StateKey changes only when the rule's meaning changes (scope,
	// condition, timing...): alerts of a rule whose StateKey is unchanged
	// survive a reload. Labels, annotations and routing may change freely.
	StateKey uint64

	// src keeps where the fields are written (see ConditionPos).
	src *sources
}

// Flapping holds an alert that fired or resolved more than Changes times
// within Window, until it has not changed for Window.
type Flapping struct {
	Changes int
	Window  time.Duration
}

// Expect says which segments must exist: those of a collector's inventory
// (Inventory, a collector name), a static list (Segments, each holding
// exactly the segment_by labels), or those seen within Seen.
type Expect struct {
	Inventory string
	Segments  []model.Labels
	Seen      time.Duration
}

// Scope selects the series a rule looks at, from their labels.
type Scope struct {
	Source  string
	Program cel.Program
}

// Condition is a rule's boolean over aggregates. Each aggregate the source
// mentions is computed by the engine per segment and bound to the variable
// Aggregates[i].Var; the program never calls back into Go.
type Condition struct {
	Source     string
	Program    cel.Program
	Aggregates []Aggregate
	// Value, when not nil, computes the left side of the first comparison:
	// the alert's value, shown in templates and notifications.
	Value *ValueProgram
	// Native, when not nil, decides the condition without the interpreter
	// whenever every aggregate has data (see Native).
	Native *Native
	// UsesLabels is true when the condition reads `labels`, so the engine
	// binds them only when needed.
	UsesLabels bool
}

// Reducer is one way to reduce samples or per-series values to a number.
type Reducer string

// Reducers usable in conditions.
const (
	Avg        Reducer = "avg"
	Min        Reducer = "min"
	Max        Reducer = "max"
	Sum        Reducer = "sum"
	Count      Reducer = "count"
	Last       Reducer = "last"
	Rate       Reducer = "rate"
	Increase   Reducer = "increase"
	Stddev     Reducer = "stddev"
	Percentile Reducer = "percentile"
	// Time-only reducers, with Prometheus' semantics (see docs/rules.md).
	Delta         Reducer = "delta"
	Deriv         Reducer = "deriv"
	PredictLinear Reducer = "predict_linear"
	Changes       Reducer = "changes"
	Resets        Reducer = "resets"
	Quantile      Reducer = "quantile"
	// Pool is the across-series step of the shorthand form: the samples
	// of every series are reduced together, as if they were one series.
	Pool Reducer = "pool"
)

// Aggregate is one aggregate a condition uses: Series reduces each series'
// samples in the window, Across reduces those per-series values. When
// AcrossFirst is set the order is reversed: Across reduces the series at
// each step of Step, and Series reduces those values over the window.
type Aggregate struct {
	Text   string // as written, e.g. `avg(rate("etcd.txn.total"))`
	Metric string
	Series Reducer
	Across Reducer
	// Q is the rank in [0,1] for Percentile and Quantile, and the horizon
	// in seconds for PredictLinear.
	Q           float64
	AcrossFirst bool
	Step        time.Duration // the group's interval, for AcrossFirst
	Var         string        // CEL variable the engine binds
}

// Group is a named list of rules evaluated together at one interval.
type Group struct {
	Name     string
	File     string
	Pos      Pos
	Interval time.Duration
	// Schedule, when set, is a cron spec ("*/5 * * * *", "@hourly") the
	// group is evaluated on instead of every Interval.
	Schedule string
	Rules    []*Rule
}

// RuleSet is everything one load produced. It is built whole or not at all.
type RuleSet struct {
	Groups []*Group
	Files  []string
	// Sums are the SHA-256 of each file's loaded contents, by file: a
	// per-file load (LoadEach) recompiles only the files that changed.
	Sums map[string]string
	// MaxWindow is the longest window any rule reads: the engine keeps
	// samples that long and no longer.
	MaxWindow time.Duration
}

// Rules returns every rule in file and group order.
func (rs *RuleSet) Rules() []*Rule {
	var out []*Rule
	for _, g := range rs.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// CheckChannels reports every `notify:` entry naming a channel not in
// known, with its file:line:col.
func (rs *RuleSet) CheckChannels(known []string) error {
	ok := make(map[string]bool, len(known))
	for _, k := range known {
		ok[k] = true
	}
	var errs Errors
	for _, r := range rs.Rules() {
		for i, n := range r.Notify {
			if !ok[n] {
				errs = append(errs, &Error{File: r.File, Pos: r.NotifyPos[i], Rule: r.Name,
					Msg: fmt.Sprintf("notify: no channel named %q (configured: %s)", n, strings.Join(known, ", "))})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ValueProgram computes an alert's value; Native, when not nil, gives the
// same number without the interpreter.
type ValueProgram struct {
	Program cel.Program
	Native  *Native
}
