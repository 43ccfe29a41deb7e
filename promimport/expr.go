package promimport

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// lookback is how far back Prometheus looks for an instant selector's
// sample (its default --query.lookback-delta); an instant selector becomes
// last("m") over at least this window.
const lookback = 5 * time.Minute

// unsupported is why an expression cannot be written in Vigil's language.
type unsupported struct{ reason string }

func (u *unsupported) Error() string { return u.reason }

func fail(format string, a ...any) { panic(&unsupported{fmt.Sprintf(format, a...)}) }

// kind is what a translated sub-expression is in Vigil's terms.
type kind int

const (
	kScalar kind = iota // a number, known when the rule is loaded
	kValue              // a number computed from aggregates
	kBool               // a condition (a Prometheus filter)
)

// grouping is the label set a value is per: the rule's segment_by.
type grouping struct {
	series bool     // per series, as Prometheus' unaggregated vectors
	by     []string // Prometheus label names, sorted
	// without is set when `without` gave the list: by is then derived.
	without []string
}

func (g grouping) key() string {
	if g.series {
		return "series"
	}
	return strings.Join(g.by, ",")
}

func (g grouping) describe() string {
	switch {
	case g.series:
		return "each series"
	case g.without != nil:
		return "without (" + strings.Join(g.without, ", ") + ")"
	}
	return "by (" + strings.Join(g.by, ", ") + ")"
}

// val is one translated sub-expression.
type val struct {
	cel   string
	kind  kind
	num   float64   // for kScalar
	group *grouping // nil for scalars
}

// selector is one metric a rule reads and the matchers it reads it with.
type selector struct {
	metric   string // Vigil's name
	matchers []*labels.Matcher
}

func (s selector) key() string {
	var parts []string
	for _, m := range s.matchers {
		parts = append(parts, m.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// translator turns one rule's PromQL into a condition, collecting what the
// rule's other fields need.
type translator struct {
	opts      *Options
	selectors []selector
	window    time.Duration // the range of range selectors; 0 if none
	notes     []string
	identity  []string // labels an unaggregated series is told apart by
}

func (t *translator) note(format string, a ...any) {
	n := fmt.Sprintf(format, a...)
	if !slices.Contains(t.notes, n) {
		t.notes = append(t.notes, n)
	}
}

// condition translates expr; the panic of fail is turned into an error.
func (t *translator) condition(expr parser.Expr) (v val, err error) {
	defer func() {
		if r := recover(); r != nil {
			u, ok := r.(*unsupported)
			if !ok {
				panic(r)
			}
			err = u
		}
	}()
	v = t.boolean(expr)
	return v, nil
}

// boolean translates the condition layer: comparisons and and/or/unless.
func (t *translator) boolean(e parser.Expr) val {
	switch n := e.(type) {
	case *parser.ParenExpr:
		v := t.boolean(n.Expr)
		v.cel = "(" + v.cel + ")"
		return v
	case *parser.BinaryExpr:
		switch n.Op {
		case parser.LAND, parser.LOR, parser.LUNLESS:
			return t.setOp(n)
		}
		if n.Op.IsComparisonOperator() {
			return t.compare(n)
		}
	}
	v := t.value(e)
	if v.kind == kScalar {
		fail("the expression is a constant, not a condition over series")
	}
	fail("%s is a value, not a condition: Prometheus alerts on every series it returns, Vigil needs a comparison (add one, such as > 0)", shorten(e))
	return val{}
}

func (t *translator) setOp(n *parser.BinaryExpr) val {
	if n.Op == parser.LOR {
		// `X or 0*absent(X)` and `X or vector(0)` only fill in a zero
		// where X has no series; a threshold on it alerts the same
		// without the zero, and Vigil treats no series as no data.
		if fillsZero(n.RHS) {
			t.note("%q dropped: it only gives a 0 where there is no series, and Vigil treats no series as no data (no_data: ok)", shorten(n.RHS))
			return t.boolean(n.LHS)
		}
	}
	if vm := n.VectorMatching; vm != nil && (len(vm.MatchingLabels) > 0 || vm.On) {
		fail("%s with on(...) or ignoring(...) is not expressible: both sides of a Vigil condition are the same segment", n.Op)
	}
	l, r := t.boolean(n.LHS), t.boolean(n.RHS)
	t.sameGroup(l, r, n.Op.String())
	out := val{kind: kBool, group: firstGroup(l, r)}
	switch n.Op {
	case parser.LAND:
		out.cel = l.cel + " && " + r.cel
	case parser.LOR:
		out.cel = l.cel + " || " + r.cel
	default:
		out.cel = l.cel + " && !(" + r.cel + ")"
		t.note("unless: while the right side's metric has no samples Vigil has no data, so the alert does not fire where Prometheus' would")
	}
	return out
}

// fillsZero recognises `0*absent(...)`, `absent(...)*0` and `vector(0)`.
func fillsZero(e parser.Expr) bool {
	e = unparen(e)
	if c, ok := e.(*parser.Call); ok {
		if c.Func.Name == "vector" && len(c.Args) == 1 {
			if nl, ok := unparen(c.Args[0]).(*parser.NumberLiteral); ok && nl.Val == 0 {
				return true
			}
		}
		return false
	}
	b, ok := e.(*parser.BinaryExpr)
	if !ok || b.Op != parser.MUL {
		return false
	}
	isZero := func(x parser.Expr) bool {
		nl, ok := unparen(x).(*parser.NumberLiteral)
		return ok && nl.Val == 0
	}
	isAbsent := func(x parser.Expr) bool {
		c, ok := unparen(x).(*parser.Call)
		return ok && c.Func.Name == "absent"
	}
	return (isZero(b.LHS) && isAbsent(b.RHS)) || (isAbsent(b.LHS) && isZero(b.RHS))
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

var celCompare = map[parser.ItemType]string{
	parser.EQLC: "==", parser.NEQ: "!=", parser.GTR: ">", parser.LSS: "<", parser.GTE: ">=", parser.LTE: "<=",
}

func (t *translator) compare(n *parser.BinaryExpr) val {
	if n.ReturnBool {
		fail("%s bool turns a comparison into 0 or 1 per series; Vigil compares aggregates, it cannot count or sum comparisons", n.Op)
	}
	if vm := n.VectorMatching; vm != nil && (len(vm.MatchingLabels) > 0 || vm.On || vm.Card != parser.CardOneToOne) {
		fail("a comparison with on(...), ignoring(...) or group_left/right is not expressible: both sides of a Vigil condition are the same segment")
	}
	l, r := t.value(n.LHS), t.value(n.RHS)
	if l.kind == kScalar && r.kind == kScalar {
		fail("the comparison %s compares two constants", shorten(n))
	}
	t.sameGroup(l, r, n.Op.String())
	return val{kind: kBool, cel: l.cel + " " + celCompare[n.Op] + " " + r.cel, group: firstGroup(l, r)}
}

func firstGroup(l, r val) *grouping {
	if l.group != nil {
		return l.group
	}
	return r.group
}

// sameGroup fails when two sides are per different label sets: a Vigil
// condition is evaluated per segment, with one segment_by.
func (t *translator) sameGroup(l, r val, op string) {
	if l.group == nil || r.group == nil {
		return
	}
	if l.group.key() != r.group.key() {
		fail("the two sides of %s are grouped differently (%s and %s); a Vigil condition has one segment_by", op, l.group.describe(), r.group.describe())
	}
}

var celArith = map[parser.ItemType]string{
	parser.ADD: "+", parser.SUB: "-", parser.MUL: "*", parser.DIV: "/",
}

// value translates the numeric layer: aggregates, arithmetic, numbers.
func (t *translator) value(e parser.Expr) val {
	switch n := e.(type) {
	case *parser.NumberLiteral:
		return scalar(n.Val)
	case *parser.ParenExpr:
		v := t.value(n.Expr)
		if v.kind != kScalar {
			v.cel = "(" + v.cel + ")"
		}
		return v
	case *parser.UnaryExpr:
		v := t.value(n.Expr)
		if n.Op == parser.SUB {
			if v.kind == kScalar {
				return scalar(-v.num)
			}
			v.cel = "-" + v.cel
		}
		return v
	case *parser.BinaryExpr:
		return t.arith(n)
	case *parser.VectorSelector:
		sel := t.selector(n)
		return val{kind: kValue, cel: fmt.Sprintf("last(%q)", sel), group: t.seriesGroup()}
	case *parser.MatrixSelector:
		fail("a range vector (%s) is only meaningful inside a function such as rate() or avg_over_time()", shorten(n))
	case *parser.Call:
		return t.call(n)
	case *parser.AggregateExpr:
		return t.aggregate(n)
	case *parser.SubqueryExpr:
		fail("a subquery (%s) is only translated inside rate, increase, delta, deriv, changes or resets", shorten(n))
	case *parser.StringLiteral:
		fail("a string literal is not a value")
	}
	fail("%s is not expressible in Vigil", shorten(e))
	return val{}
}

func scalar(f float64) val {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		fail("NaN and Inf have no literal in Vigil conditions")
	}
	return val{kind: kScalar, num: f, cel: formatNumber(f)}
}

// formatNumber writes a number as a CEL literal Vigil reads as written.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func (t *translator) arith(n *parser.BinaryExpr) val {
	if n.Op.IsComparisonOperator() {
		fail("a comparison inside arithmetic (%s) filters series before computing; Vigil compares only at the condition's top level", shorten(n))
	}
	op, ok := celArith[n.Op]
	if !ok {
		fail("the operator %s is not available in Vigil conditions (only + - * / and comparisons, joined with and/or/unless)", n.Op)
	}
	if vm := n.VectorMatching; vm != nil && (len(vm.MatchingLabels) > 0 || vm.On || vm.Card != parser.CardOneToOne) {
		fail("arithmetic with on(...), ignoring(...) or group_left/right is not expressible: both sides of a Vigil condition are the same segment")
	}
	l, r := t.value(n.LHS), t.value(n.RHS)
	if l.kind == kScalar && r.kind == kScalar {
		// Fold constants: CEL would divide integers as integers.
		var f float64
		switch n.Op {
		case parser.ADD:
			f = l.num + r.num
		case parser.SUB:
			f = l.num - r.num
		case parser.MUL:
			f = l.num * r.num
		case parser.DIV:
			f = l.num / r.num
		}
		return scalar(f)
	}
	t.sameGroup(l, r, n.Op.String())
	return val{kind: kValue, cel: l.cel + " " + op + " " + r.cel, group: firstGroup(l, r)}
}

// overTime maps Prometheus' functions over a range to Vigil's per-series
// aggregates.
var overTime = map[string]string{
	"avg_over_time":    "avg",
	"min_over_time":    "min",
	"max_over_time":    "max",
	"sum_over_time":    "sum",
	"count_over_time":  "count",
	"last_over_time":   "last",
	"stddev_over_time": "stddev",
	"rate":             "rate",
	"increase":         "increase",
	"deriv":            "deriv",
	"delta":            "delta",
	"changes":          "changes",
	"resets":           "resets",
}

// acrossFirst lists the functions Vigil applies over time to a value
// aggregated across series at each step: increase(max("m")).
var acrossFirst = map[string]bool{
	"rate": true, "increase": true, "deriv": true, "delta": true, "changes": true, "resets": true,
}

var whyNot = map[string]string{
	"histogram_quantile": "Vigil's percentile works on raw samples, not on histogram buckets",
	"absent":             "Vigil cannot alert on a series it has never seen; for a series that stops, use a rule over the metric with no_data: alerting",
	"absent_over_time":   "Vigil cannot alert on a series it has never seen; for a series that stops, use a rule over the metric with no_data: alerting",
	"irate":              "Vigil has no instant rate over the last two samples; rate() over the window is the nearest",
	"idelta":             "Vigil has no delta over the last two samples; delta() over the window is the nearest",
	"time":               "Vigil conditions cannot read the evaluation time",
	"timestamp":          "Vigil conditions cannot read sample timestamps",
	"label_replace":      "Vigil conditions cannot rewrite labels",
	"label_join":         "Vigil conditions cannot rewrite labels",
	"vector":             "Vigil has no constant series",
	"scalar":             "Vigil has no conversion of a series to a number",
}

func (t *translator) call(n *parser.Call) val {
	name := n.Func.Name
	if f, ok := overTime[name]; ok {
		arg := unparen(n.Args[0])
		if sq, ok := arg.(*parser.SubqueryExpr); ok {
			return t.subquery(name, sq)
		}
		sel := t.rangeSelector(arg, name)
		if name == "rate" || name == "increase" {
			t.note("%s: Vigil's %s does not extrapolate to the window's edges, so it reads a little lower than Prometheus'", name, name)
		}
		return val{kind: kValue, cel: fmt.Sprintf("%s(%q)", f, sel), group: t.seriesGroup()}
	}
	switch name {
	case "quantile_over_time":
		phi := t.value(n.Args[0])
		if phi.kind != kScalar || phi.num < 0 || phi.num > 1 {
			fail("quantile_over_time needs a constant φ between 0 and 1")
		}
		sel := t.rangeSelector(unparen(n.Args[1]), name)
		// Vigil's percentile interpolates between closest ranks at
		// φ·(n−1), exactly as Prometheus' quantile_over_time.
		return val{kind: kValue, cel: fmt.Sprintf("percentile(%q, %s)", sel, formatNumber(phi.num)), group: t.seriesGroup()}
	case "predict_linear":
		sel := t.rangeSelector(unparen(n.Args[0]), name)
		secs := t.value(n.Args[1])
		if secs.kind != kScalar {
			fail("predict_linear needs a constant number of seconds")
		}
		return val{kind: kValue, cel: fmt.Sprintf("predict_linear(%q, %s)", sel, formatNumber(secs.num)), group: t.seriesGroup()}
	}
	if why, ok := whyNot[name]; ok {
		fail("%s(): %s", name, why)
	}
	fail("%s() has no Vigil equivalent", name)
	return val{}
}

// subquery translates f((agg(selector))[range:step]) to the across-first
// form f(agg("m")).
func (t *translator) subquery(fn string, sq *parser.SubqueryExpr) val {
	if !acrossFirst[fn] {
		fail("%s over a subquery is not expressible: Vigil applies only rate, increase, deriv, delta, changes and resets to a value aggregated across series", fn)
	}
	if sq.OriginalOffset != 0 || sq.OriginalOffsetExpr != nil || sq.Timestamp != nil || sq.StartOrEnd != 0 {
		fail("offset and @ are not expressible: Vigil always evaluates at the current time")
	}
	inner := unparen(sq.Expr)
	if b, ok := inner.(*parser.BinaryExpr); ok && b.Op == parser.LOR && fillsZero(b.RHS) {
		t.note("%q dropped: it only gives a 0 where there is no series, and Vigil treats no series as no data (no_data: ok)", shorten(b.RHS))
		inner = unparen(b.LHS)
	}
	agg, ok := inner.(*parser.AggregateExpr)
	if !ok {
		fail("%s over a subquery is translated only for an aggregation of one metric, like %s(max(m)[15m:1m])", fn, fn)
	}
	across, ok := acrossAggs[agg.Op]
	if !ok || agg.Param != nil {
		fail("%s across series is not expressible inside %s()", agg.Op, fn)
	}
	vs, ok := unparen(agg.Expr).(*parser.VectorSelector)
	if !ok {
		fail("%s over a subquery is translated only for an aggregation of one metric, like %s(max(m)[15m:1m])", fn, fn)
	}
	t.setWindow(sq.Range, fn)
	if sq.Step != 0 {
		t.note("subquery step %s not kept: Vigil aggregates across series at each sample time", durationString(sq.Step))
	}
	sel := t.selector(vs)
	g := t.groupOf(agg)
	return val{kind: kValue, cel: fmt.Sprintf("%s(%s(%q))", fn, across, sel), group: &g}
}

var acrossAggs = map[parser.ItemType]string{
	parser.SUM: "sum", parser.MIN: "min", parser.MAX: "max", parser.AVG: "avg", parser.COUNT: "count", parser.STDDEV: "stddev",
}

func (t *translator) aggregate(n *parser.AggregateExpr) val {
	across, ok := acrossAggs[n.Op]
	if !ok || n.Param != nil {
		fail("%s() across series has no Vigil equivalent (Vigil combines series with avg, min, max, sum, count and stddev)", n.Op)
	}
	inner := unparen(n.Expr)
	var per string
	switch x := inner.(type) {
	case *parser.VectorSelector:
		per = fmt.Sprintf("last(%q)", t.selector(x))
	case *parser.Call:
		v := t.call(x)
		if v.group != nil && !v.group.series {
			fail("%s() of a value already aggregated across series is not expressible", n.Op)
		}
		per = v.cel
	case *parser.BinaryExpr:
		if n.Op == parser.SUM && t.upIsOne(x) {
			// up is 1 or 0, so summing "up == 1" sums up.
			t.note("sum(up == bool 1) written as the sum of up, which is 1 or 0")
			per = fmt.Sprintf("last(%q)", t.selector(unparen(x.LHS).(*parser.VectorSelector)))
			break
		}
		if x.Op.IsComparisonOperator() {
			fail("%s() of a comparison (%s) is not expressible: Vigil compares aggregates, it cannot count or sum comparisons", n.Op, shorten(x))
		}
		fail("%s() of arithmetic (%s) is not expressible: Vigil aggregates one metric at a time", n.Op, shorten(x))
	case *parser.AggregateExpr:
		fail("an aggregation of an aggregation (%s of %s) is not expressible", n.Op, x.Op)
	default:
		fail("%s() of %s is not expressible", n.Op, shorten(x))
	}
	g := t.groupOf(n)
	return val{kind: kValue, cel: across + "(" + per + ")", group: &g}
}

// upIsOne recognises `up == bool 1`.
func (t *translator) upIsOne(b *parser.BinaryExpr) bool {
	vs, ok := unparen(b.LHS).(*parser.VectorSelector)
	nl, ok2 := unparen(b.RHS).(*parser.NumberLiteral)
	return ok && ok2 && b.Op == parser.EQLC && b.ReturnBool && vs.Name == "up" && nl.Val == 1
}

// groupOf is the label set an aggregation keeps.
func (t *translator) groupOf(n *parser.AggregateExpr) grouping {
	if !n.Without {
		by := slices.Clone(n.Grouping)
		sort.Strings(by)
		return grouping{by: by}
	}
	var by []string
	for _, l := range t.identity {
		if !slices.Contains(n.Grouping, l) {
			by = append(by, l)
		}
	}
	sort.Strings(by)
	w := slices.Clone(n.Grouping)
	sort.Strings(w)
	t.note("without (%s): Vigil segments by a list of labels; this rule keeps %s, the labels a series is told apart by (%s) minus the ones removed",
		strings.Join(w, ", "), listOrNone(by), strings.Join(t.identity, ", "))
	return grouping{by: by, without: w}
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none (one segment)"
	}
	return "[" + strings.Join(l, ", ") + "]"
}

func (t *translator) seriesGroup() *grouping {
	return &grouping{series: true, by: slices.Clone(t.identity)}
}

func (t *translator) rangeSelector(e parser.Expr, fn string) string {
	ms, ok := e.(*parser.MatrixSelector)
	if !ok {
		fail("%s() is translated only for a metric over a range, like %s(m[5m])", fn, fn)
	}
	if ms.RangeExpr != nil {
		fail("a computed range is not expressible")
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok {
		fail("%s() is translated only for a metric over a range", fn)
	}
	t.setWindow(ms.Range, fn)
	return t.selector(vs)
}

func (t *translator) setWindow(d time.Duration, fn string) {
	if t.window != 0 && t.window != d {
		fail("ranges %s and %s in one rule: a Vigil rule has one window", durationString(t.window), durationString(d))
	}
	t.window = d
}

// selector records a metric and its matchers; it returns Vigil's name.
func (t *translator) selector(vs *parser.VectorSelector) string {
	if vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 {
		fail("offset and @ are not expressible: Vigil always evaluates at the current time")
	}
	name := vs.Name
	var ms []*labels.Matcher
	for _, m := range vs.LabelMatchers {
		if m.Name == pmodel.MetricNameLabel {
			if m.Type != labels.MatchEqual {
				fail("a metric name chosen by a regular expression (%s) is not expressible: Vigil names each metric", m)
			}
			name = m.Value
			continue
		}
		ms = append(ms, m)
	}
	if name == "" {
		fail("a selector without a metric name is not expressible")
	}
	vname := t.opts.metric(name)
	sel := selector{metric: vname, matchers: ms}
	for _, s := range t.selectors {
		if s.metric == vname && s.key() != sel.key() {
			fail("%s is selected with different matchers in one rule; Vigil's aggregates take every series of a metric in the rule's scope", name)
		}
	}
	if !slices.ContainsFunc(t.selectors, func(s selector) bool { return s.metric == vname }) {
		t.selectors = append(t.selectors, sel)
	}
	return vname
}

// scope is the CEL scope selecting every selector's series, or "".
func (t *translator) scope() string {
	if len(t.selectors) == 0 {
		return ""
	}
	same := true
	for _, s := range t.selectors[1:] {
		if s.key() != t.selectors[0].key() {
			same = false
		}
	}
	if same {
		return t.matchers(t.selectors[0].matchers)
	}
	var parts []string
	for _, s := range t.selectors {
		c := fmt.Sprintf("metric == %q", s.metric)
		if m := t.matchers(s.matchers); m != "" {
			c = "(" + c + " && " + m + ")"
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, " || ")
}

func (t *translator) matchers(ms []*labels.Matcher) string {
	var parts []string
	for _, m := range ms {
		l := t.opts.label(m.Name)
		var c string
		switch m.Type {
		case labels.MatchEqual:
			c = fmt.Sprintf("labels[%q] == %q", l, m.Value)
		case labels.MatchNotEqual:
			c = fmt.Sprintf("labels[%q] != %q", l, m.Value)
		case labels.MatchRegexp:
			c = fmt.Sprintf("labels[%q].matches(%q)", l, "^(?:"+m.Value+")$")
		case labels.MatchNotRegexp:
			c = fmt.Sprintf("!labels[%q].matches(%q)", l, "^(?:"+m.Value+")$")
		}
		// Prometheus reads a missing label as "": a matcher that accepts
		// "" accepts series without the label, which Vigil must say.
		if m.Matches("") {
			if m.Type == labels.MatchEqual {
				c = fmt.Sprintf("!(%q in labels) || labels[%q] == \"\"", l, l)
			} else {
				c = fmt.Sprintf("!(%q in labels) || %s", l, c)
			}
			if len(ms) > 1 {
				c = "(" + c + ")"
			}
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, " && ")
}

// shorten is an expression's text for messages, cut to a readable length.
func shorten(n parser.Node) string {
	s := strings.Join(strings.Fields(n.String()), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func durationString(d time.Duration) string {
	return modelDuration(d)
}
