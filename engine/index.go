package engine

import (
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// segment is one alert entity: the series in scope sharing segment_by
// values, grouped by metric.
type segment struct {
	key    string
	labels model.Labels // segment_by values
	// series[m] are the segment's series of the index's m-th metric.
	series    [][]*series
	labelsVal ref.Val // the segment labels as a CEL map, built once
}

// index is a selection of the store: series in a scope, grouped into
// segments. Rules with the same scope and segment_by share one index, and
// share aggregates too (rule variants with another `for` or severity are
// common). It is built incrementally: only series added since the last
// look are checked against the scope, once each.
type index struct {
	scope    *rules.Scope
	by       []string
	metrics  []string       // every metric a rule of the index reads
	metricIx map[string]int // metric -> position in metrics

	segments []*segment
	byKey    map[string]*segment
	scanned  int    // store.list entries already looked at
	epoch    uint64 // store.epoch the index was built for
	// scopeErr is the last error the scope gave on a series; each series is
	// checked once, so it is kept and reported at every evaluation.
	scopeErr error
	// gen changes when segments are renumbered (a rebuild); rules holding
	// per-segment state by position realign then.
	gen uint64

	// flat[m] lists the series of metric m segment after segment: segment
	// k's are flat[m][bounds[m][k]:bounds[m][k+1]]. Aggregating from one
	// contiguous list lets the CPU fetch many series at once; following
	// each segment's own lists was bound by memory latency.
	flat   [][]*series
	bounds [][]int32
	dirty  bool

	// columns caches aggregates computed at one evaluation time, so rules
	// asking for the same aggregate over the same window compute it once.
	columns map[columnKey]*column
}

type columnKey struct {
	text   string
	window int64
	step   int64 // for across-first aggregates: rules of groups with other intervals differ
}

// column is one aggregate over every segment of an index.
type column struct {
	end     int64  // evaluation time it was computed for
	version uint64 // store version it was computed from
	vals    []float64
	seen    []bool
}

// nanValue marks an aggregate with no data in a column.
var nanValue = math.NaN()

func indexKey(r *rules.Rule) string {
	scope := ""
	if r.Scope != nil {
		scope = r.Scope.Source
	}
	return scope + "\x00" + strings.Join(r.SegmentBy, "\x00")
}

func newIndex(r *rules.Rule, metrics []string) *index {
	ix := &index{scope: r.Scope, by: r.SegmentBy, metrics: metrics, metricIx: map[string]int{},
		byKey: map[string]*segment{}, columns: map[columnKey]*column{}, dirty: true}
	for m, name := range metrics {
		ix.metricIx[name] = m
	}
	return ix
}

// update brings the index up to date with the store; the caller holds the
// store's read lock. It returns the scope errors met, for the rules' health.
func (ix *index) update(s *Store) error {
	if ix.epoch != s.epoch {
		// Series were removed: rebuild.
		ix.segments, ix.byKey, ix.scanned, ix.epoch = nil, map[string]*segment{}, 0, s.epoch
		ix.dirty = true
		ix.gen++
		ix.scopeErr = nil
	}
	if ix.scanned == len(s.list) {
		return ix.scopeErr
	}
	var act scopeActivation
	for _, sr := range s.list[ix.scanned:] {
		m, ok := ix.metricIx[sr.metric]
		if !ok {
			continue
		}
		if ix.scope != nil {
			act.labels = types.DefaultTypeAdapter.NativeToValue(map[string]string(sr.labels))
			act.metric = types.String(sr.metric)
			out, _, err := ix.scope.Program.Eval(&act)
			if err != nil {
				// A series lacking a label the scope reads is simply
				// out of scope; only other errors are worth reporting.
				if !strings.Contains(err.Error(), "no such key") {
					ix.scopeErr = fmt.Errorf("scope on %s%s: %w", sr.metric, sr.labels, err)
				}
				continue
			}
			if out != types.True {
				continue
			}
		}
		key, segLabels, ok := segmentOf(ix.by, sr.labels)
		if !ok {
			continue
		}
		seg := ix.byKey[key]
		if seg == nil {
			seg = &segment{key: key, labels: segLabels, series: make([][]*series, len(ix.metrics))}
			seg.labelsVal = types.DefaultTypeAdapter.NativeToValue(map[string]string(segLabels))
			ix.byKey[key] = seg
			ix.segments = append(ix.segments, seg)
		}
		seg.series[m] = append(seg.series[m], sr)
		ix.dirty = true
	}
	ix.scanned = len(s.list)
	return ix.scopeErr
}

// flatten rebuilds flat and bounds after series were added.
func (ix *index) flatten() {
	if !ix.dirty {
		return
	}
	ix.dirty = false
	clear(ix.columns)
	ix.flat = make([][]*series, len(ix.metrics))
	ix.bounds = make([][]int32, len(ix.metrics))
	for m := range ix.metrics {
		b := make([]int32, 0, len(ix.segments)+1)
		var fl []*series
		for _, seg := range ix.segments {
			b = append(b, int32(len(fl)))
			fl = append(fl, seg.series[m]...)
		}
		ix.flat[m], ix.bounds[m] = fl, append(b, int32(len(fl)))
	}
}

// column returns aggregate a over window (start, end] for every segment,
// computing it unless another rule already did from the same samples.
func (ix *index) column(a *rules.Aggregate, g *aggregator, start, end int64, version uint64) *column {
	key := columnKey{a.Text, end - start, int64(a.Step)}
	c := ix.columns[key]
	if c == nil {
		c = &column{end: -1}
		ix.columns[key] = c
	}
	n := len(ix.segments)
	if c.end == end && c.version == version && len(c.vals) == n {
		return c
	}
	c.end, c.version = end, version
	c.vals = append(c.vals[:0], make([]float64, n)...)
	c.seen = append(c.seen[:0], make([]bool, n)...)
	m := ix.metricIx[a.Metric]
	flat, bounds := ix.flat[m], ix.bounds[m]
	for k := range n {
		v, ok, s := g.compute(a, flat[bounds[k]:bounds[k+1]], start, end)
		if !ok {
			v = nanValue
		}
		c.vals[k], c.seen[k] = v, s
	}
	return c
}

// segmentOf returns the segment key and labels of a series, or false if the
// series lacks one of the segment_by labels.
func segmentOf(by []string, ls model.Labels) (string, model.Labels, bool) {
	if len(by) == 0 {
		return "", model.Labels{}, true
	}
	var b strings.Builder
	seg := make(model.Labels, len(by))
	for _, k := range by {
		v, ok := ls[k]
		if !ok {
			return "", nil, false
		}
		seg[k] = v
		b.WriteString(v)
		b.WriteByte(0xff)
	}
	return b.String(), seg, true
}

// reports says whether segment k has a series of any of the metrics
// (positions). It reads the flat bounds, not the segment, to stay in the
// sequential arrays the evaluation already walks.
func (ix *index) reports(k int, metrics []int) bool {
	for _, m := range metrics {
		if b := ix.bounds[m]; b[k+1] > b[k] {
			return true
		}
	}
	return false
}

// commonLabels are the labels every series of the given metrics in the
// segment shares, such as host.hostName for a segment by host.mac: they
// make alerts readable.
func (seg *segment) commonLabels(metrics []int) model.Labels {
	var common model.Labels
	for _, m := range metrics {
		for _, sr := range seg.series[m] {
			if common == nil {
				common = sr.labels.Copy()
				continue
			}
			for k, v := range common {
				if sr.labels[k] != v {
					delete(common, k)
				}
			}
		}
	}
	if common == nil {
		common = model.Labels{}
	}
	for k, v := range seg.labels {
		common[k] = v
	}
	return common
}

// lastSample is the time of the newest sample any series of the given
// metrics (positions) in the segment ever had.
func (seg *segment) lastSample(metrics []int) int64 {
	var last int64
	for _, m := range metrics {
		for _, sr := range seg.series[m] {
			last = max(last, sr.last)
		}
	}
	return last
}
