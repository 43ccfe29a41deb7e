package notifiers_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// Time intervals against real webhook receivers: whether a message is
// muted is decided from the `now` passed to Process; the tests step it
// minute by minute and wait only for deliveries.

// nightBerlin is an interval of 01:00-03:00 Berlin time, every day.
const nightBerlin = `
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "01:00", end_time: "03:00"}]
        location: Europe/Berlin
  - name: weekdays
    time_intervals:
      - weekdays: ['monday:friday']
        location: Europe/Berlin
`

// timedConfig decodes a notifiers config written as YAML, strictly, as
// the config file is, and points channel "ops" at url.
func timedConfig(t *testing.T, src, url string) notifiers.Config {
	t.Helper()
	var c notifiers.Config
	if err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for i := range c.Channels {
		if c.Channels[i].Webhook != nil {
			c.Channels[i].Webhook.URL = url
		}
	}
	return c
}

// firstMessage processes a firing every minute from `from` for 4 hours
// and returns when the first message was decided (zero: none).
func firstMessage(t *testing.T, h *harness, rcv *receiver, a model.Alert, from time.Time) time.Time {
	t.Helper()
	for now := from; now.Before(from.Add(4 * time.Hour)); now = now.Add(time.Minute) {
		h.d.Process(now, []model.Alert{a})
		h.settle(t)
		if rcv.hitCount() > 0 {
			return now
		}
	}
	return time.Time{}
}

// TestMuteTimeIntervalAcrossDST: a route muted 01:00-03:00 Berlin time
// holds a page that fires at 01:10 local until 03:00 local, which is two
// hours on an ordinary night, one on the night clocks go forward
// (2026-03-29, 02:00 CET -> 03:00 CEST) and three on the night they go
// back (2026-10-25, 03:00 CEST -> 02:00 CET, 02:00-03:00 twice).
func TestMuteTimeIntervalAcrossDST(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		name        string
		fires, sent string // UTC
	}{
		{"ordinary night (CET)", "2026-03-28T00:10:00Z", "2026-03-28T02:00:00Z"},
		{"clocks go forward", "2026-03-29T00:10:00Z", "2026-03-29T01:00:00Z"},
		{"ordinary night (CEST)", "2026-03-30T23:10:00Z", "2026-03-31T01:00:00Z"},
		{"clocks go back", "2026-10-24T23:10:00Z", "2026-10-25T02:00:00Z"},
		{"clocks go back, second 02:30", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t)
			cfg := timedConfig(t, nightBerlin+`
channels:
  - name: ops
    webhook: {url: "set by the test"}
routes:
  - match: {severity: [high]}
    channels: [ops]
    mute_time_intervals: [night]
group_wait: 30s
group_interval: 5m
`, rcv.URL)
			h := build(t, cfg)
			got := firstMessage(t, h, rcv, member(unreachable, 1, model.StateFiring), utc(tc.fires))
			if want := utc(tc.sent); !got.Equal(want) {
				t.Fatalf("first message at %s (%s Berlin), want %s (%s Berlin)", got.UTC().Format(time.RFC3339),
					berlin(t, got), want.Format(time.RFC3339), berlin(t, want))
			}
		})
	}
}

func berlin(t *testing.T, tm time.Time) string {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return tm.In(loc).Format("15:04 MST")
}

// TestActiveTimeIntervals: a channel active only on weekdays (Berlin)
// holds a page raised on Saturday until Monday 00:00 Berlin time, which
// is Sunday 23:00 UTC in winter.
func TestActiveTimeIntervals(t *testing.T) {
	rcv := newReceiver(t)
	cfg := timedConfig(t, nightBerlin+`
channels:
  - name: ops
    webhook: {url: "set by the test"}
    active_time_intervals: [weekdays]
default_channels: [ops]
group_wait: 30s
`, rcv.URL)
	h := build(t, cfg)
	sat := time.Date(2026, 1, 10, 22, 0, 0, 0, time.UTC) // Saturday 23:00 CET
	a := member(unreachable, 1, model.StateFiring)
	for now := sat; now.Before(sat.Add(26 * time.Hour)); now = now.Add(5 * time.Minute) {
		h.d.Process(now, []model.Alert{a})
		h.settle(t)
		if rcv.hitCount() > 0 {
			if want := time.Date(2026, 1, 11, 23, 0, 0, 0, time.UTC); !now.Equal(want) {
				t.Fatalf("first message at %s, want %s (Monday 00:00 Berlin)", now, want)
			}
			return
		}
	}
	t.Fatal("no message by Monday")
}

// TestMutedFiringResolvesWhileMuted follows Alertmanager: a muted page
// is not sent; if it resolves while still muted, nobody is told anything,
// then or when the interval ends. A page sent before the interval began
// that resolves during it has its resolution held until the interval
// ends, then sent at the first evaluation after (once group_interval
// since the last message has passed). A firing alert is not repeated
// while muted.
func TestMutedFiringResolvesWhileMuted(t *testing.T) {
	// 01:00-03:00 Berlin on 2026-01-15 is 00:00-02:00 UTC.
	start := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)
	m1, m1r := member(unreachable, 1, model.StateFiring), member(unreachable, 1, model.StateResolved)
	m2, m2r := member(unreachable, 2, model.StateFiring), member(unreachable, 2, model.StateResolved)
	rcv := newReceiver(t)
	cfg := timedConfig(t, nightBerlin+`
channels:
  - name: ops
    webhook: {url: "set by the test"}
    mute_time_intervals: [night]
default_channels: [ops]
group_wait: 30s
group_interval: 5m
repeat_interval: 30m
`, rcv.URL)
	h := build(t, cfg)
	// etcd-02 is paged before the interval.
	h.d.Process(start.Add(-10*time.Minute), []model.Alert{m2})
	h.d.Process(start.Add(-9*time.Minute), []model.Alert{m2})
	h.settle(t)
	if got := statuses(rcv.got(), m2.Fingerprint); !slices.Equal(got, []string{"firing"}) {
		t.Fatalf("before the interval: %v", got)
	}
	// In the interval etcd-01 fires and resolves, etcd-02 resolves an
	// hour in (no repeat at 30m: muted).
	for now := start; now.Before(end); now = now.Add(time.Minute) {
		var alerts []model.Alert
		switch {
		case now.Before(start.Add(20 * time.Minute)):
			alerts = []model.Alert{m1, m2}
		case now.Before(start.Add(time.Hour)):
			alerts = []model.Alert{m1r, m2}
		default:
			alerts = []model.Alert{m2r}
		}
		h.d.Process(now, alerts)
		h.settle(t)
		if n := rcv.hitCount(); n != 1 {
			t.Fatalf("at %s, in the interval: %d messages, want only the page before it", now, n)
		}
	}
	h.d.Process(end, nil)
	h.settle(t)
	if got := statuses(rcv.got(), m2.Fingerprint); !slices.Equal(got, []string{"firing", "resolved"}) {
		t.Fatalf("etcd-02 after the interval: %v, want its page then its resolution", got)
	}
	for now := end.Add(time.Minute); now.Before(end.Add(time.Hour)); now = now.Add(time.Minute) {
		h.d.Process(now, nil)
	}
	h.settle(t)
	if got := statuses(rcv.got(), m1.Fingerprint); len(got) != 0 {
		t.Fatalf("etcd-01, muted from firing to resolution, was sent %v", got)
	}
}

// TestRouteMuteOnlyWhenEveryWayIsMuted: an alert that reaches a channel
// by a muted route and by its rule's notify list (or another route) is
// sent: only the route's way is muted.
func TestRouteMuteOnlyWhenEveryWayIsMuted(t *testing.T) {
	night := time.Date(2026, 1, 15, 0, 30, 0, 0, time.UTC) // 01:30 Berlin
	for _, tc := range []struct {
		name   string
		routes string
		notify []string
		sent   bool
	}{
		{"muted route only", "  - {match: {severity: [high]}, channels: [ops], mute_time_intervals: [night]}\n", nil, false},
		{"muted route and notify list", "  - {match: {severity: [high]}, channels: [ops], mute_time_intervals: [night]}\n", []string{"ops"}, true},
		{"muted route and untimed route", "  - {match: {severity: [high]}, channels: [ops], mute_time_intervals: [night]}\n  - {match: {rules: [" + unreachable + "]}, channels: [ops]}\n", nil, true},
		{"route active only at night", "  - {match: {severity: [high]}, channels: [ops], active_time_intervals: [night]}\n", nil, true},
		{"route active only on weekdays, muted at night", "  - {match: {severity: [high]}, channels: [ops], active_time_intervals: [weekdays], mute_time_intervals: [night]}\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t)
			h := build(t, timedConfig(t, nightBerlin+"channels:\n  - {name: ops, webhook: {url: x}}\nroutes:\n"+tc.routes, rcv.URL))
			a := member(unreachable, 1, model.StateFiring, tc.notify...)
			h.d.Process(night, []model.Alert{a})
			h.d.Process(night.Add(time.Minute), []model.Alert{a})
			h.settle(t)
			if sent := rcv.hitCount() > 0; sent != tc.sent {
				t.Fatalf("sent = %v, want %v", sent, tc.sent)
			}
		})
	}
}

// TestTimeIntervalConfigErrors: unknown and duplicate names are errors
// naming where they are used.
func TestTimeIntervalConfigErrors(t *testing.T) {
	cfg := timedConfig(t, nightBerlin+`
  - name: night
    time_intervals: [{weekdays: [sunday]}]
channels:
  - name: ops
    webhook: {url: "set by the test"}
    mute_time_intervals: [nights]
routes:
  - match: {severity: [high]}
    channels: [ops]
    active_time_intervals: [weekdays, weekend]
`, "http://127.0.0.1:1/")
	_, err := notifiers.Build(cfg)
	if err == nil {
		t.Fatal("Build accepted unknown time intervals")
	}
	for _, want := range []string{
		`time_intervals[2]: name "night" defined twice`,
		`channel "ops": mute_time_intervals[0]: unknown time interval "nights"`,
		`routes[0].active_time_intervals[1]: unknown time interval "weekend"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
