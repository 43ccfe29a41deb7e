package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

var sizes = []int{100, 1000, 10000}

// vigil is Vigil's engine over the data set, fed up to a sample.
type vigil struct {
	eng    *engine.Engine
	labels []model.Labels // per host
	fed    int            // samples appended so far
	buf    []model.Sample
}

func newVigil(tb testing.TB, hosts int) *vigil {
	tb.Helper()
	set, err := rules.Parse([]string{"etcd.yaml"}, map[string][]byte{"etcd.yaml": []byte(VigilRules)})
	if err != nil {
		tb.Fatal(err)
	}
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)
	v := &vigil{eng: eng, labels: make([]model.Labels, hosts), buf: make([]model.Sample, 0, hosts*len(Metrics))}
	for h := range hosts {
		v.labels[h] = HostLabels(h)
	}
	return v
}

// feed appends every host's samples up to and including sample k, as
// collectors would deliver them.
func (v *vigil) feed(k int) {
	for ; v.fed <= k && v.fed < Samples; v.fed++ {
		v.buf = v.buf[:0]
		t := SampleTime(v.fed)
		for h, ls := range v.labels {
			for m, name := range Metrics {
				v.buf = append(v.buf, model.Sample{Metric: name, Labels: ls, Value: Value(h, m, v.fed), Time: t})
			}
		}
		v.eng.Store().Append(v.buf...)
	}
}

func (v *vigil) firing() []string {
	var out []string
	for _, a := range v.eng.Alerts() {
		if a.State == model.StateFiring {
			out = append(out, a.Rule+" "+a.Segment["host.mac"])
		}
	}
	slices.Sort(out)
	return out
}

// prom is Prometheus' alerting rules over a TSDB holding the whole data set,
// built as Prometheus' own promql benchmarks build theirs.
type prom struct {
	rules []*promrules.AlertingRule
	query promrules.QueryFunc
}

func newProm(tb testing.TB, hosts int) *prom {
	tb.Helper()
	stor := teststorage.New(tb)
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute})
	tb.Cleanup(func() { ng.Close() })

	series := make([]labels.Labels, 0, hosts*len(Metrics))
	b := labels.NewBuilder(labels.EmptyLabels())
	for h := range hosts {
		b.Reset(labels.EmptyLabels())
		for k, v := range HostLabels(h) {
			b.Set(PromName(k), v)
		}
		for _, name := range Metrics {
			b.Set("__name__", PromName(name))
			series = append(series, b.Labels())
		}
	}
	refs := make([]storage.SeriesRef, len(series))
	ctx := context.Background()
	for k := range Samples {
		app := stor.AppenderV2(ctx)
		ts := SampleTime(k).UnixMilli()
		for i, ls := range series {
			ref, err := app.Append(refs[i], ls, 0, ts, Value(i/len(Metrics), i%len(Metrics), k), nil, nil, storage.AOptions{})
			if err != nil {
				tb.Fatal(err)
			}
			refs[i] = ref
		}
		if err := app.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	stor.ForceHeadMMap()

	p := &prom{query: promrules.EngineQueryFunc(ng, stor)}
	pp := parser.NewParser(parser.Options{})
	logger := slog.New(slog.DiscardHandler)
	for _, r := range PromRules {
		expr, err := pp.ParseExpr(r.Expr)
		if err != nil {
			tb.Fatal(err)
		}
		p.rules = append(p.rules, promrules.NewAlertingRule(r.Name, expr, 0, 0,
			labels.FromStrings("severity", r.Severity, "team", "storage"),
			labels.FromStrings("summary", r.Summary),
			labels.EmptyLabels(), "", true, logger))
	}
	return p
}

// eval is one evaluation of the four rules, one after another as a rule
// group runs them.
func (p *prom) eval(ctx context.Context, ts time.Time) error {
	for _, r := range p.rules {
		if _, err := r.Eval(ctx, 0, ts, p.query, nil, 0); err != nil {
			return fmt.Errorf("%s: %w", r.Name(), err)
		}
	}
	return nil
}

func (p *prom) firing() []string {
	var out []string
	for _, r := range p.rules {
		for _, a := range r.ActiveAlerts() {
			if a.State == promrules.StateFiring {
				out = append(out, r.Name()+" "+a.Labels.Get("host_mac"))
			}
		}
	}
	slices.Sort(out)
	return out
}

func handFiring(d *Hand) []string {
	var out []string
	for r, hosts := range d.Firing {
		for _, h := range hosts {
			mac := ""
			if h >= 0 {
				mac = HostMAC(h)
			}
			out = append(out, RuleNames[r]+" "+mac)
		}
	}
	slices.Sort(out)
	return out
}

// diff describes how got differs from want, or returns "".
func diff(want, got []string) string {
	var missing, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	trim := func(s []string) []string { return s[:min(len(s), 5)] }
	return fmt.Sprintf("%d missing %q, %d extra %q", len(missing), trim(missing), len(extra), trim(extra))
}

// TestSameFiringAlerts is the condition for comparing speeds: at every
// evaluation, Vigil, Prometheus and the hand-written loop find exactly the
// same firing (rule, host) pairs. Evaluations run every 5 s (15 s for 10,000
// hosts, where one Prometheus evaluation takes a quarter of a second) from
// the first full window to past the last sample, so they fall both on sample
// times (where left-open windows matter) and between them, and they see
// members go down, the whole fleet go down and recover, latency creep over
// the threshold, and busy periods begin and end.
func TestSameFiringAlerts(t *testing.T) {
	for _, hosts := range sizes {
		t.Run(fmt.Sprintf("hosts=%d", hosts), func(t *testing.T) {
			ctx := context.Background()
			v, p, d := newVigil(t, hosts), newProm(t, hosts), NewHand(hosts)
			firedOnce := map[string]bool{}
			evals, every := 0, 5*time.Second
			if hosts > 1000 {
				every = 15 * time.Second
			}
			for now := Start.Add(time.Minute); !now.After(End.Add(5 * time.Second)); now = now.Add(every) {
				evals++
				v.feed(int(now.Sub(Start) / Step))
				if err := v.eng.Eval(ctx, now); err != nil {
					t.Fatal(err)
				}
				if err := p.eval(ctx, now); err != nil {
					t.Fatal(err)
				}
				d.Eval(now)
				want := p.firing()
				if s := diff(want, v.firing()); s != "" {
					t.Fatalf("at %v: Vigil against Prometheus: %s", now.Sub(Start), s)
				}
				if s := diff(want, handFiring(d)); s != "" {
					t.Fatalf("at %v: hand loop against Prometheus: %s", now.Sub(Start), s)
				}
				for _, f := range want {
					firedOnce[strings.Fields(f)[0]] = true
				}
			}
			for _, r := range RuleNames {
				if !firedOnce[r] {
					t.Errorf("%s never fired in %d evaluations: the data does not exercise it", r, evals)
				}
			}
		})
	}
}

// BenchmarkAlerts times one evaluation of the four alerts over N hosts by
// each of the three, after checking they agree. Each iteration evaluates at
// a new time, as scheduled evaluations do, so nothing computed for the last
// one can be reused; the steps are small enough that every window holds the
// same six samples.
//
// Metrics: ns/host-rule is ns/op divided by hosts × 4 rules; on the vigil
// line, prom/vigil is how many times cheaper Vigil is than Prometheus and
// vigil/hand how many times dearer than the hand-written loop.
func BenchmarkAlerts(b *testing.B) {
	for _, hosts := range sizes {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			ctx := context.Background()
			v, p, d := newVigil(b, hosts), newProm(b, hosts), NewHand(hosts)
			v.feed(Samples - 1)
			if err := v.eng.Eval(ctx, End); err != nil {
				b.Fatal(err)
			}
			if err := p.eval(ctx, End); err != nil {
				b.Fatal(err)
			}
			d.Eval(End)
			if s := diff(p.firing(), v.firing()); s != "" {
				b.Fatalf("Vigil against Prometheus: %s", s)
			}
			if s := diff(p.firing(), handFiring(d)); s != "" {
				b.Fatalf("hand loop against Prometheus: %s", s)
			}
			pairs := float64(hosts * len(RuleNames))
			nsPerOp := map[string]float64{}
			report := func(b *testing.B, name string) {
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				nsPerOp[name] = ns
				b.ReportMetric(ns/pairs, "ns/host-rule")
			}

			b.Run("hand", func(b *testing.B) {
				b.ReportAllocs()
				now := End
				for b.Loop() {
					now = now.Add(100 * time.Nanosecond)
					d.Eval(now)
				}
				report(b, "hand")
			})
			b.Run("prometheus", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					// Prometheus reads time in milliseconds; wrap before the
					// next sample so every window keeps the same samples.
					if err := p.eval(ctx, End.Add(time.Duration(i%9000)*time.Millisecond)); err != nil {
						b.Fatal(err)
					}
				}
				report(b, "prometheus")
			})
			b.Run("vigil", func(b *testing.B) {
				b.ReportAllocs()
				now := End
				for b.Loop() {
					now = now.Add(100 * time.Nanosecond)
					if err := v.eng.Eval(ctx, now); err != nil {
						b.Fatal(err)
					}
				}
				report(b, "vigil")
				if ns, ok := nsPerOp["prometheus"]; ok {
					b.ReportMetric(ns/nsPerOp["vigil"], "prom/vigil")
				}
				if ns, ok := nsPerOp["hand"]; ok {
					b.ReportMetric(nsPerOp["vigil"]/ns, "vigil/hand")
				}
			})
		})
	}
}
