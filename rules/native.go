package rules

import (
	"math"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// Native is a condition, or an alert value, compiled to Go closures. Most
// conditions are arithmetic and comparisons over aggregates, and for those
// CEL's interpreter costs more than the aggregation itself. Native covers
// exactly that subset, with CEL's semantics for doubles; when a case is
// outside what it can decide exactly (a NaN compared), it says so and the
// caller runs the CEL program instead. Tests hold both to the same answers.
type Native struct {
	cond func(vals []float64) (result, exact bool)
	num  func(vals []float64) float64
	// The commonest condition, one aggregate against a number, is decided
	// inline: no closure calls.
	simple bool
	slot   int
	op     string
	k      float64
}

// Eval decides a condition from the aggregate values (in Aggregates order).
// exact is false when CEL must decide instead.
func (n *Native) Eval(vals []float64) (result, exact bool) {
	if !n.simple {
		return n.cond(vals)
	}
	v := vals[n.slot]
	if v != v { // NaN
		return false, false
	}
	switch n.op {
	case "_==_":
		return v == n.k, true
	case "_!=_":
		return v != n.k, true
	case "_<_":
		return v < n.k, true
	case "_<=_":
		return v <= n.k, true
	case "_>_":
		return v > n.k, true
	default:
		return v >= n.k, true
	}
}

// Value computes a numeric expression from the aggregate values.
func (n *Native) Value(vals []float64) float64 { return n.num(vals) }

// compileNative compiles a checked, rewritten expression; nil when any part
// is outside the subset (strings, labels, functions, integer arithmetic).
func compileNative(checked *cel.Ast, aggs []Aggregate) *Native {
	slot := make(map[string]int, len(aggs))
	for i, a := range aggs {
		slot[a.Var] = i
	}
	c := nativeCompiler{slot: slot}
	root := checked.NativeRep().Expr()
	if checked.OutputType() == cel.BoolType {
		f := c.boolean(root)
		if f == nil {
			return nil
		}
		n := &Native{cond: f}
		n.simple, n.slot, n.op, n.k = c.simpleComparison(root)
		return n
	}
	if f := c.number(root); f != nil {
		return &Native{num: f}
	}
	return nil
}

type nativeCompiler struct {
	slot map[string]int
}

type numFn = func([]float64) float64
type boolFn = func([]float64) (bool, bool)

func (c nativeCompiler) number(e ast.Expr) numFn {
	switch e.Kind() {
	case ast.IdentKind:
		i, ok := c.slot[e.AsIdent()]
		if !ok {
			return nil
		}
		return func(v []float64) float64 { return v[i] }
	case ast.LiteralKind:
		d, ok := e.AsLiteral().(types.Double)
		if !ok {
			return nil // integers keep CEL's integer arithmetic
		}
		k := float64(d)
		return func([]float64) float64 { return k }
	case ast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() == "-_" && len(args) == 1 {
			if a := c.number(args[0]); a != nil {
				return func(v []float64) float64 { return -a(v) }
			}
			return nil
		}
		if len(args) != 2 || call.IsMemberFunction() {
			return nil
		}
		a, b := c.number(args[0]), c.number(args[1])
		if a == nil || b == nil {
			return nil
		}
		switch call.FunctionName() {
		case "_+_":
			return func(v []float64) float64 { return a(v) + b(v) }
		case "_-_":
			return func(v []float64) float64 { return a(v) - b(v) }
		case "_*_":
			return func(v []float64) float64 { return a(v) * b(v) }
		case "_/_":
			return func(v []float64) float64 { return a(v) / b(v) }
		}
	}
	return nil
}

func (c nativeCompiler) boolean(e ast.Expr) boolFn {
	switch e.Kind() {
	case ast.LiteralKind:
		b, ok := e.AsLiteral().(types.Bool)
		if !ok {
			return nil
		}
		return func([]float64) (bool, bool) { return bool(b), true }
	case ast.CallKind:
	default:
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	if call.IsMemberFunction() {
		return nil
	}
	switch call.FunctionName() {
	case "!_":
		if len(args) != 1 {
			return nil
		}
		a := c.boolean(args[0])
		if a == nil {
			return nil
		}
		return func(v []float64) (bool, bool) { r, ok := a(v); return !r, ok }
	case "_&&_", "_||_":
		if len(args) != 2 {
			return nil
		}
		a, b := c.boolean(args[0]), c.boolean(args[1])
		if a == nil || b == nil {
			return nil
		}
		and := call.FunctionName() == "_&&_"
		return func(v []float64) (bool, bool) {
			ra, oka := a(v)
			if oka && ra != and {
				return ra, true // false && x, true || x
			}
			rb, okb := b(v)
			if okb && rb != and {
				return rb, true
			}
			return and, oka && okb
		}
	}
	if len(args) != 2 || !comparisons[call.FunctionName()] {
		return nil
	}
	a, b := c.number(args[0]), c.number(args[1])
	if a == nil || b == nil {
		return nil
	}
	var cmp func(x, y float64) bool
	switch call.FunctionName() {
	case "_==_":
		cmp = func(x, y float64) bool { return x == y }
	case "_!=_":
		cmp = func(x, y float64) bool { return x != y }
	case "_<_":
		cmp = func(x, y float64) bool { return x < y }
	case "_<=_":
		cmp = func(x, y float64) bool { return x <= y }
	case "_>_":
		cmp = func(x, y float64) bool { return x > y }
	case "_>=_":
		cmp = func(x, y float64) bool { return x >= y }
	}
	return func(v []float64) (bool, bool) {
		x, y := a(v), b(v)
		if math.IsNaN(x) || math.IsNaN(y) {
			return false, false // CEL decides NaN comparisons its own way
		}
		return cmp(x, y), true
	}
}

var mirrored = map[string]string{"_==_": "_==_", "_!=_": "_!=_", "_<_": "_>_", "_<=_": "_>=_", "_>_": "_<_", "_>=_": "_<=_"}

// simpleComparison recognises `aggregate OP number` and `number OP aggregate`.
func (c nativeCompiler) simpleComparison(e ast.Expr) (ok bool, slot int, op string, k float64) {
	if e.Kind() != ast.CallKind || !comparisons[e.AsCall().FunctionName()] || len(e.AsCall().Args()) != 2 {
		return false, 0, "", 0
	}
	op = e.AsCall().FunctionName()
	l, r := e.AsCall().Args()[0], e.AsCall().Args()[1]
	if l.Kind() == ast.LiteralKind {
		l, r, op = r, l, mirrored[op]
	}
	if l.Kind() != ast.IdentKind || r.Kind() != ast.LiteralKind {
		return false, 0, "", 0
	}
	d, isDouble := r.AsLiteral().(types.Double)
	slot, isAgg := c.slot[l.AsIdent()]
	if !isDouble || !isAgg {
		return false, 0, "", 0
	}
	return true, slot, op, float64(d)
}
