// Package bench compares Vigil's rule evaluation with Prometheus' alerting
// rules and with a hand-written loop, on one synthetic etcd fleet and the
// same four alerts. It is its own module so that Vigil never depends on
// Prometheus; see alerts_test.go for the correctness check and the
// benchmarks, and BENCHMARKS.md for the figures.
//
// This file holds what is common to the three: the data, the alerts in both
// languages, and the hand-written loop.
package bench

import (
	"fmt"
	"strings"
	"time"
)

// The data set: every host reports ten etcd metrics, Samples samples Step
// apart, from Start to End.
const (
	Samples     = 60
	Step        = 10 * time.Second
	ClusterSize = 3
)

// Start is the time of the first sample.
var Start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// End is the time of the last sample, where the benchmarks evaluate.
var End = Start.Add((Samples - 1) * Step)

// Metrics are the ten metrics of every host, with Vigil's dotted names.
var Metrics = []string{
	"etcd.can_connect", "etcd.leader.latency", "etcd.txn.total",
	"etcd.self.send.bandwidthrate", "etcd.self.recv.bandwidthrate", "etcd.db_dir.size_bytes",
	"etcd.db.size_in_use", "etcd.db.quota", "etcd.proposals.pending", "etcd.has_leader",
}

// Indexes in Metrics of the three metrics the alerts read.
const (
	CanConnect = 0
	Latency    = 1
	Txn        = 2
)

// PromName maps a dotted Vigil name (metric or label) to the Prometheus
// name the same data carries there: dots become underscores.
func PromName(s string) string { return strings.ReplaceAll(s, ".", "_") }

// HostLabels are host h's labels, with Vigil's dotted names.
func HostLabels(h int) map[string]string {
	return map[string]string{
		"agent.tag.role": "etcd",
		"cluster":        fmt.Sprintf("c%05d", h/ClusterSize),
		"host.mac":       HostMAC(h),
		"host.hostName":  fmt.Sprintf("etcd-%05d", h),
	}
}

// HostMAC is host h's host.mac label, the segment of per-host alerts.
func HostMAC(h int) string {
	return fmt.Sprintf("02:00:00:%02x:%02x:%02x", h>>16&0xff, h>>8&0xff, h&0xff)
}

// down says whether host h fails its health check at sample k: 1 % of the
// fleet all the time, another 1 % from sample 45 on, and every member during
// an outage from sample 20 to 29 (so the every-member alert fires for a
// while, then resolves).
func down(h, k int) bool {
	return h%100 == 7 || (h%100 == 13 && k >= 45) || (k >= 20 && k < 30)
}

// txnRate is host h's transactions per second between samples k-1 and k:
// 5 % of the hosts are busy all the time, another 5 % from sample 30 to 39.
func txnRate(h, k int) float64 {
	if h%20 == 1 || (h%20 == 2 && k >= 30 && k < 40) {
		return 180
	}
	return 40
}

// Value is host h's metric m at sample k.
func Value(h, m, k int) float64 {
	switch Metrics[m] {
	case "etcd.can_connect":
		if down(h, k) {
			return 0
		}
		return 1
	case "etcd.leader.latency":
		switch {
		case h%50 == 3: // 2 % always slow
			return 0.25 + 0.01*float64(k%5)
		case h%50 == 11: // 2 % slowly degrading: the 1m average passes 0.1 at sample 28
			return 0.05 + 0.002*float64(k)
		}
		return 0.01 + 0.001*float64(k%3)
	case "etcd.txn.total":
		// A counter; 5 % of the hosts restart (reset to zero) at sample 35.
		v := 1e6 + float64(h)*1000
		for j := 1; j <= k; j++ {
			if h%20 == 5 && j == 35 {
				v = 0
			}
			v += txnRate(h, j) * Step.Seconds()
		}
		return v
	case "etcd.self.send.bandwidthrate", "etcd.self.recv.bandwidthrate":
		if down(h, k) {
			return 0
		}
		return 50 + float64(k)
	case "etcd.db_dir.size_bytes":
		return 1e9 + float64(h%10)*1e9
	case "etcd.db.size_in_use":
		return 1e9 + float64(h%5)*0.25e9
	case "etcd.db.quota":
		return 2e9
	default:
		return float64(k)
	}
}

// SampleTime is the time of sample k.
func SampleTime(k int) time.Time { return Start.Add(time.Duration(k) * Step) }

// The four alerts. Rule names are the same in both languages; each fires per
// host (segment host.mac), except ServiceUnavailable, which is one alert for
// the whole fleet.
const (
	MemberUnreachable  = "EtcdMemberUnreachable"
	MemberLatencyHigh  = "EtcdMemberLatencyHigh"
	TxnRateHigh        = "EtcdTxnRateHigh"
	ServiceUnavailable = "EtcdServiceUnavailable"
)

// RuleNames lists the alerts in evaluation order.
var RuleNames = []string{MemberUnreachable, MemberLatencyHigh, TxnRateHigh, ServiceUnavailable}

// VigilRules is the four alerts as a Vigil rule file. for is 0, so an alert
// fires at the first evaluation where its condition holds, as in PromRules.
const VigilRules = `groups:
  - name: etcd
    interval: 10s
    rules:
      - name: EtcdMemberUnreachable
        severity: high
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        window: 1m
        condition: max("etcd.can_connect") == 0
        labels:
          team: storage
        annotations:
          summary: 'etcd member {{ label "host.hostName" }} is unreachable'
      - name: EtcdMemberLatencyHigh
        severity: medium
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        window: 1m
        condition: avg("etcd.leader.latency") > 0.1
        labels:
          team: storage
        annotations:
          summary: 'etcd leader latency to {{ label "host.hostName" }} is {{ value }}s'
      - name: EtcdTxnRateHigh
        severity: low
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        window: 1m
        condition: avg(rate("etcd.txn.total")) > 100
        labels:
          team: storage
        annotations:
          summary: 'etcd member {{ label "host.hostName" }} runs {{ value }} txn/s'
      - name: EtcdServiceUnavailable
        severity: critical
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        across: every
        window: 1m
        condition: max("etcd.can_connect") == 0
        labels:
          team: storage
        annotations:
          summary: every etcd member is unreachable
`

// PromRule is one alert as a Prometheus alerting rule.
type PromRule struct {
	Name, Expr, Severity, Summary string
}

// PromRules are the same four alerts in PromQL. Windows are left-open in
// both (Prometheus 3 range selectors and Vigil windows hold (t-1m, t]).
// Prometheus' rate extrapolates to the window's edges and Vigil's does not;
// the data's rates (40 or 180 per second, samples exactly 10 s apart) keep
// both far from the threshold, so they agree. For "every member down" we
// give Prometheus its cheapest correct form, one selector and one max,
// rather than count(... == 0) == count(...), which reads the data twice.
var PromRules = []PromRule{
	{MemberUnreachable, `max_over_time(etcd_can_connect{agent_tag_role="etcd"}[1m]) == 0`,
		"high", `etcd member {{ $labels.host_hostName }} is unreachable`},
	{MemberLatencyHigh, `avg_over_time(etcd_leader_latency{agent_tag_role="etcd"}[1m]) > 0.1`,
		"medium", `etcd leader latency to {{ $labels.host_hostName }} is {{ $value }}s`},
	{TxnRateHigh, `rate(etcd_txn_total{agent_tag_role="etcd"}[1m]) > 100`,
		"low", `etcd member {{ $labels.host_hostName }} runs {{ $value }} txn/s`},
	{ServiceUnavailable, `max(max_over_time(etcd_can_connect{agent_tag_role="etcd"}[1m])) == 0`,
		"critical", `every etcd member is unreachable`},
}

// Hand is the lower bound: the same four alerts computed by a loop written
// for exactly them, over plain slices holding all Samples samples of the
// three metrics they read.
type Hand struct {
	hosts int
	ts    []int64   // [host][metric][sample], unix nanoseconds
	vs    []float64 // same layout
	// Firing[r] lists the hosts for which RuleNames[r] fires (-1 for the
	// fleet-wide alert), as of the last Eval.
	Firing [4][]int
}

var handMetrics = []int{CanConnect, Latency, Txn}

// NewHand builds the hand loop's slices for hosts hosts.
func NewHand(hosts int) *Hand {
	n := hosts * len(handMetrics) * Samples
	d := &Hand{hosts: hosts, ts: make([]int64, n), vs: make([]float64, n)}
	for h := range hosts {
		for i, m := range handMetrics {
			for k := range Samples {
				j := (h*len(handMetrics)+i)*Samples + k
				d.ts[j] = SampleTime(k).UnixNano()
				d.vs[j] = Value(h, m, k)
			}
		}
	}
	for r := range d.Firing {
		d.Firing[r] = make([]int, 0, hosts)
	}
	return d
}

// window returns host h's samples of handMetrics[i] in (start, end].
func (d *Hand) window(h, i int, start, end int64) ([]int64, []float64) {
	o := (h*len(handMetrics) + i) * Samples
	ts, vs := d.ts[o:o+Samples], d.vs[o:o+Samples]
	j := len(ts)
	for j > 0 && ts[j-1] > end {
		j--
	}
	k := j
	for k > 0 && ts[k-1] > start {
		k--
	}
	return ts[k:j], vs[k:j]
}

// Eval computes which alerts fire at now into d.Firing.
func (d *Hand) Eval(now time.Time) {
	for r := range d.Firing {
		d.Firing[r] = d.Firing[r][:0]
	}
	end := now.UnixNano()
	start := end - int64(time.Minute)
	allDown, seen := true, 0
	for h := range d.hosts {
		if _, vs := d.window(h, 0, start, end); len(vs) > 0 {
			seen++
			m := vs[0]
			for _, v := range vs[1:] {
				m = max(m, v)
			}
			if m == 0 {
				d.Firing[0] = append(d.Firing[0], h)
			} else {
				allDown = false
			}
		} else {
			allDown = false
		}
		if _, vs := d.window(h, 1, start, end); len(vs) > 0 {
			s := 0.0
			for _, v := range vs {
				s += v
			}
			if s/float64(len(vs)) > 0.1 {
				d.Firing[1] = append(d.Firing[1], h)
			}
		}
		if ts, vs := d.window(h, 2, start, end); len(vs) > 1 {
			inc := 0.0
			for k := 1; k < len(vs); k++ {
				if dv := vs[k] - vs[k-1]; dv >= 0 {
					inc += dv
				} else {
					inc += vs[k]
				}
			}
			if inc/(float64(ts[len(ts)-1]-ts[0])/1e9) > 100 {
				d.Firing[2] = append(d.Firing[2], h)
			}
		}
	}
	if allDown && seen > 0 {
		d.Firing[3] = append(d.Firing[3], -1)
	}
}
