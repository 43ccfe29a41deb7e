package prom

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

const textPage = `# HELP etcd_server_has_leader Whether or not a leader exists.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 3
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 15
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 16
etcd_disk_wal_fsync_duration_seconds_sum 0.03
etcd_disk_wal_fsync_duration_seconds_count 16
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.0001
go_gc_duration_seconds_sum 0.5
go_gc_duration_seconds_count 7
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range"} 42
some_untyped_thing 5
`

const openMetricsPage = `# TYPE etcd_server_leader_changes_seen counter
etcd_server_leader_changes_seen_total 3
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 16
etcd_disk_wal_fsync_duration_seconds_sum 0.03
etcd_disk_wal_fsync_duration_seconds_count 16
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
# EOF
`

func serve(t *testing.T, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func find(samples []model.Sample, metric string, ls model.Labels) (float64, bool) {
	for _, s := range samples {
		if s.Metric != metric {
			continue
		}
		match := true
		for k, v := range ls {
			if s.Labels[k] != v {
				match = false
			}
		}
		if match {
			return s.Value, true
		}
	}
	return 0, false
}

func TestScrape(t *testing.T) {
	type want struct {
		metric string
		labels model.Labels
		value  float64
	}
	for _, tc := range []struct {
		name, contentType, body string
		want                    []want
		wantErr                 string
	}{
		{
			name: "text", contentType: "text/plain; version=0.0.4; charset=utf-8", body: textPage,
			want: []want{
				{"etcd_server_has_leader", nil, 1},
				{"etcd_server_leader_changes_seen_total", nil, 3},
				{"etcd_disk_wal_fsync_duration_seconds_bucket", model.Labels{"le": "0.001"}, 10},
				{"etcd_disk_wal_fsync_duration_seconds_bucket", model.Labels{"le": "+Inf"}, 16},
				{"etcd_disk_wal_fsync_duration_seconds_count", nil, 16},
				{"go_gc_duration_seconds", model.Labels{"quantile": "0.5"}, 0.0001},
				{"go_gc_duration_seconds_count", nil, 7},
				{"grpc_server_handled_total", model.Labels{"grpc_code": "OK", "grpc_method": "Range"}, 42},
				{"some_untyped_thing", nil, 5},
			},
		},
		{
			name: "openmetrics", contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8", body: openMetricsPage,
			want: []want{
				{"etcd_server_leader_changes_seen_total", nil, 3},
				{"etcd_disk_wal_fsync_duration_seconds_bucket", model.Labels{"le": "+Inf"}, 16},
				{"process_start_time_seconds", nil, 1.7e9},
			},
		},
		{name: "no content type is text", contentType: "", body: textPage, want: []want{{"etcd_server_has_leader", nil, 1}}},
		{name: "malformed text", contentType: "text/plain", body: "etcd_server_has_leader{le= 1\n", wantErr: "parse text page"},
		{name: "openmetrics without EOF", contentType: "application/openmetrics-text; version=1.0.0", body: "# TYPE a gauge\na 1\n", wantErr: "EOF"},
		{name: "binary junk", contentType: "text/plain", body: "\x00\x01\x02garbage\xff", wantErr: "parse text page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{URLs: []string{serve(t, tc.contentType, tc.body)}})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			out, err := s.Scrape(context.Background(), 0, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if len(out) != 0 {
					t.Errorf("%d samples from a bad page", len(out))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				v, ok := find(out, w.metric, w.labels)
				if !ok || v != w.value {
					t.Errorf("%s%v = %v (found %v), want %v", w.metric, w.labels, v, ok, w.value)
				}
			}
			for _, s := range out {
				if !s.Time.Equal(now) {
					t.Fatalf("%s at %v, want %v", s.Metric, s.Time, now)
				}
			}
		})
	}
}

func TestScrapeLimitsAndStatus(t *testing.T) {
	big := strings.Repeat("a_metric 1\n", 1000)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		max     int64
		wantErr string
	}{
		{"too large", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }, 100, "larger than 100 bytes"},
		{"exactly the limit", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }, int64(len(big)), ""},
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, 0, "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			s, err := New(Config{URLs: []string{srv.URL}, MaxBodyBytes: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Scrape(context.Background(), 0, time.Unix(0, 0))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestScrapeHungServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := New(Config{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if _, err := s.Scrape(ctx, 0, time.Unix(0, 0)); err == nil {
		t.Fatal("no error from a hung server")
	}
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Errorf("took %v with a %v timeout", took, timeout)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"localhost:9090", "ftp://x/metrics", "http://"} {
		if _, err := New(Config{URLs: []string{u}}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
