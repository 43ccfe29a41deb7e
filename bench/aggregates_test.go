package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// The time-only aggregates' data set: aggClusters clusters of three members,
// one sample every aggStep for aggSamples steps. Member 0 always reports;
// the others miss about one collection in ten, member 2 of the last cluster
// joins late, two members restart (their counter back to 0) and the
// database size drops by half now and then (a defragmentation).
const (
	aggClusters = 4
	aggMembers  = 3
	aggSamples  = 120
	aggStep     = 30 * time.Second
)

// aggPair is one aggregate in both languages. Across-first aggregates are
// compared at evaluation times on the step grid only: Vigil's steps end at
// the evaluation time, Prometheus' subquery steps at multiples of the step.
type aggPair struct {
	vigil, window, by string
	prom              string
	acrossFirst       bool
	// scale turns Vigil's number into Prometheus': increase does not
	// extrapolate to the window's edges in Vigil, and does in Prometheus.
	// With a step at each edge's 30 s the window is 300/270 of the steps'
	// span; the data keeps the max of the counters far from zero, where
	// Prometheus would extrapolate less (not below the counter's zero).
	scale float64
}

var aggPairs = []aggPair{
	{vigil: `deriv("db_size")`, window: "5m", prom: `deriv(db_size[5m])`},
	{vigil: `predict_linear("db_size", 3600)`, window: "10m", prom: `predict_linear(db_size[10m], 3600)`},
	{vigil: `delta("db_size")`, window: "5m", prom: `delta(db_size[5m])`},
	{vigil: `changes("leader_changes")`, window: "10m", prom: `changes(leader_changes[10m])`},
	{vigil: `resets("leader_changes")`, window: "10m", prom: `resets(leader_changes[10m])`},
	{vigil: `resets("db_size")`, window: "10m", prom: `resets(db_size[10m])`},
	{vigil: `quantile("db_size", 0.9)`, window: "5m", prom: `quantile_over_time(0.9, db_size[5m])`},
	{vigil: `max(deriv("db_size"))`, window: "5m", by: "cluster", prom: `max by (cluster) (deriv(db_size[5m]))`},
	{vigil: `sum(changes("leader_changes"))`, window: "10m", by: "cluster", prom: `sum by (cluster) (changes(leader_changes[10m]))`},
	{vigil: `min(quantile("db_size", 0.25))`, window: "5m", by: "cluster", prom: `min by (cluster) (quantile_over_time(0.25, db_size[5m]))`},
	// Across first: the etcd mixin's leader changes, and the others.
	{vigil: `increase(max("leader_changes"))`, window: "5m", by: "cluster", acrossFirst: true, scale: 300.0 / 270,
		prom: `increase(max by (cluster) (leader_changes)[5m:30s])`},
	{vigil: `rate(max("leader_changes"))`, window: "5m", by: "cluster", acrossFirst: true,
		prom: `rate(max by (cluster) (leader_changes)[5m:30s])`},
	{vigil: `resets(min("leader_changes"))`, window: "10m", by: "cluster", acrossFirst: true,
		prom: `resets(min by (cluster) (leader_changes)[10m:30s])`},
	{vigil: `changes(count("db_size"))`, window: "10m", by: "cluster", acrossFirst: true,
		prom: `changes(count by (cluster) (db_size)[10m:30s])`},
	{vigil: `deriv(avg("db_size"))`, window: "5m", by: "cluster", acrossFirst: true,
		prom: `deriv(avg by (cluster) (db_size)[5m:30s])`},
	{vigil: `predict_linear(sum("db_size"), 14400)`, window: "10m", by: "cluster", acrossFirst: true,
		prom: `predict_linear(sum by (cluster) (db_size)[10m:30s], 14400)`},
	{vigil: `delta(max("db_size"))`, window: "5m", by: "cluster", acrossFirst: true,
		prom: `delta(max by (cluster) (db_size)[5m:30s])`},
	{vigil: `quantile(min("db_size"), 0.5)`, window: "5m", by: "cluster", acrossFirst: true,
		prom: `quantile_over_time(0.5, min by (cluster) (db_size)[5m:30s])`},
	{vigil: `last(sum("db_size"))`, window: "5m", by: "cluster", acrossFirst: true,
		prom: `last_over_time(sum by (cluster) (db_size)[5m:30s])`},
}

// unit is a deterministic pseudo-random number in [0, 1) (splitmix64).
func unit(c, m, k, salt int) float64 {
	x := uint64(c)<<48 ^ uint64(m)<<40 ^ uint64(k)<<8 ^ uint64(salt)
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// aggData returns the two metrics' values, NaN where a member did not report.
func aggData() (leader, db [aggClusters][aggMembers][aggSamples]float64) {
	for c := range aggClusters {
		for m := range aggMembers {
			lv, dv := 1000+7*float64(m), 1e6*float64(c+1)
			for k := range aggSamples {
				if unit(c, m, k, 1) < 0.15 {
					lv++
				}
				if c == 1 && m == 1 && k == 50 || c == 2 && m == 2 && k == 70 {
					lv = 0 // restart
				}
				dv += 2000*float64(m+1) + 3000*unit(c, m, k, 2)
				if unit(c, m, k, 3) < 0.03 {
					dv /= 2 // defragmentation
				}
				leader[c][m][k], db[c][m][k] = lv, dv
				absent := m > 0 && unit(c, m, k, 4) < 0.1 || c == aggClusters-1 && m == 2 && k < 40
				if absent {
					leader[c][m][k], db[c][m][k] = math.NaN(), math.NaN()
				}
			}
		}
	}
	return leader, db
}

// TestTimeAggregatesMatchPrometheus evaluates each aggregate on the same
// series with Vigil's engine and with Prometheus' PromQL engine, every 10 s
// over the data once the longest window is covered, and compares every
// segment's number. Prometheus runs with a lookback of one step, which is
// how Vigil aligns series to steps: a series takes part in a step with its
// latest sample in (step - 30s, step].
func TestTimeAggregatesMatchPrometheus(t *testing.T) {
	ctx := context.Background()
	leader, db := aggData()
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(k int) time.Time { return start.Add(time.Duration(k) * aggStep) }

	// Vigil: one rule per aggregate, whose value is the aggregate.
	var y strings.Builder
	y.WriteString("groups:\n  - name: agg\n    interval: 30s\n    rules:\n")
	for i, p := range aggPairs {
		by := "[cluster, member]"
		if p.by != "" {
			by = "[" + p.by + "]"
		}
		fmt.Fprintf(&y, "      - name: A%d\n        severity: info\n        segment_by: %s\n        window: %s\n        condition: '%s != 1e300'\n",
			i, by, p.window, p.vigil)
	}
	set, err := rules.Parse([]string{"agg.yaml"}, map[string][]byte{"agg.yaml": []byte(y.String())})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)

	// Prometheus: the same samples in a TSDB.
	stor := teststorage.New(t)
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: aggStep})
	t.Cleanup(func() { ng.Close() })
	type ser struct {
		c, m int
		name string
		vals *[aggSamples]float64
	}
	var all []ser
	for c := range aggClusters {
		for m := range aggMembers {
			all = append(all, ser{c, m, "leader_changes", &leader[c][m]}, ser{c, m, "db_size", &db[c][m]})
		}
	}
	refs := make([]storage.SeriesRef, len(all))
	for k := range aggSamples {
		app := stor.AppenderV2(ctx)
		for i, s := range all {
			if v := s.vals[k]; !math.IsNaN(v) {
				ls := labels.FromStrings("__name__", s.name, "cluster", fmt.Sprint(s.c), "member", fmt.Sprint(s.m))
				ref, err := app.Append(refs[i], ls, 0, at(k).UnixMilli(), v, nil, nil, storage.AOptions{})
				if err != nil {
					t.Fatal(err)
				}
				refs[i] = ref
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	fed, compared, nonzero := 0, map[int]int{}, map[int]int{}
	for now := at(20); !now.After(at(aggSamples - 1)); now = now.Add(10 * time.Second) {
		for ; fed < aggSamples && !at(fed).After(now); fed++ {
			var batch []model.Sample
			for _, s := range all {
				if v := s.vals[fed]; !math.IsNaN(v) {
					batch = append(batch, model.Sample{Metric: s.name, Value: v, Time: at(fed),
						Labels: model.Labels{"cluster": fmt.Sprint(s.c), "member": fmt.Sprint(s.m)}})
				}
			}
			eng.Store().Append(batch...)
		}
		if err := eng.Eval(ctx, now); err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, a := range eng.Alerts() {
			if a.State == model.StateFiring {
				got[a.Rule+" "+a.Segment["cluster"]+"/"+a.Segment["member"]] = a.Value
			}
		}
		onGrid := now.Sub(start)%aggStep == 0
		for i, p := range aggPairs {
			if p.acrossFirst && !onGrid {
				continue
			}
			want := promValues(t, ng, stor, p.prom, now)
			rule := fmt.Sprintf("A%d", i)
			for seg, w := range want {
				g, ok := got[rule+" "+seg]
				if !ok {
					t.Errorf("at %v, %s for %s: Vigil has no value, Prometheus %g", now.Sub(start), p.vigil, seg, w)
					continue
				}
				if p.scale != 0 {
					g *= p.scale
				}
				if !near(g, w) {
					t.Errorf("at %v, %s for %s: Vigil %g, Prometheus %g (%s)", now.Sub(start), p.vigil, seg, g, w, p.prom)
				}
				compared[i]++
				if w != 0 {
					nonzero[i]++
				}
			}
			for k := range got {
				if seg, ok := strings.CutPrefix(k, rule+" "); ok {
					if _, ok := want[seg]; !ok {
						t.Errorf("at %v, %s for %s: Vigil %g, Prometheus has no value", now.Sub(start), p.vigil, seg, got[k])
					}
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	for i, p := range aggPairs {
		if compared[i] == 0 || nonzero[i] == 0 {
			t.Errorf("%s: compared %d times, %d of them not 0: the data does not exercise it", p.vigil, compared[i], nonzero[i])
		}
	}
}

// promValues evaluates expr at ts, keyed as the Vigil side keys segments.
func promValues(t *testing.T, ng *promql.Engine, q storage.Queryable, expr string, ts time.Time) map[string]float64 {
	t.Helper()
	qry, err := ng.NewInstantQuery(context.Background(), q, nil, expr, ts)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.Get("cluster")+"/"+s.Metric.Get("member")] = s.F
	}
	return out
}

// near compares to a relative 1e-9: the two sum in different orders.
func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b), 1)
}
