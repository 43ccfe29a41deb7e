package etcd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/model"
)

const testTimeout = 2 * time.Second

func newScraper(t testing.TB, c *etcdtest.Cluster, mod func(*Config)) *Scraper {
	t.Helper()
	cfg := Config{Timeout: testTimeout}
	for _, m := range c.Members() {
		cfg.Members = append(cfg.Members, Member{Endpoint: m.ClientURL})
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// scrape collects member i under the test timeout and reports how long it
// took.
func scrape(s *Scraper, i int, now time.Time) ([]model.Sample, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	out, err := s.Scrape(ctx, i, now)
	return out, time.Since(start), err
}

func value(t testing.TB, samples []model.Sample, metric string) float64 {
	t.Helper()
	for _, s := range samples {
		if s.Metric == metric {
			return s.Value
		}
	}
	t.Fatalf("no %s in %d samples", metric, len(samples))
	return 0
}

func has(samples []model.Sample, metric string) bool {
	for _, s := range samples {
		if s.Metric == metric {
			return true
		}
	}
	return false
}

func leaderLabel(t testing.TB, samples []model.Sample) string {
	t.Helper()
	for _, s := range samples {
		if s.Metric == "etcd.leader.id" {
			return s.Labels["leader"]
		}
	}
	t.Fatal("no etcd.leader.id")
	return ""
}

// TestClusterLifecycle walks one real 3-member cluster through health,
// a crashed follower, its restart and a crashed leader.
func TestClusterLifecycle(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	s := newScraper(t, c, nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("healthy", func(t *testing.T) {
		leaders := 0
		for i := range c.Members() {
			out, _, err := scrape(s, i, base)
			if err != nil {
				t.Fatalf("member %d: %v", i, err)
			}
			if v := value(t, out, "etcd.can_connect"); v != 1 {
				t.Errorf("member %d: can_connect %v", i, v)
			}
			leaders += int(value(t, out, "etcd.is_leader"))
			if v := value(t, out, "etcd.members"); v != 3 {
				t.Errorf("member %d: members %v, want 3", i, v)
			}
			for _, m := range []string{"etcd.latency", "etcd.raft.term", "etcd.db.size", "etcd.db.quota",
				"etcd.has_leader", "etcd.proposals.committed", "etcd.proposals.pending", "etcd.txn.total",
				"etcd.leader.changes", "etcd.disk.wal_fsync.p99", "etcd.disk.backend_commit.mean"} {
				if !has(out, m) {
					t.Errorf("member %d: no %s", i, m)
				}
			}
			if got := leaderLabel(t, out); got != c.Leader().ID() {
				t.Errorf("member %d: leader %s, cluster says %s", i, got, c.Leader().ID())
			}
			for _, smp := range out {
				if !smp.Time.Equal(base) {
					t.Fatalf("%s: time %v, want the collection time", smp.Metric, smp.Time)
				}
			}
		}
		if leaders != 1 {
			t.Errorf("%d members say they lead, want 1", leaders)
		}
	})

	t.Run("rates need two collections", func(t *testing.T) {
		out, _, err := scrape(s, 0, base.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"etcd.self.send.bandwidthrate", "etcd.self.recv.bandwidthrate", "etcd.self.send.pkgrate"} {
			if v := value(t, out, m); v < 0 {
				t.Errorf("%s = %v", m, v)
			}
		}
	})

	leader := c.Leader()
	var follower int
	for i, m := range c.Members() {
		if m != leader {
			follower = i
			break
		}
	}

	t.Run("stopped follower", func(t *testing.T) {
		c.Members()[follower].Stop()
		out, took, err := scrape(s, follower, base.Add(20*time.Second))
		if err == nil {
			t.Fatal("no error from a stopped member")
		}
		if v := value(t, out, "etcd.can_connect"); v != 0 {
			t.Errorf("can_connect %v, want 0", v)
		}
		if took > testTimeout+500*time.Millisecond {
			t.Errorf("took %v, timeout %v", took, testTimeout)
		}
		for i := range c.Members() {
			if i == follower {
				continue
			}
			out, _, err := scrape(s, i, base.Add(20*time.Second))
			if err != nil || value(t, out, "etcd.can_connect") != 1 {
				t.Errorf("member %d: healthy peer affected: %v", i, err)
			}
		}
	})

	t.Run("restarted follower", func(t *testing.T) {
		c.Members()[follower].Restart(t)
		// The member is ready; its gRPC client may need one redial.
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			var out []model.Sample
			if out, _, err = scrape(s, follower, base.Add(30*time.Second)); err == nil {
				if v := value(t, out, "etcd.can_connect"); v != 1 {
					t.Fatalf("can_connect %v", v)
				}
				return
			}
		}
		t.Fatalf("restarted member still failing: %v", err)
	})

	t.Run("leader change", func(t *testing.T) {
		old := c.Leader()
		var other int
		for i, m := range c.Members() {
			if m != old {
				other = i
				break
			}
		}
		before, _, err := scrape(s, other, base.Add(40*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		changes := value(t, before, "etcd.leader.changes")
		oldID := leaderLabel(t, before)
		old.Stop()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			out, _, err := scrape(s, other, base.Add(50*time.Second))
			if err != nil {
				continue
			}
			if id := leaderLabel(t, out); id != oldID && id != "0" {
				if v := value(t, out, "etcd.leader.changes"); v <= changes {
					t.Errorf("leader changes %v, was %v", v, changes)
				}
				return
			}
		}
		t.Fatal("no new leader seen")
	})
}

func TestUsernamePassword(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"right password", "rootpw", true},
		{"wrong password", "nope", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScraper(t, c, func(cfg *Config) { cfg.Username, cfg.Password = "root", tc.password })
			out, _, err := scrape(s, 0, time.Unix(0, 0))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			want := 0.0
			if tc.ok {
				want = 1
			}
			if v := value(t, out, "etcd.can_connect"); v != want {
				t.Errorf("can_connect %v, want %v", v, want)
			}
			if !tc.ok && !strings.Contains(err.Error(), "authentication failed") {
				t.Errorf("error does not say why: %v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no members", Config{Timeout: time.Second}, "no members"},
		{"no timeout", Config{Members: []Member{{Endpoint: "http://x:2379"}}}, "timeout"},
		{"bare host", Config{Timeout: time.Second, Members: []Member{{Endpoint: "x:2379"}}}, "must start with http"},
		{"half auth", Config{Timeout: time.Second, Members: []Member{{Endpoint: "http://x:2379"}}, Username: "u"}, "username and password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkCollectCycle(b *testing.B) {
	c := etcdtest.StartCluster(b, 3)
	s := newScraper(b, c, nil)
	now := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		for i := range c.Members() {
			if _, _, err := scrape(s, i, now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseEtcdMetrics(b *testing.B) {
	page, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := parsePage(bytes.NewReader(page), nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = derive(p, nil, 0)
	}
}
