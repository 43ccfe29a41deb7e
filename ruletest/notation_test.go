package ruletest

import (
	"math"
	"strings"
	"testing"
)

func TestParseValues(t *testing.T) {
	n := math.NaN()
	tests := []struct {
		in      string
		want    []float64
		wantErr string // part of the error; "" for none
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: "1 2 3", want: []float64{1, 2, 3}},
		{in: "  1\t 2  ", want: []float64{1, 2}},
		{in: "_", want: []float64{n}},
		{in: "1 _ 1", want: []float64{1, n, 1}},
		{in: "0x3", want: []float64{0, 0, 0, 0}},
		{in: "0x10", want: []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{in: "0x0", want: []float64{0}},
		{in: "_x3", want: []float64{n, n, n}},
		{in: "_x0", want: nil},
		{in: "1 _x0 2", want: []float64{1, 2}},
		{in: "1 1 0x1 _ 1", want: []float64{1, 1, 0, 0, n, 1}},
		{in: "1+2x3", want: []float64{1, 3, 5, 7}},
		{in: "1+2x0", want: []float64{1}},
		{in: "100-10x2", want: []float64{100, 90, 80}},
		{in: "-1", want: []float64{-1}},
		{in: "+1", want: []float64{1}},
		{in: "-1+1x2", want: []float64{-1, 0, 1}},
		{in: "1-1x2", want: []float64{1, 0, -1}},
		{in: "0.5+0.25x2", want: []float64{0.5, 0.75, 1}},
		{in: "1e3", want: []float64{1000}},
		{in: "1e-3", want: []float64{0.001}},
		{in: "1.5e+2x1", want: []float64{150, 150}},
		{in: "6e9+1e9x1", want: []float64{6e9, 7e9}},
		{in: "1x1", want: []float64{1, 1}},

		{in: "1x-2", wantErr: `values "1x-2": the count after x must be a whole number, 0 or more`},
		{in: "1x+2", wantErr: `values "1x+2": the count`},
		{in: "_x-1", wantErr: `values "_x-1": the count`},
		{in: "1xa", wantErr: `values "1xa": the count`},
		{in: "1x", wantErr: `values "1x": the count`},
		{in: "1 2 abc", wantErr: `values "abc": not a number`},
		{in: "x3", wantErr: `values "x3": not a number`},
		{in: "1+2", wantErr: `values "1+2": a step (+ or -) needs a count, like 1+2x3`},
		{in: "_+1x3", wantErr: `values "_+1x3": not a number`},
		{in: "1+ax3", wantErr: `values "1+ax3": not a number`},
		{in: "stale", wantErr: `values "stale": stale markers are not supported: a Vigil window has no staleness; use _ (no sample)`},
		{in: "1 stalex2", wantErr: `values "stalex2": stale markers are not supported`},
		{in: "1,2", wantErr: `values "1,2"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseValues(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseValues(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseValues(%q): %v", tc.in, err)
			}
			if !sameValues(got, tc.want) {
				t.Errorf("ParseValues(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// sameValues compares with NaN (no sample) equal to NaN, and a little
// tolerance for stepped decimals.
func sameValues(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		switch {
		case math.IsNaN(a[i]) || math.IsNaN(b[i]):
			if math.IsNaN(a[i]) != math.IsNaN(b[i]) {
				return false
			}
		case math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Abs(b[i])):
			return false
		}
	}
	return true
}

// FuzzParseValues: the notation never panics or allocates past its limit;
// a series is the concatenation of its tokens; and what parses under a
// limit has at most that many steps.
func FuzzParseValues(f *testing.F) {
	for _, s := range []string{
		"", "1 2 3", "_", "1 _ 1", "0x10", "_x3", "1+2x3", "100-10x2", "-1+1x2", "1e-3", "1.5e+2x1",
		"6e9+1e9x1", "1x0", "_x0", "1+1x0", "1xa", "1+2", "stale", "0x9223372036854775807", "0x4000000000", "1 0x99999", "NaN Inf -Inf",
		"0+9000x6 9000+9000x10", "1x1x1", "x3", "1ex3", "0x-9223372036854775808",
	} {
		f.Add(s, uint16(1000))
	}
	f.Add("0x999", uint16(1000))  // exactly the limit
	f.Add("0x1000", uint16(1000)) // one past it
	f.Add("_x1000", uint16(1000)) // exactly the limit
	f.Add("1 2 0x997", uint16(1000))
	f.Fuzz(func(t *testing.T, s string, limit uint16) {
		maxLen := int(limit)
		vals, err := ParseValuesMax(s, maxLen)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "values ") {
				t.Fatalf("error does not say which values: %v", err)
			}
			return
		}
		if len(vals) > maxLen {
			t.Fatalf("%q: %d steps past the limit %d", s, len(vals), maxLen)
		}
		var joined []float64
		for _, tok := range strings.Fields(s) {
			v, err := ParseValuesMax(tok, maxLen)
			if err != nil {
				t.Fatalf("%q parses but its token %q does not: %v", s, tok, err)
			}
			joined = append(joined, v...)
		}
		if len(joined) != len(vals) {
			t.Fatalf("%q: %d steps, its tokens %d", s, len(vals), len(joined))
		}
		for i := range vals {
			if vals[i] != joined[i] && !(math.IsNaN(vals[i]) && math.IsNaN(joined[i])) {
				t.Fatalf("%q: step %d is %v, %v in its token", s, i, vals[i], joined[i])
			}
		}
	})
}
