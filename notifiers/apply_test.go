package notifiers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// What Apply does to each channel, against real webhook receivers. The
// dispatcher's clock is the `now` passed to Process; tests only wait for
// deliveries (and workers returning), never for durations.

func routeTo(rules []string, channels ...string) notifiers.RouteConfig {
	return notifiers.RouteConfig{Match: notifiers.MatchConfig{Rules: rules}, Channels: channels}
}

// blockFirst answers its first request only when release is closed.
func blockFirst(t *testing.T) (step func(http.ResponseWriter), release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release) // before the receiver's Close, which waits for handlers
	return func(w http.ResponseWriter) { <-ch }, release
}

func resolvedAt(alerts []model.Alert, at time.Time) []model.Alert {
	out := make([]model.Alert, len(alerts))
	for i, a := range alerts {
		a.State, a.ResolvedAt = model.StateResolved, at
		out[i] = a
	}
	return out
}

// A channel kept with the same config keeps what it sent; a channel added
// in the same reload gets the alerts already firing, once, after
// group_wait.
func TestApplyAddsChannelWithoutRepagingKept(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	rules := []string{unreachable}
	h := build(t, notifiers.Config{
		Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)},
		Routes:   []notifiers.RouteConfig{routeTo(rules, "a")},
	})
	alerts := members(unreachable, 2, model.StateFiring)
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if n := len(a.got()); n != 1 {
		t.Fatalf("a: %d messages before the reload, want 1", n)
	}

	h.apply(t, notifiers.Config{
		Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL), webhookChannel("b", b.URL)},
		Routes:   []notifiers.RouteConfig{routeTo(rules, "a", "b")},
	})
	if got := h.d.ChannelNames(); strings.Join(got, ",") != "a,b" {
		t.Fatalf("ChannelNames after Apply = %v", got)
	}
	h.d.Process(t0.Add(40*time.Second), alerts)
	h.settle(t)
	if n := len(b.got()); n != 0 {
		t.Fatalf("b: sent before its group_wait")
	}
	h.d.Process(t0.Add(70*time.Second), alerts)
	h.settle(t)
	for i := 1; i <= 10; i++ {
		h.d.Process(t0.Add(70*time.Second+time.Duration(i)*time.Minute), alerts)
	}
	h.settle(t)
	if n := len(a.got()); n != 1 {
		t.Errorf("a: %d messages, want the one from before the reload", n)
	}
	got := b.got()
	if len(got) != 1 || len(got[0].Alerts) != 2 || got[0].Status != "firing" {
		t.Fatalf("b: want one firing message with 2 alerts, got %+v", got)
	}
}

// A delivery in flight on a kept channel finishes across the reload and
// its outcome is recorded: nothing is paged again afterwards.
func TestApplyKeepsInFlightDelivery(t *testing.T) {
	step, release := blockFirst(t)
	a, b := newReceiver(t, step), newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}})
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "the delivery to a to start", func() bool { return a.hitCount() == 1 })

	h.apply(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL), webhookChannel("b", b.URL)}})
	release()
	h.settle(t)
	if st := h.d.Status(); len(st) != 1 || st[0].LastSent.IsZero() || st[0].Failures != 0 {
		t.Fatalf("outcome of the delivery in flight not recorded: %+v", st)
	}
	h.d.Process(t0.Add(10*time.Minute), alerts)
	h.settle(t)
	if n := a.hitCount(); n != 1 {
		t.Errorf("a: %d requests, want 1 (no re-page after the reload)", n)
	}
}

// Changing a channel's URL gives it a new sender but keeps what its
// receiver was told: no re-page, and the resolution goes to the new URL.
// Its metric series carry on under the same name.
func TestApplyChangedURLKeepsDedup(t *testing.T) {
	oldURL, newURL := newReceiver(t), newReceiver(t)
	cfg := func(url string) notifiers.Config {
		return notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{webhookChannel("a", url)}}
	}
	h := build(t, cfg(oldURL.URL))
	alerts := members(unreachable, 2, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)

	h.apply(t, cfg(newURL.URL))
	for i := 1; i <= 5; i++ {
		h.d.Process(t0.Add(30*time.Second+time.Duration(i)*time.Minute), alerts)
	}
	h.settle(t)
	if n, m := len(oldURL.got()), len(newURL.got()); n != 1 || m != 0 {
		t.Fatalf("after the URL change: old %d, new %d messages; want 1 and 0 (no re-page)", n, m)
	}
	h.d.Process(t0.Add(10*time.Minute), resolvedAt(alerts, t0.Add(10*time.Minute)))
	h.settle(t)
	got := newURL.got()
	if len(got) != 1 || got[0].Status != "resolved" || len(got[0].Alerts) != 2 {
		t.Fatalf("new URL: want the resolution of both alerts, got %+v", got)
	}
	if n := len(oldURL.got()); n != 1 {
		t.Errorf("old URL got %d messages, want only the page", n)
	}
	if v := h.counter("vigil_notifications_sent_total", "a"); v != 2 {
		t.Errorf("sent{a} = %v, want 2 (one per sender)", v)
	}
}

// Messages queued for a channel whose config changes go out with the new
// sender; the one being delivered finishes with the old one.
func TestApplyMovesQueuedMessagesToNewSender(t *testing.T) {
	step, release := blockFirst(t)
	oldURL, newURL := newReceiver(t, step), newReceiver(t)
	cfg := func(url string) notifiers.Config {
		return notifiers.Config{Channels: []notifiers.ChannelConfig{{Name: "a", Concurrency: 1, Webhook: &webhook.Config{URL: url}}}}
	}
	h := build(t, cfg(oldURL.URL))
	alerts := append(members("RuleOne", 1, model.StateFiring, "a"), members("RuleTwo", 1, model.StateFiring, "a")...)
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "one message in flight to the old URL", func() bool { return oldURL.hitCount() == 1 })

	h.apply(t, cfg(newURL.URL))
	waitUntil(t, "the queued message at the new URL", func() bool { return len(newURL.got()) == 1 })
	release()
	h.settle(t)
	h.d.Process(t0.Add(10*time.Minute), alerts)
	h.settle(t)
	if n, m := oldURL.hitCount(), len(newURL.got()); n != 1 || m != 1 {
		t.Fatalf("old URL %d requests, new URL %d messages; want 1 and 1", n, m)
	}
	for _, g := range h.d.Status() {
		if g.LastSent.IsZero() || g.Failures != 0 {
			t.Errorf("group %s: delivery not recorded: %+v", g.Key, g)
		}
	}
}

// A message being retried against a broken URL is handed to the fixed
// URL at its next attempt, not after its delivery deadline.
func TestApplyFixedURLTakesTheRetry(t *testing.T) {
	var brokenHits atomic.Int32
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		brokenHits.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(broken.Close)
	fixed := newReceiver(t)
	cfg := func(url string) notifiers.Config {
		return notifiers.Config{DeliveryTimeout: time.Minute, Channels: []notifiers.ChannelConfig{webhookChannel("a", url)}}
	}
	h := build(t, cfg(broken.URL))
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "retries against the broken URL", func() bool { return brokenHits.Load() >= 2 })

	h.apply(t, cfg(fixed.URL))
	waitUntil(t, "the message at the fixed URL", func() bool { return len(fixed.got()) == 1 })
	h.settle(t)
	st := h.d.Status()
	if len(st) != 1 || !st[0].LastSent.Equal(t0.Add(30*time.Second)) || st[0].Failures != 0 {
		t.Fatalf("delivery not recorded on the group: %+v", st)
	}
	if v := h.counter("vigil_notifications_failed_total", "a"); v != 0 {
		t.Errorf("failed{a} = %v: the handed-over message counted as a failure", v)
	}
	if !strings.Contains(h.log.String(), "notification handed to the channel's new settings") {
		t.Errorf("hand-over not logged:\n%s", h.log.String())
	}
}

// Removing a channel whose receiver hangs does not hold up Apply or
// Process: its queued message is dropped and its delivery in flight
// cancelled, both counted and logged, its groups forgotten and its metric
// series deleted.
func TestApplyRemovedChannelDoesNotBlock(t *testing.T) {
	var hits atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body) // the server notices a client going away only after the body
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	live := newReceiver(t)
	rules := []string{"RuleOne", "RuleTwo"}
	h := build(t, notifiers.Config{
		DeliveryTimeout: time.Minute,
		Channels: []notifiers.ChannelConfig{
			{Name: "gone", Concurrency: 1, Webhook: &webhook.Config{URL: hang.URL, Timeout: time.Minute}},
			webhookChannel("live", live.URL),
		},
		Routes: []notifiers.RouteConfig{routeTo(rules, "gone", "live")},
	})
	alerts := append(members("RuleOne", 1, model.StateFiring), members("RuleTwo", 1, model.StateFiring)...)
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "a delivery hanging at the removed channel", func() bool { return hits.Load() == 1 })
	waitUntil(t, "both messages at the live channel", func() bool { return len(live.got()) == 2 })

	start := time.Now()
	h.apply(t, notifiers.Config{
		DeliveryTimeout: time.Minute,
		Channels:        []notifiers.ChannelConfig{webhookChannel("live", live.URL)},
		Routes:          []notifiers.RouteConfig{routeTo(rules, "live")},
	})
	h.d.Process(t0.Add(40*time.Second), alerts)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Apply and Process took %s with a hanging receiver", took)
	}
	waitUntil(t, "the queued and the cancelled message counted", func() bool {
		return h.total("vigil_notifications_dropped_total") == 2
	})
	waitUntil(t, "the removed channel's series deleted", func() bool {
		return !h.series("vigil_notifications_sent_total", "gone") && !h.series("vigil_notification_queue_length", "gone")
	})
	if !h.series("vigil_notifications_sent_total", "live") {
		t.Error("the kept channel's series were deleted")
	}
	logs := h.log.String()
	for _, want := range []string{"channel removed by reload", "channel=gone dropped=1 groups_forgotten=2", "notification abandoned: its channel was removed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
	for _, g := range h.d.Status() {
		if g.Channel == "gone" {
			t.Errorf("group of the removed channel kept: %+v", g)
		}
	}
	h.d.Process(t0.Add(10*time.Minute), alerts)
	h.settle(t)
	if n := len(live.got()); n != 2 {
		t.Errorf("live: %d messages, want 2 (kept across the reload)", n)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the removed channel was called %d times", n)
	}
}

// An alert routed elsewhere by a reload is not repeated to the channel
// that was paged, is news to the new one, and both get its resolution.
func TestApplyRerouteStillSendsResolution(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	rules := []string{unreachable}
	chans := []notifiers.ChannelConfig{webhookChannel("a", a.URL), webhookChannel("b", b.URL)}
	h := build(t, notifiers.Config{Channels: chans, Routes: []notifiers.RouteConfig{routeTo(rules, "a")}})
	alerts := members(unreachable, 1, model.StateFiring)
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)

	h.apply(t, notifiers.Config{Channels: chans, Routes: []notifiers.RouteConfig{routeTo(rules, "b")}})
	h.d.Process(t0.Add(40*time.Second), alerts)
	h.d.Process(t0.Add(70*time.Second), alerts)
	for i := 1; i <= 10; i++ {
		h.d.Process(t0.Add(70*time.Second+time.Duration(i)*time.Minute), alerts)
	}
	h.settle(t)
	if n, m := len(a.got()), len(b.got()); n != 1 || m != 1 {
		t.Fatalf("while firing: a %d, b %d messages; want 1 and 1", n, m)
	}
	h.d.Process(t0.Add(20*time.Minute), resolvedAt(alerts, t0.Add(20*time.Minute)))
	h.settle(t)
	for name, r := range map[string]*receiver{"a": a, "b": b} {
		got := r.got()
		if len(got) != 2 || got[1].Status != "resolved" {
			t.Errorf("%s: want the page and its resolution, got %d messages", name, len(got))
		}
	}
	h.d.Process(t0.Add(21*time.Minute), nil)
	if st := h.d.Status(); len(st) != 0 {
		t.Errorf("groups left after the resolutions: %+v", st)
	}
}

func memberAlerts(n int, state model.AlertState, notify ...string) []model.Alert {
	out := members(unreachable, n, state, notify...)
	for i := range out {
		out[i].Labels = out[i].Labels.Copy()
		out[i].Labels["member"] = fmt.Sprintf("etcd-%02d", i)
	}
	return out
}

// A new group_by regroups the alerts a receiver already has without
// paging them again; messages follow the new grouping.
func TestApplyGroupByRegroupsWithoutRepage(t *testing.T) {
	a := newReceiver(t)
	cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}}
	h := build(t, cfg)
	alerts := members(unreachable, 3, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)

	cfg.GroupBy = []string{"member"}
	h.apply(t, cfg)
	h.d.Process(t0.Add(2*time.Minute), alerts)
	h.settle(t)
	if st := h.d.Status(); len(st) != 3 {
		t.Fatalf("want a group per member after the reload, got %+v", st)
	}
	if n := len(a.got()); n != 1 {
		t.Fatalf("%d messages after the regroup, want 1 (no re-page)", n)
	}
	alerts[1].State, alerts[1].ResolvedAt = model.StateResolved, t0.Add(10*time.Minute)
	h.d.Process(t0.Add(10*time.Minute), alerts)
	h.settle(t)
	got := a.got()
	if len(got) != 2 || got[1].Status != "resolved" || len(got[1].Alerts) != 1 || got[1].Alerts[0].Labels["member"] != "etcd-01" {
		t.Fatalf("want one resolution of etcd-01 in its own group, got %+v", got[1:])
	}
}

// A regroup while the message is in flight: the new groups wait for it
// and take its outcome, so nothing is sent twice.
func TestApplyGroupByWhileInFlight(t *testing.T) {
	step, release := blockFirst(t)
	a := newReceiver(t, step)
	cfg := notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}}
	h := build(t, cfg)
	alerts := members(unreachable, 3, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "the message in flight", func() bool { return a.hitCount() == 1 })

	cfg.GroupBy = []string{"member"}
	h.apply(t, cfg)
	h.d.Process(t0.Add(5*time.Minute), alerts) // past group_interval, still in flight
	for _, g := range h.d.Status() {
		if !g.InFlight {
			t.Errorf("group %s does not wait for the message in flight", g.Key)
		}
	}
	release()
	h.settle(t)
	for i := 6; i <= 20; i++ {
		h.d.Process(t0.Add(time.Duration(i)*time.Minute), alerts)
	}
	h.settle(t)
	if n := a.hitCount(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	st := h.d.Status()
	if len(st) != 3 {
		t.Fatalf("groups %+v", st)
	}
	for _, g := range st {
		if !g.LastSent.Equal(t0.Add(30*time.Second)) || g.Failures != 0 {
			t.Errorf("group %s did not take the outcome: %+v", g.Key, g)
		}
	}
}

// A shorter group_wait moves the first message of a group already
// waiting: it applies from the next Process.
func TestApplyShorterGroupWaitApplies(t *testing.T) {
	a := newReceiver(t)
	cfg := notifiers.Config{GroupWait: time.Hour, Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}}
	h := build(t, cfg)
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if n := len(a.got()); n != 0 {
		t.Fatal("sent before group_wait")
	}
	cfg.GroupWait = 30 * time.Second
	h.apply(t, cfg)
	h.d.Process(t0.Add(31*time.Second), alerts)
	h.settle(t)
	if n := len(a.got()); n != 1 {
		t.Fatalf("%d messages after group_wait was shortened to 30s, want 1", n)
	}
}

// A config that does not build changes nothing.
func TestApplyInvalidKeepsRunning(t *testing.T) {
	a := newReceiver(t)
	good := notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}}
	h := build(t, good, notifiers.WithLookupEnv(func(string) (string, bool) { return "", false }))
	bad := good
	bad.Channels = append(bad.Channels, notifiers.ChannelConfig{Name: "b", Webhook: &webhook.Config{URLEnv: "B_URL"}})
	bad.Routes = []notifiers.RouteConfig{routeTo([]string{unreachable}, "c")}
	err := h.d.Apply(bad)
	if err == nil {
		t.Fatal("Apply of a channel with a missing secret and a route to an unknown channel succeeded")
	}
	for _, want := range []string{`channel "b": webhook: url`, `routes[0]: unknown channel "c"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := h.d.ChannelNames(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("channels after a failed Apply: %v", got)
	}
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if n := len(a.got()); n != 1 {
		t.Fatalf("old config not running: %d messages", n)
	}
}

func TestApplyAfterStopDoesNothing(t *testing.T) {
	d, err := notifiers.Build(notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", "http://127.0.0.1:1/")}},
		notifiers.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("b", "http://127.0.0.1:1/")}}); err != nil {
		t.Fatalf("Apply after Stop: %v", err)
	}
	if got := d.ChannelNames(); len(got) != 1 || got[0] != "a" {
		t.Errorf("channels after Stop and Apply: %v", got)
	}
}

// Apply runs while Process, deliveries, ExportState, ImportState, Status
// and the rest do (run with -race): every config of the cycle adds,
// changes or removes a channel, or changes group_by or a channel's own.
func TestApplyConcurrently(t *testing.T) {
	a, b, c := newReceiver(t), newReceiver(t), newReceiver(t)
	rules := []string{unreachable}
	configs := []notifiers.Config{
		{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)}, DefaultChannels: []string{"a"}},
		{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL), webhookChannel("b", b.URL)},
			Routes: []notifiers.RouteConfig{routeTo(rules, "a", "b")}},
		{Channels: []notifiers.ChannelConfig{webhookChannel("b", c.URL), webhookChannel("a", a.URL)},
			Routes: []notifiers.RouteConfig{routeTo(rules, "b")}, GroupBy: []string{"member"}, GroupInterval: time.Minute},
		{Channels: []notifiers.ChannelConfig{webhookChannel("c", c.URL)}, DefaultChannels: []string{"c"}, GroupWait: time.Second},
		{Channels: []notifiers.ChannelConfig{webhookChannel("b", c.URL), withGrouping(webhookChannel("a", a.URL), []string{"member"}, time.Hour)},
			Routes: []notifiers.RouteConfig{routeTo(rules, "a", "b")}},
	}
	h := build(t, configs[0])
	const rounds = 200
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range rounds {
			n := 1 + i%5
			alerts := memberAlerts(n, model.StateFiring)
			if i%7 == 0 {
				alerts = resolvedAt(alerts, t0.Add(time.Duration(i)*10*time.Second))
			}
			h.d.Process(t0.Add(time.Duration(i)*10*time.Second), alerts)
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			if err := h.d.Apply(testDefaults(configs[i%len(configs)])); err != nil {
				t.Errorf("Apply: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			recs := h.d.ExportState()
			_ = h.d.Status()
			_ = h.d.ChannelNames()
			_ = h.d.Inhibited()
			if i%50 == 0 {
				h.d.ImportState(recs)
			}
		}
	}()
	wg.Wait()
	h.apply(t, configs[0])
	h.d.Process(t0.Add(time.Hour), memberAlerts(2, model.StateFiring))
	h.settle(t)
	for _, g := range h.d.Status() {
		if g.Channel != "a" {
			t.Errorf("group of channel %q after the last Apply: %+v", g.Channel, g)
		}
	}
	waitUntil(t, "the series of removed channels deleted", func() bool {
		return !h.series("vigil_notifications_sent_total", "b") && !h.series("vigil_notifications_sent_total", "c")
	})
}

// A channel changed by one reload and removed by the next: the old
// sender's attempt, still in flight when the first reload retired it, is
// cancelled by the second like any delivery to the removed channel. It is
// not retried, counts as dropped (not failed), and leaves no series for
// the name that is gone.
func TestApplyChangedThenRemovedCancelsOldDelivery(t *testing.T) {
	release := make(chan struct{})
	var hits, cancelled atomic.Int32
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		io.Copy(io.Discard, r.Body) // the server notices a client going away only after the body
		if n == 1 {
			select {
			case <-r.Context().Done():
				cancelled.Add(1)
				return
			case <-release:
			}
		}
		w.WriteHeader(http.StatusBadGateway) // retryable
	}))
	t.Cleanup(old.Close)
	t.Cleanup(func() { close(release) }) // before old.Close, which waits for handlers
	newURL, other := newReceiver(t), newReceiver(t)
	cfg := func(chans ...notifiers.ChannelConfig) notifiers.Config {
		return notifiers.Config{DeliveryTimeout: time.Minute, Channels: chans}
	}
	chanA := func(url string) notifiers.ChannelConfig {
		return notifiers.ChannelConfig{Name: "a", Concurrency: 1, Webhook: &webhook.Config{URL: url, Timeout: time.Minute}}
	}
	h := build(t, cfg(chanA(old.URL)))
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "the first attempt in flight at the old URL", func() bool { return hits.Load() == 1 })

	h.apply(t, cfg(chanA(newURL.URL)))
	h.apply(t, cfg(webhookChannel("b", other.URL)))
	waitUntil(t, "the attempt at the old URL cancelled", func() bool { return cancelled.Load() == 1 })
	waitUntil(t, "the message counted as dropped", func() bool { return h.total("vigil_notifications_dropped_total") == 1 })
	waitUntil(t, "a's series deleted", func() bool { return !h.series("vigil_notifications_sent_total", "a") })

	// Stop waits for every worker, retired ones included: nothing of a
	// may come back after it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v (a retired sender kept it waiting)", err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the old URL of removed channel a got %d requests; retries went on after the removal", n)
	}
	if n := newURL.hitCount(); n != 0 {
		t.Errorf("the new URL of removed channel a got %d requests", n)
	}
	for _, name := range []string{"vigil_notifications_sent_total", "vigil_notifications_failed_total",
		"vigil_notification_attempts_total", "vigil_notification_queue_length"} {
		if h.series(name, "a") {
			t.Errorf("stale series %s{channel=\"a\"} after a was removed", name)
		}
	}
	logs := h.log.String()
	if !strings.Contains(logs, "notification abandoned: its channel was removed") || strings.Contains(logs, "notification failed") {
		t.Errorf("the cancelled delivery is not logged as abandoned:\n%s", logs)
	}
}

// The queue gauge of a channel whose config changes is the new sender's
// from the reload on: it counts the messages moved to it, and the old
// sender finishing its attempt afterwards does not touch it.
func TestApplyChangedChannelQueueGauge(t *testing.T) {
	oldStep, releaseOld := blockFirst(t)
	newStep, releaseNew := blockFirst(t)
	oldURL, newURL := newReceiver(t, oldStep), newReceiver(t, newStep)
	cfg := func(url string) notifiers.Config {
		return notifiers.Config{Channels: []notifiers.ChannelConfig{{Name: "a", Concurrency: 1, Webhook: &webhook.Config{URL: url}}}}
	}
	h := build(t, cfg(oldURL.URL))
	queued := func() float64 { return h.metric("vigil_notification_queue_length", "a").GetGauge().GetValue() }
	var alerts []model.Alert
	for _, rule := range []string{"RuleOne", "RuleTwo", "RuleThree"} {
		alerts = append(alerts, members(rule, 1, model.StateFiring, "a")...)
	}
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "one message in flight to the old URL", func() bool { return oldURL.hitCount() == 1 })
	if v := queued(); v != 2 {
		t.Fatalf("queue_length{a} = %v before the reload, want 2", v)
	}

	h.apply(t, cfg(newURL.URL))
	waitUntil(t, "one moved message in flight to the new URL", func() bool { return newURL.hitCount() == 1 })
	if v := queued(); v != 1 {
		t.Fatalf("queue_length{a} = %v after the reload, want the 1 moved message still queued", v)
	}
	releaseOld()
	waitUntil(t, "the old sender's message recorded", func() bool {
		for _, g := range h.d.Status() {
			if !g.LastSent.IsZero() {
				return true
			}
		}
		return false
	})
	if v := queued(); v != 1 {
		t.Errorf("queue_length{a} = %v after the old sender finished, want 1", v)
	}
	releaseNew()
	h.settle(t)
	if v := queued(); v != 0 {
		t.Errorf("queue_length{a} = %v once everything was sent, want 0", v)
	}
}

// A message waiting out a 429's Retry-After when a reload changes its
// channel (here only concurrency: the same receiver) is handed to the new
// sender, which still waits until the receiver said it may try again.
func TestApplyHandOverKeepsRetryAfter(t *testing.T) {
	limited := func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}
	r := newReceiver(t, limited)
	cfg := func(workers int) notifiers.Config {
		return notifiers.Config{DeliveryTimeout: time.Minute,
			Channels: []notifiers.ChannelConfig{{Name: "a", Concurrency: workers, Webhook: &webhook.Config{URL: r.URL}}}}
	}
	h := build(t, cfg(1))
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	waitUntil(t, "the first attempt rate limited", func() bool { return r.hitCount() == 1 })

	h.apply(t, cfg(2))
	waitUntil(t, "the message delivered", func() bool { return len(r.got()) == 1 })
	r.mu.Lock()
	gap := r.times[1].Sub(r.times[0])
	r.mu.Unlock()
	if gap < time.Second {
		t.Errorf("the retry came %s after the 429, before its Retry-After of 1s", gap)
	}
	if !strings.Contains(h.log.String(), "notification handed to the channel's new settings") {
		t.Errorf("the retry was not handed over:\n%s", h.log.String())
	}
	h.settle(t)
	if st := h.d.Status(); len(st) != 1 || st[0].LastSent.IsZero() || st[0].Failures != 0 {
		t.Errorf("delivery not recorded on the group: %+v", st)
	}
}
