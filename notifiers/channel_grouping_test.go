package notifiers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// A channel's own group_by, group_wait, group_interval and repeat_interval,
// against real webhook receivers on the dispatcher's stepped clock.

// withGrouping gives cc its own group_by and repeat_interval.
func withGrouping(cc notifiers.ChannelConfig, by []string, repeat time.Duration) notifiers.ChannelConfig {
	cc.GroupBy, cc.RepeatInterval = by, repeat
	return cc
}

// inCluster gives alerts the cluster label c.
func inCluster(c string, alerts ...model.Alert) []model.Alert {
	for i := range alerts {
		alerts[i].Labels = alerts[i].Labels.Copy()
		alerts[i].Labels["cluster"] = c
	}
	return alerts
}

// keys lists the group keys of channel's groups, "/" between rule and
// labels, as Status shows them.
func (h *harness) keys(channel string) []string {
	var out []string
	for _, g := range h.d.Status() {
		if g.Channel == channel {
			out = append(out, g.Key)
		}
	}
	return out
}

// The same alert on two channels: Slack repeats it every 4h, email once a
// day. Over 25h Slack gets the page and 6 repeats, email the page and 1.
func TestChannelRepeatInterval(t *testing.T) {
	slackR, emailR := newReceiver(t), newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{
		withGrouping(webhookChannel("oncall-slack", slackR.URL), nil, 4*time.Hour),
		withGrouping(webhookChannel("oncall-email", emailR.URL), nil, 24*time.Hour),
	}})
	alerts := members(unreachable, 2, model.StateFiring, "oncall-slack", "oncall-email")
	const step = 5 * time.Minute
	for i := range 25*12 + 1 {
		h.d.Process(t0.Add(time.Duration(i)*step), alerts)
		h.settle(t)
	}
	if got := len(slackR.got()); got != 1+6 {
		t.Errorf("slack (repeat_interval 4h): %d messages in 25h, want 1+6", got)
	}
	if got := len(emailR.got()); got != 1+1 {
		t.Errorf("email (repeat_interval 24h): %d messages in 25h, want 1+1", got)
	}
	for _, r := range []*receiver{slackR, emailR} {
		for _, p := range r.got() {
			if p.Status != "firing" || len(p.Alerts) != 2 {
				t.Errorf("%s: want each message to repeat both firing alerts, got %s with %d", p.Receiver, p.Status, len(p.Alerts))
			}
		}
	}
}

// One channel groups by cluster, the other by rule alone (the global
// group_by): the first gets a message per cluster, the second one per
// rule. A channel can also drop a global group_by with `group_by: []`.
func TestChannelGroupBy(t *testing.T) {
	alerts := append(inCluster("prod", members(unreachable, 2, model.StateFiring, "chat", "tickets")...),
		inCluster("staging", member(unreachable, 5, model.StateFiring, "chat", "tickets"))...)
	for _, tc := range []struct {
		name                 string
		global, chat, ticket []string
		wantChat, wantTicket []string // group keys
	}{
		{name: "channel adds group_by", ticket: []string{"cluster"},
			wantChat: []string{unreachable}, wantTicket: []string{unreachable + "/prod", unreachable + "/staging"}},
		{name: "channel drops the global group_by", global: []string{"cluster"}, chat: []string{},
			wantChat: []string{unreachable}, wantTicket: []string{unreachable + "/prod", unreachable + "/staging"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chat, tickets := newReceiver(t), newReceiver(t)
			h := build(t, notifiers.Config{GroupBy: tc.global, Channels: []notifiers.ChannelConfig{
				withGrouping(webhookChannel("chat", chat.URL), tc.chat, 0),
				withGrouping(webhookChannel("tickets", tickets.URL), tc.ticket, 0),
			}})
			h.d.Process(t0, alerts)
			h.d.Process(t0.Add(30*time.Second), alerts)
			h.settle(t)
			if got := h.keys("chat"); strings.Join(got, ",") != strings.Join(tc.wantChat, ",") {
				t.Errorf("chat groups %q, want %q", got, tc.wantChat)
			}
			if got := h.keys("tickets"); strings.Join(got, ",") != strings.Join(tc.wantTicket, ",") {
				t.Errorf("tickets groups %q, want %q", got, tc.wantTicket)
			}
			if got := chat.got(); len(got) != 1 || len(got[0].Alerts) != 3 {
				t.Errorf("chat: %d messages, want one with all 3 alerts", len(got))
			}
			clusters := map[string]int{}
			for _, p := range tickets.got() {
				for _, a := range p.Alerts {
					clusters[a.Labels["cluster"]]++
				}
				if c := p.Alerts[0].Labels["cluster"]; len(p.Alerts) != clusters[c] {
					t.Errorf("tickets: a message mixes clusters: %+v", p.Alerts)
				}
			}
			if len(tickets.got()) != 2 || clusters["prod"] != 2 || clusters["staging"] != 1 {
				t.Errorf("tickets: %d messages with %v, want one per cluster", len(tickets.got()), clusters)
			}
		})
	}
}

// A ticket webhook waits 10m for more alerts before its first message;
// chat keeps the global 30s.
func TestChannelGroupWait(t *testing.T) {
	chat, tickets := newReceiver(t), newReceiver(t)
	slow := webhookChannel("tickets", tickets.URL)
	slow.GroupWait = 10 * time.Minute
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("chat", chat.URL), slow}})
	first := members(unreachable, 1, model.StateFiring, "chat", "tickets")
	more := members(unreachable, 3, model.StateFiring, "chat", "tickets")
	for _, s := range []struct {
		at        time.Duration
		alerts    []model.Alert
		chat, tix int
	}{
		{0, first, 0, 0},
		{30 * time.Second, first, 1, 0},
		{5 * time.Minute, more, 1, 0}, // chat's next message waits for group_interval
		{5*time.Minute + 30*time.Second, more, 2, 0},
		{9*time.Minute + 59*time.Second, more, 2, 0},
		{10 * time.Minute, more, 2, 1},
	} {
		h.d.Process(t0.Add(s.at), s.alerts)
		h.settle(t)
		if c, x := len(chat.got()), len(tickets.got()); c != s.chat || x != s.tix {
			t.Fatalf("at +%s: chat %d, tickets %d messages; want %d, %d", s.at, c, x, s.chat, s.tix)
		}
	}
	if got := tickets.got(); len(got[0].Alerts) != 3 {
		t.Errorf("tickets' first message lists %d alerts, want the 3 that fired during its group_wait", len(got[0].Alerts))
	}
}

// A channel's own group_interval spaces its messages about changes.
func TestChannelGroupInterval(t *testing.T) {
	fast, slow := newReceiver(t), newReceiver(t)
	s := webhookChannel("slow", slow.URL)
	s.GroupInterval = time.Hour
	h := build(t, notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{webhookChannel("fast", fast.URL), s}})
	h.d.Process(t0, members(unreachable, 1, model.StateFiring, "fast", "slow"))
	for i := range 61 {
		alerts := members(unreachable, 1+i/10, model.StateFiring, "fast", "slow") // a new member every 10m
		h.d.Process(t0.Add(30*time.Second+time.Duration(i)*time.Minute), alerts)
		h.settle(t)
	}
	if got := len(fast.got()); got != 7 {
		t.Errorf("fast (group_interval 1m): %d messages, want the first and one per new member (7)", got)
	}
	if got := slow.got(); len(got) != 2 || len(got[1].Alerts) != 7 {
		t.Errorf("slow (group_interval 1h): %d messages, want 2, the second with all 7 alerts", len(got))
	}
}

// A reload that changes only one channel's repeat_interval keeps its
// sender (nothing is re-sent, nothing replaced) and the new interval
// counts from the last message; the other channel is left alone.
func TestApplyChannelRepeatIntervalOnly(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	cfg := func(repeat time.Duration) notifiers.Config {
		return notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{
			withGrouping(webhookChannel("a", a.URL), nil, repeat), webhookChannel("b", b.URL),
		}}
	}
	h := build(t, cfg(4*time.Hour))
	alerts := members(unreachable, 2, model.StateFiring, "a", "b")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)

	h.apply(t, cfg(time.Hour))
	if log := h.log.String(); !strings.Contains(log, "changed=[]") || !strings.Contains(log, "regrouped_or_retimed=[a]") {
		t.Errorf("want a kept, only retimed:\n%s", log)
	}
	for m := 1; m < 60; m++ {
		h.d.Process(t0.Add(30*time.Second+time.Duration(m)*time.Minute), alerts)
		h.settle(t)
	}
	if na, nb := len(a.got()), len(b.got()); na != 1 || nb != 1 {
		t.Fatalf("before a's new repeat_interval: a %d, b %d messages; want 1 each (no re-page)", na, nb)
	}
	h.d.Process(t0.Add(30*time.Second+time.Hour), alerts)
	h.settle(t)
	if na, nb := len(a.got()), len(b.got()); na != 2 || nb != 1 {
		t.Fatalf("after a's new repeat_interval (1h): a %d, b %d messages; want 2, 1", na, nb)
	}
	if v := h.counter("vigil_notifications_sent_total", "a"); v != 2 {
		t.Errorf("a's sent counter %v, want 2: its series carried on", v)
	}
}

// A reload that changes one channel's group_by regroups only that
// channel's alerts, without paging them again.
func TestApplyChannelGroupByRegroupsOnlyIt(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	cfg := func(by []string) notifiers.Config {
		return notifiers.Config{Channels: []notifiers.ChannelConfig{
			webhookChannel("a", a.URL), withGrouping(webhookChannel("b", b.URL), by, 0),
		}}
	}
	h := build(t, cfg(nil))
	alerts := members(unreachable, 3, model.StateFiring, "a", "b")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)

	h.apply(t, cfg([]string{"member"}))
	for m := 1; m <= 30; m++ {
		h.d.Process(t0.Add(30*time.Second+time.Duration(m)*time.Minute), alerts)
		h.settle(t)
	}
	if na, nb := len(a.got()), len(b.got()); na != 1 || nb != 1 {
		t.Fatalf("after b's group_by changed: a %d, b %d messages; want 1 each", na, nb)
	}
	if got := h.keys("a"); len(got) != 1 {
		t.Errorf("a's groups %q, want one (untouched)", got)
	}
	if got := h.keys("b"); len(got) != 3 {
		t.Errorf("b's groups %q, want one per member", got)
	}
	done := resolvedAt(alerts[:1], t0.Add(time.Hour))
	h.d.Process(t0.Add(time.Hour), append(done, alerts[1:]...))
	h.settle(t)
	if got := b.got(); len(got) != 2 || got[1].Status != "resolved" || len(got[1].Alerts) != 1 {
		t.Fatalf("b: want the resolution of one member in its own group, got %d messages", len(got))
	}
}

// Delivery state handed over between processes keeps each channel's
// groups when their group_by differ; a group_by changed across the
// hand-over regroups what was saved instead of paging again. So does a
// hand-over through encoding/json (the state file), which writes the 0xff
// between a key's group_by values as U+FFFD: the saved alerts say where
// they belong.
func TestImportStateChannelGroupBy(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	cfg := func(byB []string) notifiers.Config {
		return notifiers.Config{GroupBy: []string{"cluster"}, GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{
			webhookChannel("a", a.URL), withGrouping(webhookChannel("b", b.URL), byB, 0),
		}}
	}
	alerts := members(unreachable, 3, model.StateFiring, "a", "b")
	old := build(t, cfg([]string{"member"}))
	old.d.Process(t0, alerts)
	old.d.Process(t0.Add(30*time.Second), alerts)
	old.settle(t)
	if na, nb := len(a.got()), len(b.got()); na != 1 || nb != 3 {
		t.Fatalf("before the hand-over: a %d, b %d messages; want 1 (per cluster), 3 (per member)", na, nb)
	}
	for _, tc := range []struct {
		name     string
		byB      []string
		viaJSON  bool
		wantB    int // groups of b after the hand-over
		resolved int // alerts in b's message when one member resolves
	}{
		{"same config", []string{"member"}, false, 3, 1},
		{"same config, through JSON", []string{"member"}, true, 3, 1},
		{"b's group_by changed meanwhile", []string{"cluster"}, false, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var next *harness
			if tc.viaJSON {
				next = handOver(t, old.d, cfg(tc.byB))
			} else {
				next = build(t, cfg(tc.byB))
				recs := old.d.ExportState()
				if restored, dropped := next.d.ImportState(recs); restored != len(recs) || dropped != 0 {
					t.Fatalf("ImportState: restored %d, dropped %d of %d", restored, dropped, len(recs))
				}
			}
			sentA, sentB := len(a.got()), len(b.got())
			for m := 1; m <= 10; m++ {
				next.d.Process(t0.Add(time.Duration(m)*time.Minute), alerts)
				next.settle(t)
			}
			if na, nb := len(a.got())-sentA, len(b.got())-sentB; na != 0 || nb != 0 {
				t.Fatalf("after the hand-over: a %d, b %d more messages; want none", na, nb)
			}
			if got := next.keys("b"); len(got) != tc.wantB {
				t.Errorf("b's groups %q, want %d", got, tc.wantB)
			}
			if got := next.keys("a"); len(got) != 1 || got[0] != unreachable+"/prod" {
				t.Errorf("a's groups %q, want %q", got, unreachable+"/prod")
			}
			now := t0.Add(11 * time.Minute)
			next.d.Process(now, append(resolvedAt(alerts[:1], now), alerts[1:]...))
			next.settle(t)
			got := b.got()[sentB:]
			if len(got) != 1 || len(got[0].Alerts) != tc.resolved {
				t.Fatalf("b after one member resolved: %d messages %+v, want one listing %d alerts", len(got), got, tc.resolved)
			}
			for _, x := range got[0].Alerts {
				if want := x.Fingerprint != alerts[0].Fingerprint; (x.Status == "firing") != want {
					t.Errorf("b: alert %s is %s", x.Labels["member"], x.Status)
				}
			}
		})
	}
}

// A grouping override is checked with the channel: every mistake at once,
// each naming its channel and field; Apply refuses it as Build does.
func TestChannelGroupingErrors(t *testing.T) {
	b := webhookChannel("b", "http://127.0.0.1:1")
	b.GroupInterval = -time.Minute
	_, err := notifiers.Build(notifiers.Config{GroupWait: -time.Second, Channels: []notifiers.ChannelConfig{
		{Name: "a", GroupBy: []string{"ok", "9lives"}, RepeatInterval: -time.Hour}, // and no integration
		b,
	}})
	if err == nil {
		t.Fatal("Build accepted negative timings and a bad label name")
	}
	for _, want := range []string{
		`group_wait: -1s is negative`,
		`channel "a": repeat_interval: -1h0m0s is negative`,
		`channel "a": group_by[1]: "9lives" is not a label name`,
		`channel "a": exactly one of slack, email, webhook, console, alertmanager is required`,
		`channel "b": group_interval: -1m0s is negative`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("b", "http://127.0.0.1:1")}})
	b.GroupInterval, b.GroupBy = 0, []string{"a b"}
	if err := h.d.Apply(notifiers.Config{Channels: []notifiers.ChannelConfig{b}}); err == nil || !strings.Contains(err.Error(), `channel "b": group_by[0]: "a b" is not a label name`) {
		t.Errorf("Apply of a bad group_by: %v", err)
	}
}
