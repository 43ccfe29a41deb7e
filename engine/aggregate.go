package engine

import (
	"cmp"
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
func (a *acc) addPoints(r rules.Reducer, ts []int64, vs []float64) {
	switch r {
	// Locals: the compiler cannot keep a.max in a register across the
	// loop, since vs might alias a.
	case rules.Max:
		m := a.max
		for _, v := range vs {
			m = max(m, v)
		}
		a.max = m
	case rules.Min:
		m := a.min
		for _, v := range vs {
			m = min(m, v)
		}
		a.min = m
	case rules.Sum, rules.Avg:
		sum := a.sum
		for _, v := range vs {
			sum += v
		}
		a.sum = sum
	case rules.Count:
	case rules.Last:
		if n := len(vs) - 1; ts[n] >= a.lastT {
			a.lastT, a.last = ts[n], vs[n]
		}
	default:
		keep := r == rules.Percentile || r == rules.Quantile
		ts = ts[:len(vs)]
		for i, v := range vs {
			a.add(ts[i], v, keep)
		}
		return
	}
	a.n += len(vs)
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
	case rules.Percentile, rules.Quantile:
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

// window returns the bounds [i, j) of the samples at times ts in
// (start, end]. Bounds, not a struct of two slices: the struct went
// through the stack and stalled the evaluation's hottest loop.
func window(ts []int64, start, end int64) (i, j int) {
	j = len(ts)
	for j > 0 && ts[j-1] > end {
		j--
	}
	i = j
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
	// Scratch for across-first aggregates and quantiles, kept between
	// evaluations to spare the allocations.
	atStep []stepValue
	stepT  []int64
	stepV  []float64
	vals   []float64
}

// compute returns the aggregate over series in (start, end] and whether any
// sample was seen at all.
func (g *aggregator) compute(a *rules.Aggregate, ss []*series, start, end int64) (v float64, ok, seen bool) {
	if a.AcrossFirst {
		ts, vs, seen := g.stepSeries(a, ss, start, end)
		v, ok = g.overTime(a.Series, a.Q, ts, vs, start, end)
		return v, ok, seen
	}
	if a.Across == rules.Pool {
		g.across.reset()
		for _, sr := range ss {
			ts := sr.times()
			if i, j := window(ts, start, end); i < j {
				g.across.addPoints(a.Series, ts[i:j], sr.vals[i:j])
			}
		}
		v, ok = g.across.result(a.Series, a.Q)
		return v, ok, g.across.n > 0
	}
	g.across.reset()
	for _, sr := range ss {
		ts := sr.times()
		i, j := window(ts, start, end)
		if i == j {
			continue
		}
		ts, vs := ts[i:j], sr.vals[i:j]
		seen = true
		var sv float64
		switch a.Series {
		case rules.Rate, rules.Increase, rules.Delta, rules.Deriv, rules.PredictLinear,
			rules.Changes, rules.Resets, rules.Quantile:
			var has bool
			if sv, has = g.overTime(a.Series, a.Q, ts, vs, start, end); !has {
				continue
			}
		default:
			g.perSeries.reset()
			g.perSeries.addPoints(a.Series, ts, vs)
			sv, _ = g.perSeries.result(a.Series, a.Q)
		}
		g.across.add(ts[len(ts)-1], sv, a.Across == rules.Percentile)
	}
	v, ok = g.across.result(a.Across, a.Q)
	return v, ok, seen
}

// stepSeries reduces the series across at each step of a.Step, giving one
// series over (start, end]: step k covers (end-(k+1)·Step, end-k·Step] and
// is stamped end-k·Step. Each series takes part in a step with its latest
// sample in it; a series without a sample there is left out of that step,
// and a step without any sample is left out of the result. Collectors stamp
// a collection's samples with its scheduled time, so with the collection
// on the group's interval one step is exactly one collection.
func (g *aggregator) stepSeries(a *rules.Aggregate, ss []*series, start, end int64) ([]int64, []float64, bool) {
	step := int64(a.Step)
	if step <= 0 {
		step = 1 // not set by the loader (a hand-built rule): every timestamp is a step
	}
	// One (step, value) per series and step, sorted by step: memory
	// follows the samples, not the window's length over the step.
	at := g.atStep[:0]
	for _, sr := range ss {
		ts := sr.times()
		i, j := window(ts, start, end)
		for n := i; n < j; n++ {
			k := (end - ts[n]) / step
			if n+1 < j && (end-ts[n+1])/step == k {
				continue // a later sample of this series in the same step
			}
			at = append(at, stepValue{k, sr.vals[n]})
		}
	}
	seen := len(at) > 0
	// Oldest step first; stable, so a step adds its series in one order
	// at every evaluation.
	slices.SortStableFunc(at, func(x, y stepValue) int { return cmp.Compare(y.k, x.k) })
	outT, outV := g.stepT[:0], g.stepV[:0]
	for i := 0; i < len(at); {
		k, v, n := at[i].k, at[i].v, 1
		for i += 1; i < len(at) && at[i].k == k; i++ {
			switch a.Across {
			case rules.Min:
				v = min(v, at[i].v)
			case rules.Max:
				v = max(v, at[i].v)
			default:
				v += at[i].v
			}
			n++
		}
		switch a.Across {
		case rules.Avg:
			v /= float64(n)
		case rules.Count:
			v = float64(n)
		}
		outT = append(outT, end-k*step)
		outV = append(outV, v)
	}
	g.atStep, g.stepT, g.stepV = at, outT, outV
	return outT, outV, seen
}

type stepValue struct {
	k int64 // steps back from the evaluation time
	v float64
}

// overTime applies a time-only reducer to one series' samples (values vs
// at times ts) in the window (start, end], as Prometheus' function of the
// same name does; ok is false when there are too few samples for it.
func (g *aggregator) overTime(r rules.Reducer, q float64, ts []int64, vs []float64, start, end int64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	switch r {
	case rules.Last:
		return vs[len(vs)-1], true
	case rules.Changes, rules.Resets:
		c := 0
		for k := 1; k < len(vs); k++ {
			prev, cur := vs[k-1], vs[k]
			if r == rules.Resets && cur < prev ||
				r == rules.Changes && cur != prev && !(math.IsNaN(cur) && math.IsNaN(prev)) {
				c++
			}
		}
		return float64(c), true
	case rules.Quantile:
		g.vals = append(g.vals[:0], vs...)
		return percentile(g.vals, q), true // sorts the copy, not the store
	}
	if len(vs) < 2 {
		return 0, false
	}
	switch r {
	case rules.Rate, rules.Increase:
		inc := counterIncrease(vs)
		if r == rules.Rate {
			inc /= float64(ts[len(ts)-1]-ts[0]) / 1e9
		}
		return inc, true
	case rules.Delta:
		return delta(ts, vs, start, end), true
	case rules.Deriv:
		slope, _ := linearRegression(ts, vs, ts[0])
		return slope, true
	case rules.PredictLinear:
		slope, intercept := linearRegression(ts, vs, end)
		return slope*q + intercept, true
	}
	return 0, false
}

// delta is last - first of a gauge extrapolated to the window (start, end]
// as Prometheus' delta does: all the way to an edge when the samples reach
// to within 1.1 average intervals of it, else by half an average interval.
func delta(ts []int64, vs []float64, start, end int64) float64 {
	n := len(vs) - 1
	sampled := float64(ts[n]-ts[0]) / 1e9
	avg := sampled / float64(n)
	toStart := float64(ts[0]-start) / 1e9
	toEnd := float64(end-ts[n]) / 1e9
	if toStart >= avg*1.1 {
		toStart = avg / 2
	}
	if toEnd >= avg*1.1 {
		toEnd = avg / 2
	}
	d := vs[n] - vs[0]
	if sampled == 0 {
		return d
	}
	return d * (sampled + toStart + toEnd) / sampled
}

// linearRegression fits v = slope·x + intercept by least squares, with x
// the seconds since at, as Prometheus' deriv and predict_linear do
// (including their answer for a constant series: slope 0, no rounding).
func linearRegression(ts []int64, vs []float64, at int64) (slope, intercept float64) {
	var n, sumX, sumY, sumXY, sumX2 float64
	constY := true
	ts = ts[:len(vs)]
	for i, v := range vs {
		constY = constY && v == vs[0]
		n++
		x := float64(ts[i]-at) / 1e9
		sumX += x
		sumY += v
		sumXY += x * v
		sumX2 += x * x
	}
	if constY {
		if math.IsInf(vs[0], 0) {
			return math.NaN(), math.NaN()
		}
		return 0, vs[0]
	}
	covXY := sumXY - sumX*sumY/n
	varX := sumX2 - sumX*sumX/n
	slope = covXY / varX
	return slope, sumY/n - slope*sumX/n
}
