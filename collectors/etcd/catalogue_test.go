package etcd

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/model"
)

// The catalogue `vigil check --config` and docs/metrics.md rely on is what
// the collector really emits from a real 3-member cluster: nothing
// undeclared, no declared label missing, and every declared metric seen
// (those derived from histograms only when the interval saw observations).
// The checks are exact names and label sets, so a renamed metric fails.
func TestCatalogueMatchesWhatIsCollected(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	s := newScraper(t, c, nil)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: testTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	declared := map[string]model.MetricInfo{}
	for _, m := range append(append([]model.MetricInfo(nil), StatusMetrics...), PageMetrics...) {
		declared[m.Name] = m
	}
	seen := map[string]bool{}
	for round := range 2 {
		for i := range c.Members() {
			out, _, err := scrape(s, i, time.Unix(int64(10*round), 0))
			if err != nil {
				t.Fatalf("member %d: %v", i, err)
			}
			for _, smp := range out {
				info, ok := declared[smp.Metric]
				if !ok {
					t.Errorf("%s is collected but not in the catalogue (collectors/etcd/catalogue.go)", smp.Metric)
					continue
				}
				seen[smp.Metric] = true
				for l := range smp.Labels {
					if !slices.Contains(info.Labels, l) && !slices.Contains(MemberLabels, l) {
						t.Errorf("%s carries label %q the catalogue does not list", smp.Metric, l)
					}
				}
				if len(smp.Labels) == len(MemberLabels) && len(info.Labels) > 0 {
					t.Errorf("%s: the catalogue lists labels %v it does not carry", smp.Metric, info.Labels)
				}
			}
		}
		// Traffic, so the second collection has rates and observations.
		for k := range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			if _, err := cli.Put(ctx, fmt.Sprint("k", k), "v"); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
	// Histogram-derived values need observations in the interval, and
	// etcd exposes peer_sent_failures only once a send has failed.
	observed := map[string]bool{"etcd.network.peer_sent_failures": true, "etcd.leader.latency": true, "etcd.leader.latency.stddev": true,
		"etcd.disk.wal_fsync.mean": true, "etcd.disk.wal_fsync.p99": true,
		"etcd.disk.backend_commit.mean": true, "etcd.disk.backend_commit.p99": true}
	for name := range declared {
		if !seen[name] && !observed[name] {
			t.Errorf("%s is in the catalogue but was never collected", name)
		}
	}
}
