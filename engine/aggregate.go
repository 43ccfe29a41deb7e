package engine

import (
	"math"
	"slices"

	"github.com/vigil-alerts/vigil/rules"
)

// acc reduces a stream of numbers without keeping them, except for
// percentiles, which need them all.
type acc struct {
	n             int
	sum, min, max float64
	mean, m2      float64 // Welford, for a stable stddev
	lastT         int64
	last          float64
	vals          []float64 // only for percentiles
}

func (a *acc) reset() {
	a.n, a.sum, a.mean, a.m2, a.lastT = 0, 0, 0, 0, math.MinInt64
	a.min, a.max = math.Inf(1), math.Inf(-1)
	a.vals = a.vals[:0]
}

func (a *acc) add(t int64, v float64, keep bool) {
	a.n++
	a.sum += v
	a.min = min(a.min, v)
	a.max = max(a.max, v)
	d := v - a.mean
	a.mean += d / float64(a.n)
	a.m2 += d * (v - a.mean)
	if t >= a.lastT {
		a.lastT, a.last = t, v
	}
	if keep {
		a.vals = append(a.vals, v)
	}
}

// result reduces what was added with r; ok is false when there is nothing
// to reduce (count is 0, never missing).
func (a *acc) result(r rules.Reducer, q float64) (float64, bool) {
	if r == rules.Count {
		return float64(a.n), true
	}
	if a.n == 0 {
		return 0, false
	}
	switch r {
	case rules.Avg:
		return a.sum / float64(a.n), true
	case rules.Min:
		return a.min, true
	case rules.Max:
		return a.max, true
	case rules.Sum:
		return a.sum, true
	case rules.Last:
		return a.last, true
	case rules.Stddev:
		return math.Sqrt(a.m2 / float64(a.n)), true
	case rules.Percentile:
		return percentile(a.vals, q), true
	}
	return 0, false
}

// percentile interpolates linearly between the closest ranks; it sorts vals.
func percentile(vals []float64, q float64) float64 {
	slices.Sort(vals)
	if len(vals) == 1 {
		return vals[0]
	}
	pos := q * float64(len(vals)-1)
	lo := int(math.Floor(pos))
	if lo >= len(vals)-1 {
		return vals[len(vals)-1]
	}
	frac := pos - float64(lo)
	return vals[lo] + frac*(vals[lo+1]-vals[lo])
}

// window returns the index range [i, j) of samples in (start, end].
func window(ts []int64, start, end int64) (int, int) {
	j := len(ts)
	for j > 0 && ts[j-1] > end {
		j--
	}
	i := j
	for i > 0 && ts[i-1] > start {
		i--
	}
	return i, j
}

// counterIncrease sums the increases of a counter, treating a drop as a
// reset to zero (the new value is all increase since the reset).
func counterIncrease(vs []float64) float64 {
	inc := 0.0
	for k := 1; k < len(vs); k++ {
		if d := vs[k] - vs[k-1]; d >= 0 {
			inc += d
		} else {
			inc += vs[k]
		}
	}
	return inc
}

// aggregator computes one rules.Aggregate over a segment's series.
type aggregator struct {
	across, perSeries acc
}

// compute returns the aggregate over series in (start, end] and whether any
// sample was seen at all.
func (g *aggregator) compute(a *rules.Aggregate, ss []*series, start, end int64) (v float64, ok, seen bool) {
	pct := a.Series == rules.Percentile
	if a.Across == rules.Pool {
		g.across.reset()
		for _, sr := range ss {
			i, j := window(sr.ts, start, end)
			for k := i; k < j; k++ {
				g.across.add(sr.ts[k], sr.vs[k], pct)
			}
		}
		v, ok = g.across.result(a.Series, a.Q)
		return v, ok, g.across.n > 0
	}
	g.across.reset()
	for _, sr := range ss {
		i, j := window(sr.ts, start, end)
		if i == j {
			continue
		}
		seen = true
		var sv float64
		switch a.Series {
		case rules.Rate, rules.Increase:
			if j-i < 2 {
				continue
			}
			sv = counterIncrease(sr.vs[i:j])
			if a.Series == rules.Rate {
				sv /= float64(sr.ts[j-1]-sr.ts[i]) / 1e9
			}
		default:
			g.perSeries.reset()
			for k := i; k < j; k++ {
				g.perSeries.add(sr.ts[k], sr.vs[k], pct)
			}
			sv, _ = g.perSeries.result(a.Series, a.Q)
		}
		g.across.add(sr.ts[j-1], sv, a.Across == rules.Percentile)
	}
	v, ok = g.across.result(a.Across, a.Q)
	return v, ok, seen
}
