package rules

import (
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// CostLimit bounds one evaluation of a scope or condition. Conditions are
// small once aggregates are precomputed; the bound stops a pathological
// expression over labels from stalling evaluation.
const CostLimit = 10_000

// maxAggregates bounds the aggregates one condition may use.
const maxAggregates = 64

var (
	seriesReducers = map[Reducer]bool{Avg: true, Min: true, Max: true, Sum: true, Count: true,
		Last: true, Rate: true, Increase: true, Stddev: true, Percentile: true,
		Delta: true, Deriv: true, PredictLinear: true, Changes: true, Resets: true, Quantile: true}
	acrossReducers = map[Reducer]bool{Avg: true, Min: true, Max: true, Sum: true, Count: true, Stddev: true}
	// overTime reducers read a series as a sequence in time; they may wrap
	// an across-series aggregate, which then runs first, at each step.
	overTime = map[Reducer]bool{Rate: true, Increase: true, Delta: true, Deriv: true, PredictLinear: true,
		Changes: true, Resets: true, Last: true, Quantile: true}
	stepReducers = map[Reducer]bool{Avg: true, Min: true, Max: true, Sum: true, Count: true}
	// summed reducers follow one series' shape: the shorthand adds them up
	// across series rather than pooling samples of different series.
	summed = map[Reducer]bool{Rate: true, Increase: true, Delta: true, Deriv: true, PredictLinear: true,
		Changes: true, Resets: true}
	// argName names the number a reducer takes after the metric.
	argName = map[Reducer]string{Percentile: "a rank", Quantile: "a rank", PredictLinear: "a horizon in seconds"}
	example = map[Reducer]string{Percentile: `percentile("etcd.leader.latency", 0.99)`,
		Quantile: `quantile("etcd.leader.latency", 0.99)`, PredictLinear: `predict_linear("etcd.db.size", 14400)`}
)

// celError is a CEL problem at a position inside the expression text
// (line and column from 1).
type celError struct {
	Line, Column int
	Msg          string
}

type compiler struct {
	scopeEnv *cel.Env
	condEnv  *cel.Env
}

func newCompiler() (*compiler, error) {
	labels := cel.Variable("labels", cel.MapType(cel.StringType, cel.StringType))
	common := []cel.EnvOption{labels, ext.Strings(), cel.CrossTypeNumericComparisons(true)}
	scopeEnv, err := cel.NewEnv(append(common, cel.Variable("metric", cel.StringType))...)
	if err != nil {
		return nil, err
	}
	condOpts := common
	for i := range maxAggregates {
		condOpts = append(condOpts, cel.Variable(aggVar(i), cel.DoubleType))
	}
	condEnv, err := cel.NewEnv(condOpts...)
	if err != nil {
		return nil, err
	}
	return &compiler{scopeEnv: scopeEnv, condEnv: condEnv}, nil
}

func aggVar(i int) string { return fmt.Sprintf("_a%d", i) }

// program builds a CEL program. Expressions that read `labels` get a
// runtime cost limit, since their cost depends on label sizes; the others
// only see numbers, so their cost is fixed and was bounded at load by
// checkBoolAndCost, and they skip the per-evaluation cost tracker.
func program(env *cel.Env, checked *cel.Ast) (cel.Program, error) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if readsLabels(checked) {
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	return env.Program(checked, opts...)
}

func readsLabels(checked *cel.Ast) bool {
	for _, e := range ast.MatchDescendants(ast.NavigateAST(checked.NativeRep()), ast.KindMatcher(ast.IdentKind)) {
		if e.AsIdent() == "labels" || e.AsIdent() == "metric" {
			return true
		}
	}
	return false
}

// compileScope compiles a boolean over `labels` and `metric`.
func (c *compiler) compileScope(src string) (*Scope, []celError) {
	checked, iss := c.scopeEnv.Compile(src)
	if iss.Err() != nil {
		return nil, issuesOf(iss)
	}
	if errs := c.checkBoolAndCost(c.scopeEnv, checked, "scope"); errs != nil {
		return nil, errs
	}
	prg, err := program(c.scopeEnv, checked)
	if err != nil {
		return nil, []celError{{1, 1, err.Error()}}
	}
	return &Scope{Source: src, Program: prg}, nil
}

// compileCondition parses the condition, replaces every aggregate call by a
// variable the engine binds, turns integer literals next to numbers into
// doubles (so `max("x") == 0` and `avg("x") * 100 > 5` read as written),
// then type-checks what is left.
func (c *compiler) compileCondition(src string) (*Condition, []celError) {
	parsed, iss := c.condEnv.Parse(src)
	if iss.Err() != nil {
		return nil, issuesOf(iss)
	}
	native := parsed.NativeRep()
	rw := &rewriter{info: native.SourceInfo(), fac: ast.NewExprFactory(), index: map[string]int{}}
	rw.walk(native.Expr())
	if rw.errs != nil {
		return nil, rw.errs
	}
	checked, iss := c.condEnv.Check(parsed)
	if iss.Err() != nil {
		return nil, issuesOf(iss)
	}
	if errs := c.checkBoolAndCost(c.condEnv, checked, "condition"); errs != nil {
		return nil, errs
	}
	prg, err := program(c.condEnv, checked)
	if err != nil {
		return nil, []celError{{1, 1, err.Error()}}
	}
	cond := &Condition{Source: src, Program: prg, Aggregates: rw.aggs, UsesLabels: rw.usesLabels}
	cond.Value = c.valueProgram(src, rw)
	cond.Native = compileNative(checked, rw.aggs)
	return cond, nil
}

var comparisons = map[string]bool{"_==_": true, "_!=_": true, "_<_": true, "_<=_": true, "_>_": true, "_>=_": true}

// valueProgram compiles the left side of the condition's first comparison:
// the number an SRE compares against a threshold, such as
// last("in_use") / last("quota") in `last("in_use") / last("quota") > 0.8`.
// It returns nil when there is no numeric left side.
func (c *compiler) valueProgram(src string, prev *rewriter) *ValueProgram {
	parsed, iss := c.condEnv.Parse(src)
	if iss.Err() != nil {
		return nil
	}
	root := parsed.NativeRep().Expr()
	rw := &rewriter{info: parsed.NativeRep().SourceInfo(), fac: ast.NewExprFactory(), index: prev.index, aggs: prev.aggs}
	rw.walk(root)
	if rw.errs != nil || len(rw.aggs) != len(prev.aggs) {
		return nil
	}
	var lhs ast.Expr
	var find func(e ast.Expr)
	find = func(e ast.Expr) {
		if lhs != nil || e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		if comparisons[call.FunctionName()] && len(call.Args()) == 2 {
			// The side with an aggregate: `0.1 < avg("x")` is avg's
			// value; a comparison without one (labels) is not the value.
			switch l, r := call.Args()[0], call.Args()[1]; {
			case readsAggregate(l):
				lhs = l
				return
			case readsAggregate(r):
				lhs = r
				return
			}
		}
		for _, a := range call.Args() {
			find(a)
		}
	}
	find(root)
	if lhs == nil {
		return nil
	}
	root.SetKindCase(lhs)
	checked, iss := c.condEnv.Check(parsed)
	if iss.Err() != nil || checked.OutputType() != cel.DoubleType {
		return nil
	}
	prg, err := program(c.condEnv, checked)
	if err != nil {
		return nil
	}
	return &ValueProgram{Program: prg, Native: compileNative(checked, rw.aggs)}
}

func (c *compiler) checkBoolAndCost(env *cel.Env, checked *cel.Ast, what string) []celError {
	if checked.OutputType() != cel.BoolType {
		return []celError{{1, 1, fmt.Sprintf("must be true or false, but this gives a %s", checked.OutputType())}}
	}
	est, err := env.EstimateCost(checked, labelsEstimator{})
	if err == nil && est.Max > CostLimit {
		return []celError{{1, 1, fmt.Sprintf("%s may cost up to %d to evaluate; the limit is %d", what, est.Max, CostLimit)}}
	}
	return nil
}

// labelsEstimator bounds `labels` for static cost estimation: a series
// seldom has more than a few dozen labels of modest length.
type labelsEstimator struct{}

func (labelsEstimator) EstimateSize(element cost.AstNode) *cost.SizeEstimate {
	if len(element.Path()) == 1 && element.Path()[0] == "labels" {
		return &cost.SizeEstimate{Min: 0, Max: 64}
	}
	return &cost.SizeEstimate{Min: 0, Max: 256}
}

func (labelsEstimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

func issuesOf(iss *cel.Issues) []celError {
	var out []celError
	for _, e := range iss.Errors() {
		out = append(out, celError{Line: e.Location.Line(), Column: e.Location.Column() + 1, Msg: e.Message})
	}
	return out
}

// rewriter replaces aggregate calls in a parsed condition.
type rewriter struct {
	info       *ast.SourceInfo
	fac        ast.ExprFactory
	aggs       []Aggregate
	index      map[string]int // aggregate text -> slot, so repeats share one
	errs       []celError
	usesLabels bool
}

func (r *rewriter) errorf(e ast.Expr, format string, args ...any) {
	loc := r.info.GetStartLocation(e.ID())
	r.errs = append(r.errs, celError{Line: loc.Line(), Column: loc.Column() + 1, Msg: fmt.Sprintf(format, args...)})
}

// walk rewrites e in place and reports whether e is numeric because of an
// aggregate or a double, which decides whether an integer literal beside it
// becomes a double.
func (r *rewriter) walk(e ast.Expr) (numeric bool) {
	switch e.Kind() {
	case ast.IdentKind:
		if e.AsIdent() == "labels" {
			r.usesLabels = true
		}
		if strings.HasPrefix(e.AsIdent(), "_a") {
			r.errorf(e, "names starting with _a are reserved")
		}
	case ast.LiteralKind:
		return e.AsLiteral().Type() == types.DoubleType
	case ast.SelectKind:
		r.walk(e.AsSelect().Operand())
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			r.walk(el)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			r.walk(me.Key())
			r.walk(me.Value())
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		r.walk(c.IterRange())
		r.walk(c.AccuInit())
		r.walk(c.LoopCondition())
		r.walk(c.LoopStep())
		r.walk(c.Result())
	case ast.CallKind:
		return r.walkCall(e)
	}
	return false
}

var numericOps = map[string]bool{
	"_==_": false, "_!=_": false, "_<_": false, "_<=_": false, "_>_": false, "_>=_": false,
	"_+_": true, "_-_": true, "_*_": true, "_/_": true,
}

func (r *rewriter) walkCall(e ast.Expr) bool {
	call := e.AsCall()
	name := call.FunctionName()
	if !call.IsMemberFunction() && (seriesReducers[Reducer(name)] || acrossReducers[Reducer(name)]) {
		r.aggregate(e)
		return true
	}
	if call.IsMemberFunction() {
		r.walk(call.Target())
	}
	args := call.Args()
	if name == "-_" && len(args) == 1 {
		return r.walk(args[0])
	}
	arith, isOp := numericOps[name]
	if !isOp {
		for _, a := range args {
			r.walk(a)
		}
		return name == "double"
	}
	num := make([]bool, len(args))
	any := false
	for i, a := range args {
		num[i] = r.walk(a)
		any = any || num[i]
	}
	if any {
		for _, a := range args {
			if a.Kind() == ast.LiteralKind && a.AsLiteral().Type() == types.IntType {
				a.SetKindCase(r.fac.NewLiteral(a.ID(), types.Double(a.AsLiteral().(types.Int))))
			}
		}
	}
	return arith && any
}

// aggregate turns f("metric"), f(g("metric")), g(f("metric")) or
// f("metric", number) into a variable.
func (r *rewriter) aggregate(e ast.Expr) {
	call := e.AsCall()
	outer := Reducer(call.FunctionName())
	agg := Aggregate{}
	inner, args := e, call.Args()
	if len(args) >= 1 && args[0].Kind() == ast.CallKind && !args[0].AsCall().IsMemberFunction() &&
		seriesReducers[Reducer(args[0].AsCall().FunctionName())] {
		in := Reducer(args[0].AsCall().FunctionName())
		switch {
		case acrossReducers[outer] && len(args) == 1:
			// Two levels: across(series("metric")).
			agg.Across = outer
			inner = args[0]
			args = inner.AsCall().Args()
			outer = in
		case overTime[outer] && stepReducers[in]:
			// Across first: time(across("metric")), as the max across
			// members at each step, then its increase.
			if len(args) != wantArgs(outer) {
				r.errorf(e, "%s() takes %s", outer, usage(outer, fmt.Sprintf(`%s("m")`, in)))
				return
			}
			agg.Across, agg.AcrossFirst = in, true
			if !r.param(&agg, outer, args) {
				return
			}
			inner = args[0]
			args = inner.AsCall().Args()
			if len(args) != 1 {
				r.errorf(inner, `%s() inside %s() takes one metric name in quotes, like %s(%s("etcd.server.leader_changes_seen_total"))`, in, outer, outer, in)
				return
			}
		case overTime[outer]:
			r.errorf(e, "%s() can wrap an aggregate across series at each step (avg, min, max, sum or count, as in increase(max(\"m\"))), not %s(); to combine per-series values put avg, min, max, sum, count or stddev outside", outer, in)
			return
		default:
			r.errorf(e, "%s() cannot combine per-series values; use one of avg, min, max, sum, count, stddev", outer)
			return
		}
	}
	agg.Series = outer
	if !seriesReducers[outer] {
		r.errorf(e, "%s() needs a per-series aggregate inside, like %s(rate(\"etcd.txn.total\"))", outer, outer)
		return
	}
	if !agg.AcrossFirst {
		if len(args) != wantArgs(outer) {
			if wantArgs(outer) == 2 {
				r.errorf(inner, "%s() takes a metric name and %s, like %s", outer, argName[outer], example[outer])
			} else {
				r.errorf(inner, `%s() takes one metric name in quotes, like %s("etcd.can_connect")`, outer, outer)
			}
			return
		}
		if !r.param(&agg, outer, args) {
			return
		}
	}
	if args[0].Kind() != ast.LiteralKind || args[0].AsLiteral().Type() != types.StringType {
		r.errorf(args[0], `%s() takes a metric name in quotes, like %s("etcd.can_connect")`, outer, outer)
		return
	}
	agg.Metric = string(args[0].AsLiteral().(types.String))
	if agg.Metric == "" {
		r.errorf(args[0], "metric name is empty")
		return
	}
	if agg.Across == "" {
		// Shorthand: rates add up across series (the segment's total rate);
		// everything else pools the samples of all series.
		agg.Across = Pool
		if summed[agg.Series] {
			agg.Across = Sum
		}
	}
	agg.Text = aggText(agg)
	slot, ok := r.index[agg.Text]
	if !ok {
		if len(r.aggs) == maxAggregates {
			r.errorf(e, "a condition may use at most %d aggregates", maxAggregates)
			return
		}
		slot = len(r.aggs)
		agg.Var = aggVar(slot)
		r.aggs = append(r.aggs, agg)
		r.index[agg.Text] = slot
	}
	e.SetKindCase(r.fac.NewIdent(e.ID(), aggVar(slot)))
}

func wantArgs(f Reducer) int {
	if argName[f] != "" {
		return 2
	}
	return 1
}

func usage(f Reducer, first string) string {
	if wantArgs(f) == 2 {
		return fmt.Sprintf("%s and %s, like %s(%s, %s)", first, argName[f], f, first, strings.SplitN(strings.TrimSuffix(example[f], ")"), ", ", 2)[1])
	}
	return fmt.Sprintf("one argument, like %s(%s)", f, first)
}

// param reads the number f takes after the metric, into agg.Q.
func (r *rewriter) param(agg *Aggregate, f Reducer, args []ast.Expr) bool {
	if wantArgs(f) != 2 {
		return true
	}
	v, ok := numberLiteral(args[1])
	switch f {
	case Percentile:
		if ok && v > 1 && v <= 100 {
			v /= 100 // percentile("x", 99) means the 99th
		}
		if !ok || v < 0 || v > 1 {
			r.errorf(args[1], "percentile rank must be a number between 0 and 1 (or 0 and 100)")
			return false
		}
	case Quantile:
		if !ok || v < 0 || v > 1 {
			r.errorf(args[1], "quantile rank must be a number between 0 and 1, like 0.99")
			return false
		}
	case PredictLinear:
		if !ok || math.IsInf(v, 0) || math.IsNaN(v) {
			r.errorf(args[1], "predict_linear horizon must be a number of seconds, like 14400 for 4 hours")
			return false
		}
	}
	agg.Q = v
	return true
}

func numberLiteral(e ast.Expr) (float64, bool) {
	if e.Kind() != ast.LiteralKind {
		return 0, false
	}
	switch v := e.AsLiteral().(type) {
	case types.Double:
		return float64(v), true
	case types.Int:
		return float64(v), true
	case types.Uint:
		return float64(v), true
	}
	return 0, false
}

func aggText(a Aggregate) string {
	arg := ""
	if wantArgs(a.Series) == 2 {
		arg = fmt.Sprintf(", %g", a.Q)
	}
	if a.AcrossFirst {
		return fmt.Sprintf("%s(%s(%q)%s)", a.Series, a.Across, a.Metric, arg)
	}
	inner := fmt.Sprintf("%s(%q%s)", a.Series, a.Metric, arg)
	if a.Across == Pool || (a.Across == Sum && summed[a.Series]) {
		return inner
	}
	return fmt.Sprintf("%s(%s)", a.Across, inner)
}

// readsAggregate says whether a rewritten expression reads an aggregate.
func readsAggregate(e ast.Expr) bool {
	switch e.Kind() {
	case ast.IdentKind:
		return strings.HasPrefix(e.AsIdent(), "_a")
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() && readsAggregate(c.Target()) {
			return true
		}
		for _, a := range c.Args() {
			if readsAggregate(a) {
				return true
			}
		}
	}
	return false
}

// stepAggregates gives across-first aggregates their step, the group's
// interval; a scheduled group has none, so bad is called for each.
func stepAggregates(cond *Condition, g *Group, bad func(*Aggregate)) {
	for i := range cond.Aggregates {
		a := &cond.Aggregates[i]
		if !a.AcrossFirst {
			continue
		}
		if g.Schedule != "" {
			bad(a)
			continue
		}
		a.Step = g.Interval
	}
}
