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

// addPoints folds a window into the accumulator, doing only the work
// reducer r needs: this loop is the engine's hottest.
func (a *acc) addPoints(r rules.Reducer, w []point) {
	switch r {
	// Locals: the compiler cannot keep a.max in a register across the
	// loop, since w might alias a.
	case rules.Max:
		m := a.max
		for _, p := range w {
			m = max(m, p.v)
		}
		a.max = m
	case rules.Min:
		m := a.min
		for _, p := range w {
			m = min(m, p.v)
		}
		a.min = m
	case rules.Sum, rules.Avg:
		sum := a.sum
		for _, p := range w {
			sum += p.v
		}
		a.sum = sum
	case rules.Count:
	case rules.Last:
		if p := w[len(w)-1]; p.t >= a.lastT {
			a.lastT, a.last = p.t, p.v
		}
	default:
		for _, p := range w {
			a.add(p.t, p.v, r == rules.Percentile)
		}
		return
	}
	a.n += len(w)
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

// window returns the samples in (start, end].
func window(pts []point, start, end int64) []point {
	j := len(pts)
	for j > 0 && pts[j-1].t > end {
		j--
	}
	i := j
	for i > 0 && pts[i-1].t > start {
		i--
	}
	return pts[i:j]
}

// counterIncrease sums the increases of a counter, treating a drop as a
// reset to zero (the new value is all increase since the reset).
func counterIncrease(pts []point) float64 {
	inc := 0.0
	for k := 1; k < len(pts); k++ {
		if d := pts[k].v - pts[k-1].v; d >= 0 {
			inc += d
		} else {
			inc += pts[k].v
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
	if a.Across == rules.Pool {
		g.across.reset()
		for _, sr := range ss {
			if w := window(sr.pts, start, end); len(w) > 0 {
				g.across.addPoints(a.Series, w)
			}
		}
		v, ok = g.across.result(a.Series, a.Q)
		return v, ok, g.across.n > 0
	}
	g.across.reset()
	for _, sr := range ss {
		w := window(sr.pts, start, end)
		if len(w) == 0 {
			continue
		}
		seen = true
		var sv float64
		switch a.Series {
		case rules.Rate, rules.Increase:
			if len(w) < 2 {
				continue
			}
			sv = counterIncrease(w)
			if a.Series == rules.Rate {
				sv /= float64(w[len(w)-1].t-w[0].t) / 1e9
			}
		default:
			g.perSeries.reset()
			g.perSeries.addPoints(a.Series, w)
			sv, _ = g.perSeries.result(a.Series, a.Q)
		}
		g.across.add(w[len(w)-1].t, sv, a.Across == rules.Percentile)
	}
	v, ok = g.across.result(a.Across, a.Q)
	return v, ok, seen
}
