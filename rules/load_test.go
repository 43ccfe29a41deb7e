package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of testdata/bad")

// TestLoadBad loads every case under testdata/bad — a file <case>.yaml, or a
// directory <case>/ when the mistake needs several files — and compares the
// errors, one per line, with <case>.err.
func TestLoadBad(t *testing.T) {
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{} // case name -> input path
	goldens := 0
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			cases[name] = filepath.Join("testdata/bad", name)
		case strings.HasSuffix(name, ".yaml"):
			cases[strings.TrimSuffix(name, ".yaml")] = filepath.Join("testdata/bad", name)
		case strings.HasSuffix(name, ".err"):
			goldens++
			if _, err := os.Stat(strings.TrimSuffix(filepath.Join("testdata/bad", name), ".err") + ".yaml"); err != nil {
				if _, err := os.Stat(strings.TrimSuffix(filepath.Join("testdata/bad", name), ".err")); err != nil {
					t.Errorf("%s: no <case>.yaml or <case>/ beside it", name)
				}
			}
		}
	}
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/bad")
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			golden := filepath.Join("testdata/bad", name+".err")
			set, err := Load(input)
			if err == nil {
				t.Fatalf("Load(%s) = %d rules, want errors", input, len(set.Rules()))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load(%s) error is %T, want rules.Errors: %v", input, err, err)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoadBad -update, then read the file)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) errors differ\n got:\n%s\nwant:\n%s", input, got, want)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.File, input) {
					t.Errorf("error does not name its file: %v", e)
				}
			}
		})
	}
}

// TestLoadGood loads every file under testdata/good on its own.
func TestLoadGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			set, err := Load(f)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", f, err)
			}
			if len(set.Rules()) == 0 {
				t.Fatalf("Load(%s): no rules", f)
			}
			for _, r := range set.Rules() {
				if r.Condition == nil || r.Condition.Program == nil || r.StateKey == 0 {
					t.Errorf("rule %s: not compiled (condition %v, state key %d)", r.Name, r.Condition, r.StateKey)
				}
			}
		})
	}
}

// TestLoadFields checks what a good file turns into: every field as written,
// and the defaults of the fields left out.
func TestLoadFields(t *testing.T) {
	set, err := Load("testdata/good/fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Rule{}
	for _, r := range set.Rules() {
		byName[r.Name] = r
	}
	full, minimal := byName["Full"], byName["Minimal"]
	if full == nil || minimal == nil {
		t.Fatalf("want rules Full and Minimal, got %d rules", len(byName))
	}
	if got := set.Groups[0].Interval; got != 30*time.Second {
		t.Errorf("group interval = %v, want 30s", got)
	}
	if got := set.Groups[1].Interval; got != DefaultInterval {
		t.Errorf("default group interval = %v, want %v", got, DefaultInterval)
	}
	if set.MaxWindow != 10*time.Minute {
		t.Errorf("MaxWindow = %v, want 10m (the longest window)", set.MaxWindow)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"Full.Group", full.Group, "first"},
		{"Full.File", full.File, "testdata/good/fields.yaml"},
		{"Full.Pos", full.Pos, Pos{Line: 5, Column: 15}},
		{"Full.Description", full.Description, "Everything spelled out."},
		{"Full.Severity", full.Severity, Severity("critical")},
		{"Full.Labels", full.Labels.String(), `{team="storage", tier="1"}`},
		{"Full.Scope", full.Scope != nil && full.Scope.Program != nil, true},
		{"Full.SegmentBy", strings.Join(full.SegmentBy, ","), "host.mac,cluster"},
		{"Full.Across", full.Across, AcrossEvery},
		{"Full.Window", full.Window, 10 * time.Minute},
		{"Full.For", full.For, 5 * time.Minute},
		{"Full.Trigger", full.Trigger, TriggerAtLeastOnce},
		{"Full.KeepFiringFor", full.KeepFiringFor, 2 * time.Minute},
		{"Full.NoData", full.NoData, NoDataKeepState},
		{"Full.Annotations", len(full.Annotations), 2},
		{"Full.Notify", strings.Join(full.Notify, ","), "oncall-slack,team.email"},
		{"Full.Inhibit", full.Inhibit != nil && slices.Equal(full.Inhibit.Rules, []string{"Minimal"}) && slices.Equal(full.Inhibit.Equal, []string{"cluster"}), true},

		{"Minimal.Group", minimal.Group, "second"},
		{"Minimal.Scope", minimal.Scope == nil, true},
		{"Minimal.SegmentBy", len(minimal.SegmentBy), 0},
		{"Minimal.Across", minimal.Across, AcrossAny},
		{"Minimal.Window", minimal.Window, DefaultWindow},
		{"Minimal.For", minimal.For, time.Duration(0)},
		{"Minimal.Trigger", minimal.Trigger, TriggerSustained},
		{"Minimal.KeepFiringFor", minimal.KeepFiringFor, time.Duration(0)},
		{"Minimal.NoData", minimal.NoData, NoDataOK},
		{"Minimal.Inhibit", minimal.Inhibit == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

// ruleYAML wraps one rule's fields, written at column 0, into a file.
func ruleYAML(fields string) []byte {
	lines := strings.Split(strings.TrimSpace(fields), "\n")
	return []byte("groups:\n  - name: g\n    rules:\n      - " + strings.Join(lines, "\n        ") + "\n")
}

func parseOne(t *testing.T, fields string) *Rule {
	t.Helper()
	set, err := Parse([]string{"mem.yaml"}, map[string][]byte{"mem.yaml": ruleYAML(fields)})
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", ruleYAML(fields), err)
	}
	return set.Rules()[0]
}

// TestConditions compiles conditions as an SRE writes them, checks the
// aggregates the engine must compute, and runs the program with those
// aggregates bound, both ways round.
func TestConditions(t *testing.T) {
	type agg struct {
		text          string
		metric        string
		series, cross Reducer
		q             float64
	}
	tests := []struct {
		cond   string
		aggs   []agg
		labels map[string]string
		// vals bind the aggregates by text; want is the condition's result.
		evals []struct {
			vals map[string]float64
			want bool
		}
	}{
		{
			cond:  `max("x") == 0`,
			aggs:  []agg{{`max("x")`, "x", Max, Pool, 0}},
			evals: evals(vals{`max("x")`: 0}, true, vals{`max("x")`: 1}, false),
		},
		{
			cond:  `max("x") != 0`,
			aggs:  []agg{{`max("x")`, "x", Max, Pool, 0}},
			evals: evals(vals{`max("x")`: 0.5}, true, vals{`max("x")`: 0}, false),
		},
		{
			cond:  `min("x") > 100`,
			aggs:  []agg{{`min("x")`, "x", Min, Pool, 0}},
			evals: evals(vals{`min("x")`: 100.5}, true, vals{`min("x")`: 100}, false),
		},
		{
			cond:  `avg("x") >= 0.5`,
			aggs:  []agg{{`avg("x")`, "x", Avg, Pool, 0}},
			evals: evals(vals{`avg("x")`: 0.5}, true, vals{`avg("x")`: 0.49}, false),
		},
		{
			cond:  `avg("x") * 100 > 5`,
			aggs:  []agg{{`avg("x")`, "x", Avg, Pool, 0}},
			evals: evals(vals{`avg("x")`: 0.06}, true, vals{`avg("x")`: 0.04}, false),
		},
		{
			cond: `last("a") / last("b") > 0.8`,
			aggs: []agg{{`last("a")`, "a", Last, Pool, 0}, {`last("b")`, "b", Last, Pool, 0}},
			evals: evals(vals{`last("a")`: 9, `last("b")`: 10}, true,
				vals{`last("a")`: 7, `last("b")`: 10}, false),
		},
		{
			cond:   `labels["host.mac"] == "x" && max("up") == 0`,
			aggs:   []agg{{`max("up")`, "up", Max, Pool, 0}},
			labels: map[string]string{"host.mac": "x"},
			evals:  evals(vals{`max("up")`: 0}, true, vals{`max("up")`: 1}, false),
		},
		{
			cond:   `labels["host.mac"] == "x" && max("up") == 0`,
			aggs:   []agg{{`max("up")`, "up", Max, Pool, 0}},
			labels: map[string]string{"host.mac": "y"},
			evals:  evals(vals{`max("up")`: 0}, false),
		},
		{
			cond:  `avg(rate("x")) > 100`,
			aggs:  []agg{{`avg(rate("x"))`, "x", Rate, Avg, 0}},
			evals: evals(vals{`avg(rate("x"))`: 101}, true, vals{`avg(rate("x"))`: 100}, false),
		},
		{
			cond:  `rate("x") > 1`,
			aggs:  []agg{{`rate("x")`, "x", Rate, Sum, 0}},
			evals: evals(vals{`rate("x")`: 2}, true),
		},
		{
			cond:  `count(last("x")) < 3`,
			aggs:  []agg{{`count(last("x"))`, "x", Last, Count, 0}},
			evals: evals(vals{`count(last("x"))`: 2}, true, vals{`count(last("x"))`: 3}, false),
		},
		{
			// Integer arithmetic beside an aggregate reads as written.
			cond: `sum(last("up")) < (count(last("up")) + 1) / 2`,
			aggs: []agg{{`sum(last("up"))`, "up", Last, Sum, 0}, {`count(last("up"))`, "up", Last, Count, 0}},
			evals: evals(vals{`sum(last("up"))`: 1, `count(last("up"))`: 3}, true,
				vals{`sum(last("up"))`: 2, `count(last("up"))`: 3}, false),
		},
		{
			cond:  `percentile("lat", 0.99) > 0.1`,
			aggs:  []agg{{`percentile("lat", 0.99)`, "lat", Percentile, Pool, 0.99}},
			evals: evals(vals{`percentile("lat", 0.99)`: 0.2}, true),
		},
		{
			// A rank above 1 is a percentage.
			cond:  `percentile("lat", 99) > 0.1`,
			aggs:  []agg{{`percentile("lat", 0.99)`, "lat", Percentile, Pool, 0.99}},
			evals: evals(vals{`percentile("lat", 0.99)`: 0.05}, false),
		},
		{
			cond:  `stddev("lat") > 0.05`,
			aggs:  []agg{{`stddev("lat")`, "lat", Stddev, Pool, 0}},
			evals: evals(vals{`stddev("lat")`: 0.06}, true),
		},
		{
			// A repeated aggregate is computed once.
			cond:  `max("a") == 0 || max("a") > 10 && min("b") > 1`,
			aggs:  []agg{{`max("a")`, "a", Max, Pool, 0}, {`min("b")`, "b", Min, Pool, 0}},
			evals: evals(vals{`max("a")`: 11, `min("b")`: 2}, true, vals{`max("a")`: 5, `min("b")`: 2}, false),
		},
		{
			cond: "max(\"x\") == 0 &&\n  min(\"y\") > 1",
			aggs: []agg{{`max("x")`, "x", Max, Pool, 0}, {`min("y")`, "y", Min, Pool, 0}},
			evals: evals(vals{`max("x")`: 0, `min("y")`: 2}, true,
				vals{`max("x")`: 0, `min("y")`: 1}, false),
		},
	}
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			cond := tc.cond
			if strings.Contains(cond, "\n") {
				cond = "|\n  " + strings.ReplaceAll(cond, "\n", "\n  ")
			} else {
				cond = "'" + cond + "'"
			}
			r := parseOne(t, "name: R\nseverity: high\ncondition: "+cond)
			if got := strings.TrimSpace(r.Condition.Source); got != tc.cond {
				t.Errorf("Source = %q, want %q", got, tc.cond)
			}
			var got []agg
			for _, a := range r.Condition.Aggregates {
				got = append(got, agg{a.Text, a.Metric, a.Series, a.Across, a.Q})
			}
			if !slices.Equal(got, tc.aggs) {
				t.Fatalf("aggregates\n got %+v\nwant %+v", got, tc.aggs)
			}
			if r.Condition.UsesLabels != (tc.labels != nil) {
				t.Errorf("UsesLabels = %v", r.Condition.UsesLabels)
			}
			for _, ev := range tc.evals {
				act := map[string]any{}
				if tc.labels != nil {
					act["labels"] = tc.labels
				}
				for _, a := range r.Condition.Aggregates {
					v, ok := ev.vals[a.Text]
					if !ok {
						t.Fatalf("no value for %s", a.Text)
					}
					act[a.Var] = v
				}
				out, _, err := r.Condition.Program.Eval(act)
				if err != nil {
					t.Fatalf("Eval(%v): %v", ev.vals, err)
				}
				if out.Value() != ev.want {
					t.Errorf("with %v: %v, want %v", ev.vals, out.Value(), ev.want)
				}
			}
		})
	}
}

type vals map[string]float64

// evals pairs bindings with the expected result: evals(v1, true, v2, false).
func evals(pairs ...any) []struct {
	vals map[string]float64
	want bool
} {
	var out []struct {
		vals map[string]float64
		want bool
	}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, struct {
			vals map[string]float64
			want bool
		}{pairs[i].(vals), pairs[i+1].(bool)})
	}
	return out
}

// TestStateKey: only what decides alerts changes the key.
func TestStateKey(t *testing.T) {
	base := "name: R\nseverity: high\ncondition: max(\"x\") == 0\nfor: 5m\n"
	key := parseOne(t, base).StateKey
	tests := []struct {
		name    string
		fields  string
		changed bool
	}{
		{"same", base, false},
		{"annotations", base + "annotations: {summary: hello}", false},
		{"labels", base + "labels: {team: a}", false},
		{"severity", strings.Replace(base, "high", "low", 1), false},
		{"notify", base + "notify: [x]", false},
		{"condition", strings.Replace(base, "== 0", "== 1", 1), true},
		{"for", strings.Replace(base, "5m", "6m", 1), true},
		{"window", base + "window: 2m", true},
		{"scope", base + `scope: labels["a"] == "b"`, true},
		{"segment_by", base + "segment_by: [host]", true},
		{"across", base + "across: every", true},
		{"trigger", base + "trigger: at_least_once", true},
		{"keep_firing_for", base + "keep_firing_for: 1m", true},
		{"no_data", base + "no_data: alerting", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseOne(t, tc.fields).StateKey
			if (got != key) != tc.changed {
				t.Errorf("StateKey changed = %v, want %v", got != key, tc.changed)
			}
		})
	}
}

// TestFiles lays out a rule directory as a Kubernetes ConfigMap mount does:
// files are symlinks through a hidden ..data link to a hidden timestamped
// directory. Rule tests, hidden entries and other files are skipped.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, rel)); err != nil {
			t.Skipf("symlinks: %v", err)
		}
	}
	one := func(name string) string {
		return "groups:\n  - name: " + name + "\n    rules:\n      - name: " + name + "\n        severity: low\n        condition: max(\"x\") == 0\n"
	}
	write("..2026_01_01_00_00_00.1/etcd.yaml", one("Etcd"))
	write("..2026_01_01_00_00_00.1/etcd_test.yaml", "not: rules")
	link("..2026_01_01_00_00_00.1", "..data")
	link("..data/etcd.yaml", "etcd.yaml")
	link("..data/etcd_test.yaml", "etcd_test.yaml")
	link("nowhere.yaml", "dangling.yaml")
	write("sub/more.yml", one("More"))
	write("sub/more_test.yml", "not: rules")
	write(".hidden.yaml", "not: rules")
	write(".git/config.yaml", "not: rules")
	write("README.md", "# rules")
	write("notes.txt", "x")

	got, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "etcd.yaml"), filepath.Join(dir, "sub/more.yml")}
	if !slices.Equal(got, want) {
		t.Errorf("Files(dir)\n got %q\nwant %q", got, want)
	}

	set, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(dir): %v", err)
	}
	var names []string
	for _, r := range set.Rules() {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"Etcd", "More"}) {
		t.Errorf("rules %v, want [Etcd More] (through the symlink)", names)
	}

	// A file named on the command line is taken as given, and only once.
	got, err = Files(filepath.Join(dir, "sub/more.yml"), filepath.Join(dir, "sub/more.yml"))
	if err != nil || len(got) != 1 {
		t.Errorf("Files(file, file) = %q, %v; want the file once", got, err)
	}
	if _, err := Files(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Files(missing) gave no error")
	}
}

func TestIsRuleFile(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"etcd.yaml", true},
		{"etcd.yml", true},
		{"dir/etcd.yaml", true},
		{"etcd_test.yaml", false},
		{"etcd_test.yml", false},
		{"test.yaml", true},
		{"..data", false},
		{".etcd.yaml", false},
		{"etcd.yaml.bak", false},
		{"etcd.json", false},
		{"etcd.yaml~", false},
	}
	for _, tc := range tests {
		if got := IsRuleFile(tc.path); got != tc.want {
			t.Errorf("IsRuleFile(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestExpand renders annotations; a run-time template error still yields
// the annotation, carrying the error.
func TestExpand(t *testing.T) {
	r := parseOne(t, `name: R
severity: high
condition: max("x") == 0
annotations:
  summary: '{{ label "host.mac" }} at {{ value }} ({{ .Severity }})'
  pct: '{{ value | humanizePercentage }}'
  big: '{{ 1234567.0 | humanize }}'
  broken: '{{ .Labels.x.y }}'
  missing: '[{{ label "nope" }}]'`)
	got := r.Expand(&TemplateData{Rule: "R", Severity: "high", Labels: model.Labels{"host.mac": "aa"}, Value: 0.25})
	want := map[string]string{
		"summary": "aa at 0.25 (high)",
		"pct":     "25%",
		"big":     "1.235M",
		"missing": "[]",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, got[k], v)
		}
	}
	if b := got["broken"]; !strings.Contains(b, "template error") || !strings.Contains(b, `"broken"`) {
		t.Errorf("annotation broken = %q, want the template error", b)
	}
}
