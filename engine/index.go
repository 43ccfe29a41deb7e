package engine

import (
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// segment is one alert entity of a rule: the series sharing its
// segment_by values, grouped by the metrics the condition reads.
type segment struct {
	key    string
	labels model.Labels // segment_by values
	// series[m] are the segment's series of the rule's m-th metric.
	series    [][]*series
	labelsVal ref.Val // the segment labels as a CEL map, built once
	alert     *alertState
	// lastHolds remembers the last known outcome, for keep_state in
	// `across: every`.
	lastHolds bool
	lastValue float64
	// orphan: every series of the segment expired from the store.
	orphan bool
}

// index is a rule's selection of the store: series in scope, grouped into
// segments. It is built incrementally: only series added since the last
// look are checked against the scope, once each.
type index struct {
	metrics  []string       // distinct metrics the condition reads
	aggOf    []int          // aggregate i reads metrics[aggOf[i]]
	metricIx map[string]int // metric -> position in metrics

	segments []*segment
	byKey    map[string]*segment
	scanned  int    // store.list entries already looked at
	epoch    uint64 // store.epoch the index was built for

	// flat[m] lists the series of metric m segment after segment: segment
	// k's are flat[m][bounds[m][k]:bounds[m][k+1]]. Aggregating from one
	// contiguous list lets the CPU fetch many series at once; following
	// each segment's own lists was bound by memory latency.
	flat   [][]*series
	bounds [][]int32
	dirty  bool
}

func newIndex(r *rules.Rule) *index {
	ix := &index{metricIx: map[string]int{}, byKey: map[string]*segment{}}
	for _, a := range r.Condition.Aggregates {
		m, ok := ix.metricIx[a.Metric]
		if !ok {
			m = len(ix.metrics)
			ix.metricIx[a.Metric] = m
			ix.metrics = append(ix.metrics, a.Metric)
		}
		ix.aggOf = append(ix.aggOf, m)
	}
	return ix
}

// update brings the index up to date with the store; the caller holds the
// store's read lock. It returns the scope errors met, for the rule's health.
func (ix *index) update(r *rules.Rule, s *Store) error {
	if ix.epoch != s.epoch {
		// Series were removed: rebuild, keeping the segments' alerts.
		old := ix.byKey
		ix.segments, ix.byKey, ix.scanned, ix.epoch = nil, map[string]*segment{}, 0, s.epoch
		ix.dirty = true
		defer func() {
			for k, seg := range old {
				if seg.alert == nil {
					continue
				}
				if ns, ok := ix.byKey[k]; ok {
					ns.alert, ns.lastHolds = seg.alert, seg.lastHolds
				} else {
					// The segment's series are gone for longer than the
					// retention: keep it until its alert resolves.
					seg.series = make([][]*series, len(ix.metrics))
					seg.orphan = true
					ix.segments = append(ix.segments, seg)
					ix.byKey[k] = seg
				}
			}
		}()
	}
	var scopeErr error
	var act scopeActivation
	for _, sr := range s.list[ix.scanned:] {
		m, ok := ix.metricIx[sr.metric]
		if !ok {
			continue
		}
		if r.Scope != nil {
			act.labels = types.DefaultTypeAdapter.NativeToValue(map[string]string(sr.labels))
			act.metric = types.String(sr.metric)
			out, _, err := r.Scope.Program.Eval(&act)
			if err != nil {
				// A series lacking a label the scope reads is simply
				// out of scope; only other errors are worth reporting.
				if !strings.Contains(err.Error(), "no such key") {
					scopeErr = err
				}
				continue
			}
			if out != types.True {
				continue
			}
		}
		key, segLabels, ok := segmentOf(r.SegmentBy, sr.labels)
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
	return scopeErr
}

// flatten rebuilds flat and bounds after series were added.
func (ix *index) flatten() {
	if !ix.dirty && len(ix.bounds) == len(ix.metrics) && (len(ix.bounds) == 0 || len(ix.bounds[0]) == len(ix.segments)+1) {
		return
	}
	ix.dirty = false
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

// commonLabels are the labels every series of the segment shares, such as
// host.hostName for a segment by host.mac: they make alerts readable.
func (seg *segment) commonLabels() model.Labels {
	var common model.Labels
	for _, ss := range seg.series {
		for _, sr := range ss {
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
