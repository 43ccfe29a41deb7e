package engine_test

import (
	"testing"
	"time"
)

// TestFixes holds scenarios that failed on the engine as first written
// (commit 71baa00); see each comment.
func TestFixes(t *testing.T) {
	const down = "name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"up\") == 0\n"
	tests := []struct {
		name  string
		rules []string
		tl    timeline
		want  map[string]string
	}{
		{
			// keep_firing_for counts from the first evaluation at which the
			// condition no longer holds (as Prometheus does), not from the
			// last at which it held: cleared at 1m, kept 3m, resolved at 4m.
			name:  "keep_firing_for counts from when the condition cleared",
			rules: []string{down + "keep_firing_for: 3m"},
			tl:    timeline{series: []in{{"up", "host=a", "0 1 1 1 1 1"}}},
			want:  map[string]string{"a": "F F F F R ."},
		},
		{
			// A host that stops reporting altogether is what no_data:
			// alerting is for: it must keep firing while the host stays
			// silent, not resolve once its samples leave the store.
			name:  "no_data alerting keeps firing for a host that vanished",
			rules: []string{down + "no_data: alerting"},
			tl:    timeline{series: []in{{"up", "host=a", "1 _x20"}}},
			want:  map[string]string{"a": ". F F F F F F F F F F F F F F F F F F F F"},
		},
		{
			name:  "every: a segment going silent still counts with no_data alerting",
			rules: []string{down + "across: every\nno_data: alerting"},
			tl: timeline{series: []in{
				{"up", "host=a", "0 0 0 0 0 0 0"},
				{"up", "host=b", "0 0 0 _ _ _ _"},
			}},
			want: map[string]string{"": "F2 F2 F2 F2 F2 F2 F2"},
		},
		{
			// One sample in the window is not enough for a rate: that is
			// no data, not a failed evaluation (checked below: healthy).
			name:  "rate over a single sample is no data",
			rules: []string{"name: R\nseverity: low\nsegment_by: [host]\nwindow: 10m\ncondition: rate(\"req\") > 0.8\nno_data: alerting"},
			tl:    timeline{series: []in{{"req", "host=a", "0 60"}}},
			want:  map[string]string{"a": "F F"},
		},
		{
			name:  "one of two metrics without samples is no data, not an error",
			rules: []string{"name: R\nseverity: high\nsegment_by: [host]\ncondition: max(\"a\") == 0 || max(\"b\") == 0\nno_data: ok"},
			tl:    timeline{series: []in{{"a", "host=x", "1 0"}}, step: time.Minute},
			want:  map[string]string{"x": ". F"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.tl.run(t, ruleSet(t, tc.rules...), 0)
			r.checkTraces(t, tc.want)
			for i, h := range r.health {
				if !h.OK {
					t.Errorf("rule R unhealthy at %v: %s", r.times[i].Sub(base), h.Err)
				}
			}
		})
	}
}
