package etcd

import (
	"context"
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHungMember(t *testing.T) {
	// Accepts connections and never says a word, as a wedged process does.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	const timeout = 300 * time.Millisecond
	s, err := New(Config{Timeout: timeout, Members: []Member{{Endpoint: "http://" + l.Addr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	out, err := s.Scrape(ctx, 0, time.Unix(0, 0))
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Errorf("took %v with a %v timeout", took, timeout)
	}
	if err == nil {
		t.Fatal("no error from a hung member")
	}
	if v := value(t, out, "etcd.can_connect"); v != 0 {
		t.Errorf("can_connect %v", v)
	}
}

func TestParseCapturedPage(t *testing.T) {
	f, err := os.Open("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := parsePage(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.peers) == 0 {
		t.Fatal("no peer RTT histograms")
	}
	out := derive(p, nil, 0)
	for _, m := range []string{"etcd.has_leader", "etcd.proposals.applied", "etcd.txn.total",
		"etcd.leader.latency", "etcd.leader.latency.stddev", "etcd.disk.wal_fsync.mean", "etcd.disk.wal_fsync.p99"} {
		if !has(out, m) {
			t.Errorf("no %s", m)
		}
	}
	for _, s := range out {
		if s.Metric == "etcd.leader.latency" && (s.Labels["peer"] == "" || s.Value <= 0 || s.Value > 1) {
			t.Errorf("implausible %s%v = %v", s.Metric, s.Labels, s.Value)
		}
	}
	if has(out, "etcd.self.send.bandwidthrate") {
		t.Error("a rate from a single page")
	}
}

func TestDeriveRatesAndWindows(t *testing.T) {
	page1 := `# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_network_peer_sent_bytes_total{To="a"} 100
etcd_network_peer_sent_bytes_total{To="b"} 100
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.01"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 10
etcd_disk_wal_fsync_duration_seconds_sum 0.005
etcd_disk_wal_fsync_duration_seconds_count 10
`
	// 10 s later: 1000 more bytes and 10 slow fsyncs, all in (0.001, 0.01].
	page2 := `# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_network_peer_sent_bytes_total{To="a"} 600
etcd_network_peer_sent_bytes_total{To="b"} 600
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.01"} 20
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 20
etcd_disk_wal_fsync_duration_seconds_sum 0.055
etcd_disk_wal_fsync_duration_seconds_count 20
`
	p1, err := parsePage(strings.NewReader(page1), nil)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := parsePage(strings.NewReader(page2), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := derive(p2, p1, 10)
	for _, tc := range []struct {
		metric string
		want   float64
	}{
		{"etcd.self.send.bandwidthrate", 100},
		{"etcd.disk.wal_fsync.mean", 0.005},
		{"etcd.disk.wal_fsync.p99", 0.001 + 0.009*0.99},
	} {
		if got := value(t, out, tc.metric); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.metric, got, tc.want)
		}
	}
	// A counter reset (member restarted) gives no rate rather than a negative one.
	if has(derive(p1, p2, 10), "etcd.self.send.bandwidthrate") {
		t.Error("rate across a counter reset")
	}
}

func TestHistogramQuantileAndStddev(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name   string
		h      hist
		q      float64
		want   float64
		stddev float64
	}{
		{"all in first bucket", hist{bounds: []float64{1, 2, inf}, cum: []float64{4, 4, 4}, count: 4}, 0.5, 0.5, 0},
		{"split evenly", hist{bounds: []float64{1, 3, inf}, cum: []float64{5, 10, 10}, count: 10}, 0.75, 2, 0.75},
		{"beyond last bound", hist{bounds: []float64{1, inf}, cum: []float64{0, 3}, count: 3}, 0.99, 1, 0},
		{"empty", hist{bounds: []float64{1, inf}, cum: []float64{0, 0}}, 0.5, math.NaN(), math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.quantile(tc.q); !same(got, tc.want) {
				t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
			if got := tc.h.stddev(); !same(got, tc.stddev) {
				t.Errorf("stddev = %v, want %v", got, tc.stddev)
			}
		})
	}
}

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-9
}

func TestMalformedPage(t *testing.T) {
	_, err := parsePage(strings.NewReader("etcd_server_has_leader{ 1\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "parse metrics page") {
		t.Fatalf("err = %v", err)
	}
}
