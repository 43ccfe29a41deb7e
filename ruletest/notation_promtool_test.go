package ruletest

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestParseValuesAsPromtool: a series' values expand to the same steps as
// promtool's own parser expands them, so a test file's input means the
// same to `vigil test` and `promtool test rules`; what promtool refuses,
// Vigil refuses too.
func TestParseValuesAsPromtool(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, in := range []string{
		"1 2 3", "_", "1 _ 1", "0x3", "0x10", "0x0", "1x1", "_x3", "_x0", "_x1", "1 _x0 2",
		"1+2x3", "1+2x0", "1+0x6", "100-10x2", "-1", "+1", "-1+1x2", "1-1x2", "-3-10x4",
		"0.5+0.25x2", "1e3", "1e-3", "1.5e+2x1", "6e9+1e9x1", "1 -1 -3-10x4 7 9 +5",
		"1x4 0x20 _x5 1+1x3", "0.02x9 0.3x3 0.02x29", ".5x2",
		// refused by both
		"1+2", "1x-2", "1xa", "1 2 abc", "_+1x3", "1+ax3", "1,2", "3+3x4-4", "-3-3 -3",
	} {
		t.Run(in, func(t *testing.T) {
			_, seq, perr := p.ParseSeriesDesc("{} " + in)
			got, err := ParseValues(in)
			if (perr != nil) != (err != nil) {
				t.Fatalf("ParseValues(%q) error = %v; promtool's parser: %v", in, err, perr)
			}
			if perr != nil {
				return
			}
			want := make([]float64, len(seq))
			for i, v := range seq {
				want[i] = v.Value
				if v.Omitted {
					want[i] = math.NaN()
				}
			}
			if !sameValues(got, want) {
				t.Errorf("ParseValues(%q) = %v, promtool expands it to %v", in, got, want)
			}
		})
	}
}
