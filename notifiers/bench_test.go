package notifiers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/silences"
)

// BenchmarkRouteAndGroup measures one Process of 10,000 alert state
// changes: 100 rules x 100 segments flipping between firing and resolved,
// each routed by its notify list plus two config routes, with an inhibit
// rule to evaluate. One op = 10,000 state changes.
func BenchmarkRouteAndGroup(b *testing.B) { benchRouteAndGroup(b) }

// BenchmarkRouteAndGroupSilenced is BenchmarkRouteAndGroup with 1,000
// active one-host silences, one of which mutes a member of every rule.
func BenchmarkRouteAndGroupSilenced(b *testing.B) {
	st := silences.NewStore()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		host := fmt.Sprintf("other%03d", i) // no alert has it
		if i == 7 {
			host = "m007"
		}
		m, err := silences.NewMatcher("member", "=", host)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Add(silences.Silence{Matchers: []silences.Matcher{m}, EndsAt: now.Add(1000 * time.Hour),
			CreatedBy: "bench", Comment: "maintenance"}, now); err != nil {
			b.Fatal(err)
		}
	}
	benchRouteAndGroup(b, notifiers.WithSilences(st))
}

func benchRouteAndGroup(b *testing.B, opts ...notifiers.Option) {
	opts = append([]notifiers.Option{notifiers.WithConsoleWriter(io.Discard), notifiers.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	d, err := notifiers.Build(notifiers.Config{
		GroupWait: time.Hour, GroupBy: []string{"cluster"},
		Channels: []notifiers.ChannelConfig{
			{Name: "oncall-slack", Console: &console.Config{}},
			{Name: "oncall-email", Console: &console.Config{}},
			{Name: "ops-webhook", Console: &console.Config{}},
		},
		Routes: []notifiers.RouteConfig{
			{Match: notifiers.MatchConfig{Severity: []string{"critical"}}, Channels: []string{"oncall-email"}},
			{Match: notifiers.MatchConfig{Labels: map[string]string{"cluster": "prod"}}, Channels: []string{"ops-webhook"}},
		},
		Inhibit: []notifiers.InhibitConfig{{
			Source: notifiers.MatchConfig{Rules: []string{"ClusterDown"}},
			Target: notifiers.MatchConfig{Severity: []string{"high"}}, Equal: []string{"cluster"},
		}},
	}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background()) //nolint:errcheck
	var firing, resolved []model.Alert
	sev := []string{"critical", "high", "medium", "low", "info"}
	for r := range 100 {
		rule := fmt.Sprintf("Rule%03d", r)
		for s := range 100 {
			seg := model.Labels{"member": fmt.Sprintf("m%03d", s)}
			a := model.Alert{Fingerprint: model.Fingerprint(rule, seg), Rule: rule, Severity: sev[r%5],
				State: model.StateFiring, Segment: seg, Notify: []string{"oncall-slack"},
				Labels: model.Labels{"alertname": rule, "severity": sev[r%5], "cluster": []string{"prod", "staging"}[s%2], "member": seg["member"]}}
			firing = append(firing, a)
			a.State = model.StateResolved
			resolved = append(resolved, a)
		}
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Minute)
		if i%2 == 0 {
			d.Process(now, firing)
		} else {
			d.Process(now, resolved)
		}
	}
}
