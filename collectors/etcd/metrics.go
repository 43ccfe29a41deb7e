package etcd

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/model"
)

// Families read from a member's /metrics page, by the Vigil metric they
// become. Counters are summed over their labels.
var (
	pageValues = []struct{ metric, family string }{
		{"etcd.has_leader", "etcd_server_has_leader"},
		{"etcd.leader.changes", "etcd_server_leader_changes_seen_total"},
		{"etcd.proposals.committed", "etcd_server_proposals_committed_total"},
		{"etcd.proposals.applied", "etcd_server_proposals_applied_total"},
		{"etcd.proposals.pending", "etcd_server_proposals_pending"},
		{"etcd.proposals.failed", "etcd_server_proposals_failed_total"},
		{"etcd.txn.total", "etcd_mvcc_txn_total"},
		{"etcd.heartbeat.send_failures", "etcd_server_heartbeat_send_failures_total"},
		{"etcd.network.active_peers", "etcd_network_active_peers"},
		{"etcd.network.peer_sent_failures", "etcd_network_peer_sent_failures_total"},
	}
	// Per-second rates of summed counters between two collections.
	pageRates = []struct{ metric, family string }{
		{"etcd.self.send.bandwidthrate", "etcd_network_peer_sent_bytes_total"},
		{"etcd.self.recv.bandwidthrate", "etcd_network_peer_received_bytes_total"},
		{"etcd.self.send.pkgrate", "grpc_server_msg_sent_total"},
		{"etcd.self.recv.pkgrate", "grpc_server_msg_received_total"},
	}
	// Duration histograms summarised as mean and 99th percentile.
	pageDurations = []struct{ metric, family string }{
		{"etcd.disk.wal_fsync", "etcd_disk_wal_fsync_duration_seconds"},
		{"etcd.disk.backend_commit", "etcd_disk_backend_commit_duration_seconds"},
	}
)

const (
	rttFamily   = "etcd_network_peer_round_trip_time_seconds"
	quotaFamily = "etcd_server_quota_backend_bytes"
	// maxPage bounds what is read of a /metrics page; a real member's is
	// a few hundred KB.
	maxPage = 16 << 20
)

// hist is one histogram series: cumulative bucket counts by upper bound.
type hist struct {
	bounds []float64
	cum    []float64
	sum    float64
	count  float64
}

// page is what Vigil keeps of one /metrics page.
type page struct {
	values map[string]float64 // by family name, summed over series
	hists  map[string]hist    // by family name, or family+"/"+peer for RTT
	peers  []string           // peers with an RTT histogram, sorted
}

// wanted lists every family parsePage keeps.
var wanted = func() map[string]bool {
	w := map[string]bool{rttFamily: true, quotaFamily: true}
	for _, v := range pageValues {
		w[v.family] = true
	}
	for _, v := range pageRates {
		w[v.family] = true
	}
	for _, v := range pageDurations {
		w[v.family] = true
	}
	return w
}()

// allFamilies reads every family parsePage knows.
var allFamilies = func() *prom.Selection {
	var names []string
	for f := range wanted {
		names = append(names, f)
	}
	return prom.NewSelection(names)
}()

// PageFamilies lists the families of a member's /metrics page that the
// named Vigil metrics are derived from; none means the page is not needed.
func PageFamilies(metrics []string) []string {
	need := map[string]bool{}
	for _, m := range metrics {
		for _, v := range pageValues {
			if v.metric == m {
				need[v.family] = true
			}
		}
		for _, v := range pageRates {
			if v.metric == m {
				need[v.family] = true
			}
		}
		for _, v := range pageDurations {
			if m == v.metric+".mean" || m == v.metric+".p99" {
				need[v.family] = true
			}
		}
		switch m {
		case "etcd.leader.latency", "etcd.leader.latency.stddev":
			need[rttFamily] = true
		case "etcd.db.quota", "etcd.db.quota_used_ratio":
			need[quotaFamily] = true // etcd before 3.6 has it only there
		}
	}
	out := make([]string, 0, len(need))
	for f := range need {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// parsePage reads a member's Prometheus text page, parsing only the
// families sel keeps (nil: every family Vigil derives a metric from);
// the others cost a scan for their line ends. A page that does not parse
// is an error; missing families are not (older etcd lacks some).
func parsePage(r io.Reader, sel *prom.Selection) (*page, error) {
	if sel == nil {
		sel = allFamilies
	}
	parser := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(prom.Filter(io.LimitReader(r, maxPage), sel))
	if err != nil {
		return nil, fmt.Errorf("parse metrics page: %w", err)
	}
	p := &page{values: map[string]float64{}, hists: map[string]hist{}}
	for name, f := range fams {
		if !wanted[name] {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.Histogram != nil:
				key := name
				if name == rttFamily {
					peer := labelValue(m, "To")
					key = name + "/" + peer
					p.peers = append(p.peers, peer)
				}
				p.hists[key] = toHist(m.Histogram)
			case m.Counter != nil:
				p.values[name] += m.Counter.GetValue()
			case m.Gauge != nil:
				p.values[name] += m.Gauge.GetValue()
			case m.Untyped != nil:
				p.values[name] += m.Untyped.GetValue()
			}
		}
	}
	sort.Strings(p.peers)
	return p, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func toHist(h *dto.Histogram) hist {
	out := hist{sum: h.GetSampleSum(), count: float64(h.GetSampleCount())}
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.cum = append(out.cum, float64(b.GetCumulativeCount()))
	}
	if n := len(out.bounds); n == 0 || !math.IsInf(out.bounds[n-1], 1) {
		out.bounds = append(out.bounds, math.Inf(1))
		out.cum = append(out.cum, out.count)
	}
	return out
}

// since returns the observations made after prev; with no usable prev
// (first collection, different buckets, or a counter reset) it returns h,
// everything since the member started.
func (h hist) since(prev hist, ok bool) hist {
	if !ok || len(prev.cum) != len(h.cum) || prev.count > h.count {
		return h
	}
	d := hist{bounds: h.bounds, cum: make([]float64, len(h.cum)), sum: h.sum - prev.sum, count: h.count - prev.count}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - prev.cum[i]
	}
	return d
}

// quantile interpolates linearly inside the bucket holding rank q*count,
// as Prometheus' histogram_quantile does.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	i := sort.SearchFloat64s(h.cum, rank)
	if i >= len(h.bounds) {
		i = len(h.bounds) - 1
	}
	if math.IsInf(h.bounds[i], 1) {
		// Past the last finite bound: the best statement is that bound.
		if i == 0 {
			return math.NaN()
		}
		return h.bounds[i-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.bounds[i-1], h.cum[i-1]
	}
	inBucket := h.cum[i] - below
	if inBucket == 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-below)/inBucket
}

// stddev approximates the standard deviation from bucket midpoints: the
// histogram keeps no squares, so this is the best the page allows.
func (h hist) stddev() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	mids := make([]float64, len(h.bounds))
	counts := make([]float64, len(h.bounds))
	lower, below, mean := 0.0, 0.0, 0.0
	for i, ub := range h.bounds {
		mid := (lower + ub) / 2
		if math.IsInf(ub, 1) {
			mid = lower
		}
		mids[i], counts[i] = mid, h.cum[i]-below
		mean += mids[i] * counts[i]
		lower, below = ub, h.cum[i]
	}
	mean /= h.count
	v := 0.0
	for i := range mids {
		d := mids[i] - mean
		v += counts[i] * d * d
	}
	return math.Sqrt(v / h.count)
}

// derive turns a page, and the previous page of the same member dt
// seconds earlier (nil on the first collection), into samples.
func derive(cur, prev *page, dt float64) []model.Sample {
	var out []model.Sample
	add := func(metric string, v float64, ls model.Labels) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		out = append(out, model.Sample{Metric: metric, Value: v, Labels: ls})
	}
	for _, pv := range pageValues {
		if v, ok := cur.values[pv.family]; ok {
			add(pv.metric, v, nil)
		}
	}
	if prev != nil && dt > 0 {
		for _, pr := range pageRates {
			v, ok1 := cur.values[pr.family]
			p, ok2 := prev.values[pr.family]
			if ok1 && ok2 && v >= p {
				add(pr.metric, (v-p)/dt, nil)
			}
		}
	}
	for _, pd := range pageDurations {
		h, ok := cur.hists[pd.family]
		if !ok {
			continue
		}
		var ph hist
		var havePrev bool
		if prev != nil {
			ph, havePrev = prev.hists[pd.family]
		}
		d := h.since(ph, havePrev)
		if d.count == 0 {
			continue
		}
		add(pd.metric+".mean", d.sum/d.count, nil)
		add(pd.metric+".p99", d.quantile(0.99), nil)
	}
	for _, peer := range cur.peers {
		key := rttFamily + "/" + peer
		var ph hist
		var havePrev bool
		if prev != nil {
			ph, havePrev = prev.hists[key]
		}
		d := cur.hists[key].since(ph, havePrev)
		if d.count == 0 {
			continue
		}
		ls := model.Labels{"peer": peer}
		add("etcd.leader.latency", d.sum/d.count, ls)
		add("etcd.leader.latency.stddev", d.stddev(), model.Labels{"peer": peer})
	}
	return out
}

// formatID prints a member ID as etcd does.
func formatID(id uint64) string { return strconv.FormatUint(id, 16) }
