package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

// Shared with other packages' tests.
var (
	silentListener = testkit.SilentListener
	closedPort     = testkit.ClosedPort
	get            = testkit.Value
)

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer ok.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	silent := silentListener(t)
	closed := closedPort(t)

	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name       string
		address    string
		canConnect float64
		status     float64 // 0: no status sample expected
		protocol   string
	}{
		{"tcp open", ok.Listener.Addr().String(), 1, 0, "tcp"},
		{"tcp scheme", "tcp://" + ok.Listener.Addr().String(), 1, 0, "tcp"},
		{"tcp closed", closed, 0, 0, "tcp"},
		{"tcp to a silent server still connects", silent, 1, 0, "tcp"},
		{"http ok", ok.URL + "/health", 1, 200, "http"},
		{"http 503", unavailable.URL, 1, 503, "http"},
		{"http closed port", "http://" + closed + "/", 0, 0, "http"},
		{"http silent server", "http://" + silent + "/", 0, 0, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Addresses: []string{tc.address}})
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
			if err != nil {
				t.Fatalf("a failed probe is data, not an error: %v", err)
			}
			if v, _ := get(out, MetricCanConnect); v != tc.canConnect {
				t.Errorf("can_connect %v, want %v", v, tc.canConnect)
			}
			if lat, has := get(out, MetricLatency); has != (tc.canConnect == 1) || lat < 0 || lat > timeout.Seconds() {
				t.Errorf("latency %v (present %v)", lat, has)
			}
			code, has := get(out, MetricStatusCode)
			if tc.status == 0 && has || tc.status != 0 && code != tc.status {
				t.Errorf("status code %v (present %v), want %v", code, has, tc.status)
			}
			for _, s := range out {
				if s.Labels[LabelProtocol] != tc.protocol {
					t.Errorf("%s: protocol %q, want %q", s.Metric, s.Labels[LabelProtocol], tc.protocol)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, a := range []string{"", "localhost", "http://", "tcp://nohost"} {
		if _, err := New(Config{Addresses: []string{a}}); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}
