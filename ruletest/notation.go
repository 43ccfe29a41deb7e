package ruletest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseValues expands the compact series notation into one value per step;
// NaN marks a step with no sample. It is promtool's notation for input
// series: a repeat `axN` or `a+bxN` is the start value and N more, as
// promtool expands it, so a file's values mean the same in both.
//
//	1 2 3     three values
//	_         no sample at this step
//	0x10      0 and ten more: eleven values
//	1x0       just 1
//	_x3       three steps without samples (promtool: N, not N+1)
//	1+2x3     from 1, adding 2 three times: 1 3 5 7
//	100-10x2  100 90 80
//
// promtool's `stale` is refused: Vigil's windows have no staleness markers
// (use _). A series longer than DefaultMaxSeriesLength steps is an error.
func ParseValues(s string) ([]float64, error) {
	return ParseValuesMax(s, DefaultMaxSeriesLength)
}

// DefaultMaxSeriesLength is how many steps one input series may have
// unless a test file says otherwise: a day of 1s samples, and far below
// what would exhaust memory (`0x4000000000` asks for 2 TiB).
const DefaultMaxSeriesLength = 100_000

// ErrTooLong is wrapped by the error for a series longer than its limit.
var ErrTooLong = errors.New("the series is too long")

// ParseValuesMax is ParseValues with a limit of maxLen steps, checked
// before anything is allocated.
func ParseValuesMax(s string, maxLen int) ([]float64, error) {
	var out []float64
	for _, tok := range strings.Fields(s) {
		vals, err := parseToken(tok, maxLen-len(out))
		if errors.Is(err, ErrTooLong) {
			return nil, fmt.Errorf("values %q: %w: more than %d steps (max_series_length)", tok, err, maxLen)
		}
		if err != nil {
			return nil, fmt.Errorf("values %q: %w", tok, err)
		}
		out = append(out, vals...)
	}
	return out, nil
}

// parseToken expands one token of at most room steps.
func parseToken(tok string, room int) ([]float64, error) {
	body, count := tok, 1
	if i := strings.LastIndexByte(tok, 'x'); i > 0 {
		n, err := strconv.Atoi(tok[i+1:])
		if err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(tok[i+1:], "-") {
			n, err = math.MaxInt, nil // too large to count: refused as too long below
		}
		if err != nil || n < 0 || tok[i+1] == '+' || tok[i+1] == '-' {
			return nil, fmt.Errorf("the count after x must be a whole number, 0 or more")
		}
		if n > room || (n == room && tok[:i] != "_") {
			return nil, ErrTooLong // checked before n+1, which overflows for the largest n
		}
		body, count = tok[:i], n+1 // promtool: the start value and n more
		if body == "_" {
			count = n // promtool: _xN is N steps
		}
	}
	if strings.HasPrefix(body, "stale") {
		return nil, fmt.Errorf("stale markers are not supported: a Vigil window has no staleness; use _ (no sample)")
	}
	if count > room {
		return nil, ErrTooLong
	}
	start, step := 0.0, 0.0
	switch {
	case body == "_":
		start = math.NaN()
	default:
		op := -1
		for i := 1; i < len(body); i++ {
			if (body[i] == '+' || body[i] == '-') && body[i-1] != 'e' && body[i-1] != 'E' {
				op = i
				break
			}
		}
		var err error
		if op < 0 {
			start, err = strconv.ParseFloat(body, 64)
		} else {
			if !strings.Contains(tok, "x") {
				return nil, fmt.Errorf("a step (+ or -) needs a count, like 1+2x3")
			}
			start, err = strconv.ParseFloat(body[:op], 64)
			if err == nil {
				step, err = strconv.ParseFloat(body[op:], 64)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("not a number, _ or a repeat like 0x10")
		}
	}
	vals := make([]float64, count)
	for k := range vals {
		vals[k] = start + float64(k)*step
	}
	return vals, nil
}
