package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTimeAggregates checks how the time-only aggregates and the
// across-first form read: which reducer runs first, the step they get from
// the group, and the text templates and caches know them by.
func TestTimeAggregates(t *testing.T) {
	tests := []struct {
		cond   string
		text   string
		series Reducer
		across Reducer
		first  bool
		q      float64
	}{
		{`increase(max("etcd.leader.changes")) >= 4`, `increase(max("etcd.leader.changes"))`, Increase, Max, true, 0},
		{`rate(sum("m")) > 1`, `rate(sum("m"))`, Rate, Sum, true, 0},
		{`last(count("up")) < 3`, `last(count("up"))`, Last, Count, true, 0},
		{`predict_linear(avg("db"), 14400) > 1e9`, `predict_linear(avg("db"), 14400)`, PredictLinear, Avg, true, 14400},
		{`quantile(min("lat"), 0.9) > 1`, `quantile(min("lat"), 0.9)`, Quantile, Min, true, 0.9},
		{`changes(count("up")) > 1`, `changes(count("up"))`, Changes, Count, true, 0},
		// The other order keeps its meaning: per series, then across.
		{`max(increase("etcd.leader.changes")) >= 4`, `max(increase("etcd.leader.changes"))`, Increase, Max, false, 0},
		{`max(quantile("lat", 0.9)) > 1`, `max(quantile("lat", 0.9))`, Quantile, Max, false, 0.9},
		{`count(deriv("db")) > 1`, `count(deriv("db"))`, Deriv, Count, false, 0},
		// Shorthand: time-only functions of one series' shape add up;
		// quantile pools the samples as percentile does.
		{`deriv("db") > 1`, `deriv("db")`, Deriv, Sum, false, 0},
		{`predict_linear("db", -60) > 1`, `predict_linear("db", -60)`, PredictLinear, Sum, false, -60},
		{`delta("db") < 0`, `delta("db")`, Delta, Sum, false, 0},
		{`resets("c") > 0`, `resets("c")`, Resets, Sum, false, 0},
		{`changes("c") > 0`, `changes("c")`, Changes, Sum, false, 0},
		{`quantile("lat", 0.5) > 0`, `quantile("lat", 0.5)`, Quantile, Pool, false, 0.5},
		{`sum(delta("db")) < 0`, `delta("db")`, Delta, Sum, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			src := fmt.Sprintf("groups:\n  - name: g\n    interval: 30s\n    rules:\n      - name: R\n        severity: high\n        condition: '%s'\n", tc.cond)
			set, err := Parse([]string{"r.yaml"}, map[string][]byte{"r.yaml": []byte(src)})
			if err != nil {
				t.Fatal(err)
			}
			as := set.Rules()[0].Condition.Aggregates
			if len(as) != 1 {
				t.Fatalf("%d aggregates, want 1", len(as))
			}
			a := as[0]
			if a.Text != tc.text || a.Series != tc.series || a.Across != tc.across || a.AcrossFirst != tc.first || a.Q != tc.q {
				t.Errorf("got %s: %s then %s, across first %v, q %g; want %s: %s then %s, across first %v, q %g",
					a.Text, a.Series, a.Across, a.AcrossFirst, a.Q, tc.text, tc.series, tc.across, tc.first, tc.q)
			}
			if want := map[bool]time.Duration{true: 30 * time.Second}[tc.first]; a.Step != want {
				t.Errorf("step %v, want %v (the group's interval)", a.Step, want)
			}
		})
	}
}

// TestTimeAggregatesCost: the new aggregates become variables before CEL
// sees the condition, as the others do, so the aggregate limit and the
// cost estimate treat them alike.
func TestTimeAggregatesCost(t *testing.T) {
	forms := []string{`increase(max("m%d"))`, `predict_linear("m%d", 60)`, `quantile(min("m%d"), 0.5)`, `deriv("m%d")`}
	var parts []string
	for i := range maxAggregates {
		parts = append(parts, fmt.Sprintf(forms[i%len(forms)], i)+" > 1")
	}
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := c.compileCondition(strings.Join(parts, " || ")); errs != nil {
		t.Fatalf("%d aggregates: %v", maxAggregates, errs)
	}
	parts = append(parts, `changes(count("one_more")) > 1`)
	_, errs := c.compileCondition(strings.Join(parts, " || "))
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "at most 64 aggregates") {
		t.Fatalf("65 aggregates: %v", errs)
	}
}
