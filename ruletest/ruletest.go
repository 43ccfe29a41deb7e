// Package ruletest runs rule unit tests (`vigil test`): input series in a
// compact notation, evaluation times, and the alerts expected at each.
package ruletest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	pmodel "github.com/prometheus/common/model"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/internal/yamlstrict"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// File is one test file.
type File struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval duration `yaml:"evaluation_interval"`
	// MaxSeriesLength caps the steps of one input series; 0 means
	// DefaultMaxSeriesLength.
	MaxSeriesLength int    `yaml:"max_series_length"`
	Tests           []Test `yaml:"tests"`
	// Config names a Vigil config (relative to this file) whose
	// notifiers section expect_notifications is checked against;
	// Notifiers gives that section here instead.
	Config    rawText          `yaml:"config"`
	Notifiers *inlineNotifiers `yaml:"notifiers"`
	// ExternalURL is the Vigil URL messages link to (the daemon's
	// --web.external-url); DefaultExternalURL when not given.
	ExternalURL string `yaml:"external_url"`
}

// DefaultExternalURL is the external URL of rule tests that give none,
// so a generatorURL in a golden file does not depend on the host.
const DefaultExternalURL = "http://vigil.test/"

// Test is one scenario: a timeline of series and what to expect on it.
type Test struct {
	Name        string        `yaml:"name"`
	Interval    duration      `yaml:"interval"` // between input samples
	InputSeries []InputSeries `yaml:"input_series"`
	Expect      []Expectation `yaml:"expect"`
	// Silences mute alerts during the test, as `amtool silence add`.
	Silences []TestSilence `yaml:"silences"`
	// ExpectNotifications are what the notifiers send, inhibit and
	// silence at evaluation times.
	ExpectNotifications []DeliveryExpectation `yaml:"expect_notifications"`
}

// InputSeries is one series written in the compact notation.
type InputSeries struct {
	Metric string            `yaml:"metric"`
	Labels map[string]string `yaml:"labels"`
	Values rawText           `yaml:"values"`
}

// rawText keeps a scalar exactly as written: unquoted `0x10` is a YAML
// hex integer (16), but in series notation it means ten zeros. Line is
// where it is written, for errors.
type rawText struct {
	Text string
	Line int
}

func (r *rawText) UnmarshalYAML(n ast.Node) error {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		r.Line = tk.Position.Line
	}
	switch v := n.(type) {
	case *ast.StringNode:
		r.Text = v.Value
		return nil
	case *ast.LiteralNode:
		r.Text = v.Value.Value
		return nil
	case ast.ScalarNode:
		r.Text = v.GetToken().Value
		return nil
	}
	return fmt.Errorf("values: want a string like \"1 1 0x10\"")
}

// lineError is an error at a line of the test file.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

// Expectation lists the alerts one rule has at one evaluation time.
type Expectation struct {
	At     duration        `yaml:"at"`
	Rule   string          `yaml:"rule"`
	Alerts []ExpectedAlert `yaml:"alerts"`
	// States, when given, limits the comparison to alerts in these
	// states: [firing] reads like promtool's exp_alerts, which list only
	// firing alerts.
	States []string `yaml:"states"`
}

// ExpectedAlert matches an alert whose state is State and whose labels and
// annotations include the ones given.
type ExpectedAlert struct {
	State       string            `yaml:"state"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	// Segments, for `across: every` rules, is how many segments the alert lists.
	Segments *int `yaml:"segments"`
	// Value, when given, is the alert's value within a relative
	// ValueTolerance: 0.1*3 is 0.30000000000000004, and `value: 0.3` means it.
	Value *float64 `yaml:"value"`
}

// ValueTolerance is how far, relative to the larger, an alert's value may
// be from an expected `value:` (promtool's fuzzy_compare uses the same 1e-6).
const ValueTolerance = 1e-6

// closeTo reports whether got is want within ValueTolerance; NaN is NaN.
func closeTo(got, want float64) bool {
	if got == want || (math.IsNaN(got) && math.IsNaN(want)) {
		return true
	}
	return math.Abs(got-want) <= ValueTolerance*math.Max(math.Abs(got), math.Abs(want))
}

type duration time.Duration

// UnmarshalText reads durations as rule files do (5m, 1h30m, 1d).
func (d *duration) UnmarshalText(b []byte) error {
	v, err := pmodel.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// Result counts tests.
type Result struct {
	Passed, Failed int
}

// Run runs every test file, writing failures and a summary to w. The error
// is for files that cannot be run at all.
func Run(w io.Writer, paths ...string) (Result, error) {
	return RunWith(w, Options{}, paths...)
}

// RunWith is Run with options (vigil test --update).
func RunWith(w io.Writer, opts Options, paths ...string) (Result, error) {
	var res Result
	for _, p := range paths {
		r, err := runFile(w, p, opts)
		res.Passed += r.Passed
		res.Failed += r.Failed
		var le *lineError
		if errors.As(err, &le) && le.line > 0 {
			return res, fmt.Errorf("%s:%d: %w", p, le.line, err)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", p, err)
		}
	}
	return res, nil
}

func runFile(w io.Writer, path string, opts Options) (Result, error) {
	var res Result
	data, err := os.ReadFile(path)
	if err != nil {
		return res, err
	}
	var f File
	if err := yamlstrict.Unmarshal(data, &f, yaml.Strict()); err != nil {
		return res, fmt.Errorf("%s", yaml.FormatError(err, false, true))
	}
	if len(f.RuleFiles) == 0 {
		return res, fmt.Errorf("rule_files: name the rule files under test")
	}
	var ruleFiles []string
	for _, rf := range f.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(path), rf)
		}
		ruleFiles = append(ruleFiles, rf)
	}
	set, err := rules.Load(ruleFiles...)
	if err != nil {
		return res, err
	}
	// The git commit in a rule's source changes with every commit: golden
	// files show file and line.
	for _, r := range set.Rules() {
		if r.Source != nil {
			r.Source.Commit = ""
		}
	}
	if f.MaxSeriesLength < 0 {
		return res, fmt.Errorf("max_series_length: want a positive number of steps, or 0 for %d", DefaultMaxSeriesLength)
	}
	if f.MaxSeriesLength == 0 {
		f.MaxSeriesLength = DefaultMaxSeriesLength
	}
	every := time.Duration(f.EvaluationInterval)
	if every == 0 {
		every = time.Minute
	}
	dl, err := loadDelivery(path, &f)
	if err != nil {
		return res, err
	}
	if dl != nil {
		dl.update = opts.Update
		dl.out = func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
		// A rule whose notify names a channel the notifiers lack would
		// be tested against a config it cannot run with.
		if err := set.CheckChannels(slices.Sorted(maps.Keys(dl.channels))); err != nil {
			return res, fmt.Errorf("the rules name channels the notifiers lack:\n%w", err)
		}
	}
	for i := range f.Tests {
		t := &f.Tests[i]
		if t.Name == "" {
			t.Name = fmt.Sprintf("test %d", i+1)
		}
		problems, err := runTest(set, t, every, f.MaxSeriesLength, dl)
		if err != nil {
			return res, fmt.Errorf("test %q: %w", t.Name, err)
		}
		if len(problems) == 0 {
			res.Passed++
			continue
		}
		res.Failed++
		fmt.Fprintf(w, "FAIL %s: %s\n", path, t.Name)
		for _, p := range problems {
			fmt.Fprintf(w, "%s\n", indent(p, "    "))
		}
	}
	return res, nil
}

// epoch is the start of every test's timeline; `at: 5m` is epoch+5m.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func runTest(set *rules.RuleSet, t *Test, every time.Duration, maxLen int, dl *delivery) ([]string, error) {
	step := time.Duration(t.Interval)
	if step == 0 {
		step = every
	}
	ruleNames := map[string]bool{}
	for _, r := range set.Rules() {
		ruleNames[r.Name] = true
	}
	var samples []model.Sample
	for _, in := range t.InputSeries {
		vals, err := ParseValuesMax(in.Values.Text, maxLen)
		if err != nil {
			return nil, &lineError{in.Values.Line, fmt.Errorf("series %s: %w", in.Metric, err)}
		}
		for k, v := range vals {
			if math.IsNaN(v) {
				continue
			}
			samples = append(samples, model.Sample{Metric: in.Metric, Labels: in.Labels, Value: v, Time: epoch.Add(time.Duration(k) * step)})
		}
	}
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Time.Before(samples[j].Time) })
	var end time.Duration
	for _, ex := range t.Expect {
		if !ruleNames[ex.Rule] {
			return nil, fmt.Errorf("expect: no rule named %q in the rule files", ex.Rule)
		}
		for _, st := range ex.States {
			if s, ok := model.ParseAlertState(st); !ok || s == model.StateInactive {
				return nil, fmt.Errorf("expect at %s, rule %s: states: %q: want pending, firing or resolved", time.Duration(ex.At), ex.Rule, st)
			}
		}
		for _, a := range ex.Alerts {
			if st, ok := model.ParseAlertState(a.State); a.State != "" && (!ok || st == model.StateInactive) {
				return nil, fmt.Errorf("expect at %s, rule %s: state %q: want pending, firing or resolved", time.Duration(ex.At), ex.Rule, a.State)
			}
		}
		if time.Duration(ex.At)%every != 0 {
			return nil, fmt.Errorf("expect at %s: not a multiple of evaluation_interval %s", time.Duration(ex.At), every)
		}
		end = max(end, time.Duration(ex.At))
	}
	if err := dl.checkTest(t, every); err != nil {
		return nil, err
	}
	byTime := map[time.Duration][]DeliveryExpectation{}
	for _, ex := range t.ExpectNotifications {
		at, _ := parseAt(ex.At) // checked above
		byTime[at] = append(byTime[at], ex)
		end = max(end, at)
	}
	if n := end / every; n > time.Duration(maxLen) {
		return nil, fmt.Errorf("expect at %s: %d evaluations of every %s, more than %d (max_series_length)", end, n, every, maxLen)
	}

	store := engine.NewStore(set.MaxWindow)
	// Series that stop are forgotten as the daemon forgets them.
	store.SetSeriesRetention(engine.SeriesRetentionFor(set, engine.DefaultSeriesSlack))
	eng := engine.New(store)
	eng.SetRules(set)
	var run *deliveryRun
	if dl != nil {
		var err error
		if run, err = dl.start(t); err != nil {
			return nil, err
		}
		defer run.stop()
	}
	var problems []string
	failing := map[string]bool{} // rules already reported as failing
	next := 0
	for at := time.Duration(0); at <= end; at += every {
		now := epoch.Add(at)
		// Feed what has been collected by now, as collectors would.
		k := next
		for k < len(samples) && !samples[k].Time.After(now) {
			k++
		}
		store.Append(samples[next:k]...)
		next = k
		if err := eng.Eval(context.Background(), now); err != nil {
			return nil, err
		}
		// A rule that cannot be evaluated must not pass, whatever the
		// expectations: they would be met by a rule that never runs.
		for _, st := range eng.RuleStatuses() {
			if st.Health.OK || failing[st.Rule.Name] {
				continue
			}
			failing[st.Rule.Name] = true
			problems = append(problems, fmt.Sprintf("at %s, rule %s (%s:%d): evaluation failed: %s",
				at, st.Rule.Name, st.Rule.File, st.Rule.Pos.Line, st.Health.Err))
		}
		alerts := eng.Alerts()
		for _, ex := range t.Expect {
			if time.Duration(ex.At) != at {
				continue
			}
			if p := compare(ex, alerts, now); p != "" {
				problems = append(problems, p)
			}
		}
		if run != nil {
			// As the daemon hands them over after each evaluation.
			sent := run.step(now, alerts)
			// A template that fails sends the fallback text in production;
			// a test must not pass over it, expected at that time or not.
			for _, m := range sent {
				if m.Err != nil {
					problems = append(problems, fmt.Sprintf("at %s, channel %s, group %s: rendering failed: %v", at, m.Channel, m.Group.Labels, m.Err))
				}
			}
			for _, ex := range byTime[at] {
				problems = append(problems, run.check(ex, at, sent)...)
			}
		}
	}
	return problems, nil
}

// compare checks one expectation; it returns a readable diff or "".
func compare(ex Expectation, alerts []model.Alert, now time.Time) string {
	var got []model.Alert
	for _, a := range alerts {
		if a.Rule != ex.Rule {
			continue
		}
		if a.State == model.StateResolved && !a.ResolvedAt.Equal(now) {
			continue // resolved earlier: no longer an alert at this time
		}
		if len(ex.States) > 0 && !slices.Contains(ex.States, a.State.String()) {
			continue
		}
		got = append(got, a)
	}
	used := make([]bool, len(got))
	var missing []ExpectedAlert
	for _, want := range ex.Alerts {
		found := false
		for i, a := range got {
			if !used[i] && matches(want, a) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	var extra []model.Alert
	for i, a := range got {
		if !used[i] {
			extra = append(extra, a)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "at %s, rule %s:\n", time.Duration(ex.At), ex.Rule)
	if len(ex.States) > 0 {
		fmt.Fprintf(&b, "  (comparing only %s alerts)\n", strings.Join(ex.States, ", "))
	}
	fmt.Fprintf(&b, "  expected %d alert(s):\n", len(ex.Alerts))
	for _, want := range ex.Alerts {
		mark := "  "
		if slices.ContainsFunc(missing, func(m ExpectedAlert) bool { return fmt.Sprint(m) == fmt.Sprint(want) }) {
			mark = "- "
		}
		fmt.Fprintf(&b, "  %s%s\n", mark, describeWant(want))
	}
	fmt.Fprintf(&b, "  got %d alert(s):\n", len(got))
	for i, a := range got {
		mark := "  "
		if !used[i] {
			mark = "+ "
		}
		fmt.Fprintf(&b, "  %s%s\n", mark, describe(a))
	}
	return strings.TrimRight(b.String(), "\n")
}

func matches(want ExpectedAlert, a model.Alert) bool {
	state := want.State
	if state == "" {
		state = "firing"
	}
	if a.State.String() != state {
		return false
	}
	for k, v := range want.Labels {
		if got, ok := a.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k, v := range want.Annotations {
		if got, ok := a.Annotations[k]; !ok || got != v {
			return false
		}
	}
	if want.Segments != nil && len(a.Segments) != *want.Segments {
		return false
	}
	if want.Value != nil && !closeTo(a.Value, *want.Value) {
		return false
	}
	return true
}

func describeWant(w ExpectedAlert) string {
	state := w.State
	if state == "" {
		state = "firing"
	}
	s := state + " " + model.Labels(w.Labels).String()
	if len(w.Annotations) > 0 {
		s += " annotations " + model.Labels(w.Annotations).String()
	}
	if w.Segments != nil {
		s += fmt.Sprintf(" segments=%d", *w.Segments)
	}
	if w.Value != nil {
		s += fmt.Sprintf(" value=%g", *w.Value)
	}
	return s
}

func describe(a model.Alert) string {
	s := a.State.String() + " " + a.Labels.String()
	if len(a.Annotations) > 0 {
		s += " annotations " + model.Labels(a.Annotations).String()
	}
	if len(a.Segments) > 0 {
		s += fmt.Sprintf(" segments=%d", len(a.Segments))
	}
	return s + fmt.Sprintf(" value=%g", a.Value)
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}
