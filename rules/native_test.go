package rules

import (
	"math"
	"math/rand/v2"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// The native path must give CEL's answer for every condition it accepts:
// random aggregate values, including zeros, negatives, equal values and
// values that make divisions infinite or NaN.
func TestNativeAgreesWithCEL(t *testing.T) {
	conditions := []string{
		`max("a") == 0`,
		`max("a") != 0`,
		`avg("a") > 100`,
		`avg("a") >= 0.5`,
		`0.1 < min("a")`,
		`avg("a") * 100 > 5`,
		`-max("a") <= -2`,
		`last("a") / last("b") > 0.8`,
		`sum(last("a")) < (count(last("a")) + 1) / 2`,
		`max("a") == 0 && max("b") == 0`,
		`max("a") == 0 || max("b") > 3`,
		`!(avg("a") > 1) && (last("b") - last("a")) * 2.5 >= 1`,
		`true && avg("a") < avg("b")`,
	}
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := []float64{0, 1, -1, 2, 3, 0.5, 0.8, 100, 101, -2, 1e9}
	for _, src := range conditions {
		cond, errs := c.compileCondition(src)
		if errs != nil {
			t.Fatalf("%s: %v", src, errs)
		}
		if cond.Native == nil {
			t.Errorf("%s: not compiled natively", src)
			continue
		}
		vals := make([]float64, len(cond.Aggregates))
		act := map[string]any{}
		inexact := 0
		for range 2000 {
			for i, a := range cond.Aggregates {
				vals[i] = pick[rng.IntN(len(pick))]
				if rng.IntN(4) == 0 {
					vals[i] = rng.Float64()*10 - 5
				}
				act[a.Var] = vals[i]
			}
			got, exact := cond.Native.Eval(vals)
			out, _, err := cond.Program.Eval(act)
			if !exact {
				inexact++
				continue
			}
			if err != nil || out != types.Bool(got) {
				t.Fatalf("%s with %v: native %v, CEL %v (err %v)", src, vals, got, out, err)
			}
			if cond.Value != nil && cond.Value.Native != nil {
				want, _, _ := cond.Value.Program.Eval(act)
				if v := cond.Value.Native.Value(vals); !sameFloat(v, want) {
					t.Fatalf("%s with %v: native value %v, CEL %v", src, vals, v, want)
				}
			}
		}
		if inexact > 200 {
			t.Errorf("%s: native path gave way to CEL %d times in 2000", src, inexact)
		}
	}
}

func sameFloat(v float64, want ref.Val) bool {
	d, ok := want.(types.Double)
	if !ok {
		return false
	}
	return float64(d) == v || (math.IsNaN(v) && math.IsNaN(float64(d)))
}

// Conditions outside the numeric subset stay with CEL.
func TestNativeLeavesTheRestToCEL(t *testing.T) {
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		`max("a") == 0 && labels["host.mac"] == "x"`,
		`int(max("a")) == 3`,
		`labels["role"].startsWith("etcd") || avg("a") > 1`,
	} {
		cond, errs := c.compileCondition(src)
		if errs != nil {
			t.Fatalf("%s: %v", src, errs)
		}
		if cond.Native != nil {
			t.Errorf("%s: compiled natively, but it needs CEL", src)
		}
	}
}

// The alert value is the side of a comparison that reads an aggregate,
// even when a comparison of labels comes first.
func TestValueSkipsComparisonsWithoutAggregates(t *testing.T) {
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	cond, errs := c.compileCondition(`labels["env"] == "prod" && last("u") / last("q") > 0.8`)
	if errs != nil {
		t.Fatal(errs)
	}
	if cond.Value == nil || cond.Value.Native == nil {
		t.Fatal("no native value program")
	}
	vals := make([]float64, len(cond.Aggregates))
	for i, a := range cond.Aggregates {
		vals[i] = map[string]float64{`last("u")`: 9, `last("q")`: 10}[a.Text]
	}
	if v := cond.Value.Native.Value(vals); v != 0.9 {
		t.Fatalf("value %v, want the ratio 0.9", v)
	}
}
