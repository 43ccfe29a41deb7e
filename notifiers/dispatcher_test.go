package notifiers_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/notifiers/slack"
)

const unreachable = "EtcdMemberUnreachable"

func TestThirtyMembersGiveOneMessagePerChannel(t *testing.T) {
	hook := newReceiver(t)
	slackHook := newReceiver(t)
	out := &syncBuffer{}
	t.Setenv("TEST_SLACK_URL", slackHook.URL+"/services/T000/B000/XXXX")
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{
		webhookChannel("ops-webhook", hook.URL),
		{Name: "oncall-slack", Slack: &slack.Config{WebhookURLEnv: "TEST_SLACK_URL"}},
		{Name: "console", Console: &console.Config{}},
	}}, notifiers.WithConsoleWriter(out))

	all := members(unreachable, 30, model.StateFiring, "ops-webhook", "oncall-slack", "console")
	// Members start firing over three evaluations inside group_wait.
	h.d.Process(t0, all[:10])
	h.d.Process(t0.Add(10*time.Second), all[:20])
	h.d.Process(t0.Add(20*time.Second), all)
	h.settle(t)
	if n := len(hook.got()); n != 0 {
		t.Fatalf("sent %d messages before group_wait", n)
	}
	h.d.Process(t0.Add(30*time.Second), all)
	h.settle(t)
	got := hook.got()
	if len(got) != 1 || len(got[0].Alerts) != 30 {
		t.Fatalf("webhook: want 1 message with 30 alerts, got %d messages", len(got))
	}
	if got[0].Title != "[FIRING:30] "+unreachable+": etcd-00, etcd-01, etcd-02 and 27 more" || got[0].Version != "1" || got[0].Receiver != "ops-webhook" {
		t.Errorf("payload header = %+v", got[0])
	}
	if n := slackHook.hits; n != 1 {
		t.Errorf("slack: want 1 message, got %d", n)
	}
	if c := strings.Count(out.String(), "[FIRING:30] "+unreachable+": etcd-00, etcd-01, etcd-02 and 27 more severity="); c != 1 {
		t.Errorf("console: want one grouped message, got %d:\n%s", c, out.String())
	}
	if c := strings.Count(out.String(), "FIRING   member="); c != 30 {
		t.Errorf("console lists %d members, want 30", c)
	}
	// Nothing changed: no repeat before repeat_interval.
	for i := 1; i <= 10; i++ {
		h.d.Process(t0.Add(30*time.Second+time.Duration(i)*time.Minute), all)
	}
	h.settle(t)
	if n := len(hook.got()); n != 1 {
		t.Fatalf("dedup: %d messages while nothing changed", n)
	}
}

func TestServerErrorsAreRetriedAndDeliveredOnce(t *testing.T) {
	hook := newReceiver(t, status(500), status(502))
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 1, model.StateFiring, "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if got := hook.got(); len(got) != 1 {
		t.Fatalf("want exactly one delivered message, got %d", len(got))
	}
	if hook.hits != 3 {
		t.Errorf("want 3 attempts, got %d", hook.hits)
	}
	if v := h.counter("vigil_notification_attempts_total", "ops-webhook"); v != 3 {
		t.Errorf("attempts metric = %v", v)
	}
	if v := h.counter("vigil_notifications_sent_total", "ops-webhook"); v != 1 {
		t.Errorf("sent metric = %v", v)
	}
	if v := h.counter("vigil_notifications_failed_total", "ops-webhook"); v != 0 {
		t.Errorf("failed metric = %v", v)
	}
}

func TestClientErrorIsNotRetriedButKept(t *testing.T) {
	hook := newReceiver(t, status(400))
	h := build(t, notifiers.Config{GroupInterval: time.Minute,
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 1, model.StateFiring, "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if hook.hits != 1 {
		t.Fatalf("4xx retried: %d attempts", hook.hits)
	}
	st := h.d.Status()
	if len(st) != 1 || st[0].Failures != 1 || !strings.Contains(st[0].LastError, "400") {
		t.Fatalf("failure not kept in status: %+v", st)
	}
	if !strings.Contains(h.log.String(), "notification failed") {
		t.Errorf("final failure not logged:\n%s", h.log.String())
	}
	// Kept, not dropped: tried again at the next group interval.
	h.d.Process(t0.Add(30*time.Second+time.Minute), a)
	h.settle(t)
	if got := hook.got(); len(got) != 1 {
		t.Fatalf("not retried later: %d delivered", len(got))
	}
	if st := h.d.Status(); st[0].LastError != "" {
		t.Errorf("error not cleared after success: %+v", st[0])
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	hook := newReceiver(t, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 1, model.StateFiring, "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if len(hook.got()) != 1 || len(hook.times) != 2 {
		t.Fatalf("want 2 attempts and 1 delivery, got %d/%d", len(hook.times), len(hook.got()))
	}
	if gap := hook.times[1].Sub(hook.times[0]); gap < 950*time.Millisecond {
		t.Errorf("second attempt after %s, want >= 1s (Retry-After)", gap)
	}
}

// deadURL is an address nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

func TestDeadReceiverDoesNotBlockOthers(t *testing.T) {
	live := newReceiver(t)
	h := build(t, notifiers.Config{
		DeliveryTimeout: 300 * time.Millisecond,
		Channels: []notifiers.ChannelConfig{
			webhookChannel("dead", deadURL(t)),
			webhookChannel("live", live.URL),
		}})
	a := members(unreachable, 3, model.StateFiring, "dead", "live")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	waitUntil(t, "the live channel's message", func() bool { return len(live.got()) == 1 })
	h.settle(t)
	if v := h.counter("vigil_notifications_failed_total", "dead"); v != 1 {
		t.Errorf("failed{dead} = %v", v)
	}
	if v := h.counter("vigil_notification_attempts_total", "dead"); v < 2 {
		t.Errorf("dead receiver not retried: %v attempts", v)
	}
	if !strings.Contains(h.log.String(), "channel=dead") || !strings.Contains(h.log.String(), "connection refused") {
		t.Errorf("failure reason not logged:\n%s", h.log.String())
	}
}

// hungReceiver is a real receiver whose first request hangs until release
// is called (at the latest when the test ends); later ones get 200.
func hungReceiver(t *testing.T) (r *receiver, release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	r = newReceiver(t, func(w http.ResponseWriter) { <-gate; w.WriteHeader(http.StatusInternalServerError) })
	t.Cleanup(release) // before the server closes
	return r, release
}

// TestHungReceiverBlocksNeitherProcessNorOthers: while one receiver holds
// its request open, Process returns and another channel gets its message.
// Decided by events: both happen while the hung request is still open.
func TestHungReceiverBlocksNeitherProcessNorOthers(t *testing.T) {
	hung, release := hungReceiver(t)
	live := newReceiver(t)
	h := build(t, notifiers.Config{
		DeliveryTimeout: time.Minute,
		Channels: []notifiers.ChannelConfig{
			webhookChannel("hung", hung.URL),
			webhookChannel("live", live.URL),
		}})
	t.Cleanup(release) // before the dispatcher's Stop, which waits for it
	a := members(unreachable, 3, model.StateFiring, "hung", "live")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	waitUntil(t, "the hung receiver to be asked", func() bool { return hung.hitCount() == 1 })
	processed := make(chan struct{})
	go func() {
		h.d.Process(t0.Add(31*time.Second), a)
		close(processed)
	}()
	select {
	case <-processed:
	case <-time.After(10 * time.Second):
		t.Fatal("Process blocked behind a hung receiver")
	}
	waitUntil(t, "the live channel's message while the other hangs", func() bool { return len(live.got()) == 1 })
	if hung.hitCount() != 1 || len(hung.got()) != 0 {
		t.Fatalf("the hung request ended early: %d requests", hung.hitCount())
	}
}

func clusterAlert(state model.AlertState, notify ...string) model.Alert {
	seg := model.Labels{}
	return model.Alert{
		Fingerprint: model.Fingerprint("EtcdServiceUnavailable", seg), Rule: "EtcdServiceUnavailable",
		Severity: "critical", State: state, Notify: notify,
		Labels:   model.Labels{"alertname": "EtcdServiceUnavailable", "severity": "critical", "cluster": "prod"},
		Segments: []model.SegmentValue{{Labels: model.Labels{"member": "etcd-00"}}, {Labels: model.Labels{"member": "etcd-01"}}},
		Inhibit:  &model.Inhibit{Rules: []string{unreachable}, Equal: []string{"cluster"}},
		ActiveAt: t0, FiredAt: t0,
	}
}

func TestInhibitionHoldsBackMemberPages(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	cluster := clusterAlert(model.StateFiring, "ops-webhook")
	alerts := append(members(unreachable, 5, model.StateFiring, "ops-webhook"), cluster)
	// A member of another cluster is not inhibited.
	other := member(unreachable, 9, model.StateFiring, "ops-webhook")
	other.Labels = other.Labels.Copy()
	other.Labels["cluster"] = "staging"
	alerts = append(alerts, other)

	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	got := hook.got()
	if len(got) != 2 {
		t.Fatalf("want the cluster page and the staging member page, got %d messages", len(got))
	}
	for _, p := range got {
		if p.Rule == unreachable && (len(p.Alerts) != 1 || p.Alerts[0].Labels["cluster"] != "staging") {
			t.Errorf("inhibited member page sent: %+v", p.Alerts)
		}
	}
	inh := h.d.Inhibited()
	if len(inh) != 5 || !strings.HasPrefix(inh[0].By[0], "EtcdServiceUnavailable/") {
		t.Fatalf("Inhibited() = %d alerts %+v", len(inh), inh)
	}
	// The cluster alert resolves, members still down: now they page.
	cluster.State, cluster.ResolvedAt = model.StateResolved, t0.Add(5*time.Minute)
	alerts[5] = cluster
	h.d.Process(t0.Add(5*time.Minute), alerts)
	// Both groups wait for group_interval (default 5m) after their first message.
	h.d.Process(t0.Add(6*time.Minute), alerts)
	h.settle(t)
	got = hook.got()
	if len(got) != 4 {
		t.Fatalf("after the cluster alert resolved: %d messages, want 4", len(got))
	}
	var sawMembers, sawResolved bool
	for _, p := range got[2:] {
		sawMembers = sawMembers || (p.Rule == unreachable && len(p.Alerts) == 6)
		sawResolved = sawResolved || (p.Rule == "EtcdServiceUnavailable" && p.Status == "resolved")
	}
	if !sawMembers || !sawResolved {
		t.Errorf("want member page (6) and cluster resolved, got %+v", got[2:])
	}
	if len(h.d.Inhibited()) != 0 {
		t.Error("still inhibited after source resolved")
	}
}

func TestConfigInhibitRule(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)},
		Inhibit: []notifiers.InhibitConfig{{
			Source: notifiers.MatchConfig{Severity: []string{"critical"}},
			Target: notifiers.MatchConfig{Severity: []string{"high"}},
			Equal:  []string{"cluster"},
		}},
	})
	cluster := clusterAlert(model.StateFiring, "ops-webhook")
	cluster.Inhibit = nil
	alerts := append(members(unreachable, 3, model.StateFiring, "ops-webhook"), cluster)
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if got := hook.got(); len(got) != 1 || got[0].Rule != "EtcdServiceUnavailable" {
		t.Fatalf("got %+v", got)
	}
	if n := len(h.d.Inhibited()); n != 3 {
		t.Errorf("Inhibited() = %d, want 3", n)
	}
}

func TestResolvedSentOnceAndOnlyWhereWanted(t *testing.T) {
	hook := newReceiver(t)
	quiet := newReceiver(t)
	quietCh := webhookChannel("quiet", quiet.URL)
	quietCh.SendResolved = ptr(false)
	h := build(t, notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{
		webhookChannel("ops-webhook", hook.URL), quietCh}})
	a := members(unreachable, 2, model.StateFiring, "ops-webhook", "quiet")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	r := members(unreachable, 2, model.StateResolved, "ops-webhook", "quiet")
	for i := 0; i < 5; i++ {
		h.d.Process(t0.Add(2*time.Minute+time.Duration(i)*time.Minute), r)
		h.settle(t)
	}
	// And then the engine forgets them.
	h.d.Process(t0.Add(10*time.Minute), nil)
	h.settle(t)
	got := hook.got()
	if len(got) != 2 || got[1].Status != "resolved" || len(got[1].Alerts) != 2 || got[1].Alerts[0].ResolvedAt == nil {
		t.Fatalf("want firing then one resolved message, got %d: %+v", len(got), got)
	}
	if n := len(quiet.got()); n != 1 {
		t.Errorf("send_resolved=false channel got %d messages, want 1", n)
	}
	if st := h.d.Status(); len(st) != 0 {
		t.Errorf("groups left after resolution: %+v", st)
	}
}

func TestVanishedFiringAlertResolves(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 1, model.StateFiring, "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	h.d.Process(t0.Add(10*time.Minute), nil)
	h.settle(t)
	got := hook.got()
	if len(got) != 2 || got[1].Status != "resolved" {
		t.Fatalf("got %+v", got)
	}
}

func TestRepeatInterval(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{GroupInterval: time.Minute, RepeatInterval: time.Hour,
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 2, model.StateFiring, "ops-webhook")
	start := t0.Add(30 * time.Second)
	h.d.Process(t0, a)
	for m := 0; m <= 59; m++ {
		h.d.Process(start.Add(time.Duration(m)*time.Minute), a)
		h.settle(t)
	}
	if n := len(hook.got()); n != 1 {
		t.Fatalf("%d messages before repeat_interval", n)
	}
	h.d.Process(start.Add(time.Hour), a)
	h.settle(t)
	if n := len(hook.got()); n != 2 {
		t.Fatalf("no repeat after repeat_interval: %d", n)
	}
	// A new member is news before the repeat interval, after group_interval.
	b := append(a, member(unreachable, 7, model.StateFiring, "ops-webhook"))
	h.d.Process(start.Add(time.Hour+30*time.Second), b)
	h.settle(t)
	if n := len(hook.got()); n != 2 {
		t.Fatalf("sent before group_interval: %d", n)
	}
	h.d.Process(start.Add(time.Hour+time.Minute), b)
	h.settle(t)
	if got := hook.got(); len(got) != 3 || len(got[2].Alerts) != 3 {
		t.Fatalf("new member not sent after group_interval: %d", len(got))
	}
}

func TestRouting(t *testing.T) {
	email := newReceiver(t)
	slackR := newReceiver(t)
	def := newReceiver(t)
	h := build(t, notifiers.Config{
		Channels: []notifiers.ChannelConfig{
			webhookChannel("oncall-email", email.URL),
			webhookChannel("oncall-slack", slackR.URL),
			webhookChannel("default", def.URL),
		},
		Routes: []notifiers.RouteConfig{
			{Match: notifiers.MatchConfig{Severity: []string{"critical"}}, Channels: []string{"oncall-email"}},
			{Match: notifiers.MatchConfig{Rules: []string{"DiskFull"}, LabelsRegex: map[string]string{"host": "db-.*"}}, Channels: []string{"oncall-slack"}},
		},
		DefaultChannels: []string{"default"},
	})
	crit := clusterAlert(model.StateFiring, "oncall-slack")
	crit.Inhibit = nil
	disk := model.Alert{Fingerprint: "d1", Rule: "DiskFull", Severity: "medium", State: model.StateFiring,
		Labels: model.Labels{"host": "db-1"}, Segment: model.Labels{"host": "db-1"}, FiredAt: t0}
	diskWeb := model.Alert{Fingerprint: "d2", Rule: "DiskFull", Severity: "medium", State: model.StateFiring,
		Labels: model.Labels{"host": "web-1"}, Segment: model.Labels{"host": "web-1"}, FiredAt: t0}
	alerts := []model.Alert{crit, disk, diskWeb}
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	rules := func(r *receiver) []string {
		var out []string
		for _, p := range r.got() {
			for _, a := range p.Alerts {
				out = append(out, a.Rule+":"+a.Fingerprint)
			}
		}
		return out
	}
	if got := rules(email); len(got) != 1 || !strings.HasPrefix(got[0], "EtcdServiceUnavailable") {
		t.Errorf("email got %v", got)
	}
	if got := strings.Join(rules(slackR), ","); !strings.Contains(got, "EtcdServiceUnavailable") || !strings.Contains(got, "d1") || strings.Contains(got, "d2") {
		t.Errorf("slack got %v", got)
	}
	if got := rules(def); len(got) != 1 || got[0] != "DiskFull:d2" {
		t.Errorf("default got %v", got)
	}
}

func TestGroupByLabels(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{GroupBy: []string{"cluster"},
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}})
	a := members(unreachable, 4, model.StateFiring, "ops-webhook")
	for i := range a[:2] {
		a[i].Labels = a[i].Labels.Copy()
		a[i].Labels["cluster"] = "staging"
	}
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if got := hook.got(); len(got) != 2 || len(got[0].Alerts) != 2 {
		t.Fatalf("want 2 groups of 2, got %d", len(got))
	}
}

func TestBuildErrors(t *testing.T) {
	_, err := notifiers.Build(notifiers.Config{
		Channels: []notifiers.ChannelConfig{
			{Name: "a", Console: &console.Config{}},
			{Name: "a", Console: &console.Config{}},
			{Name: "both", Console: &console.Config{}, Slack: &slack.Config{}},
			{Name: "noenv", Slack: &slack.Config{TokenEnv: "VIGIL_TEST_UNSET_TOKEN", Channel: "#x"}},
		},
		Routes:          []notifiers.RouteConfig{{Match: notifiers.MatchConfig{Severity: []string{"urgent"}}, Channels: []string{"nope"}}},
		DefaultChannels: []string{"missing"},
		Inhibit:         []notifiers.InhibitConfig{{Source: notifiers.MatchConfig{LabelsRegex: map[string]string{"x": "("}}}},
	}, notifiers.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`channel "a": defined twice`,
		`channel "both": exactly one of`,
		`channel "noenv": slack: token_env: environment variable VIGIL_TEST_UNSET_TOKEN is not set`,
		`routes[0].match.severity: "urgent"`,
		`routes[0]: unknown channel "nope"`,
		`default_channels: unknown channel "missing"`,
		`inhibit_rules[0].source.labels_regex[x]`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestChannelNamesAndUnknownNotify(t *testing.T) {
	out := &syncBuffer{}
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{
		{Name: "console", Console: &console.Config{}},
		{Name: "b-console", Console: &console.Config{}},
	}}, notifiers.WithConsoleWriter(out))
	if got := strings.Join(h.d.ChannelNames(), ","); got != "b-console,console" {
		t.Errorf("ChannelNames = %s", got)
	}
	a := members(unreachable, 1, model.StateFiring, "console", "ghost")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(time.Second), a)
	if c := strings.Count(h.log.String(), "unknown channel"); c != 1 {
		t.Errorf("unknown channel logged %d times", c)
	}
}

func TestTemplateErrorFallsBack(t *testing.T) {
	out := &syncBuffer{}
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{
		{Name: "console", Console: &console.Config{Template: "{{ .NoSuchField }}"}},
	}}, notifiers.WithConsoleWriter(out))
	a := members(unreachable, 2, model.StateFiring, "console")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if !strings.Contains(out.String(), "[FIRING:2] "+unreachable+": member=etcd-00; member=etcd-01") {
		t.Errorf("fallback message missing:\n%s", out.String())
	}
	if !strings.Contains(h.log.String(), "template failed") {
		t.Errorf("template error not logged")
	}
	if v := h.counter("vigil_notification_template_errors_total", "console"); v != 1 {
		t.Errorf("template errors = %v", v)
	}
	// Delivered with the fallback: not retried.
	h.d.Process(t0.Add(10*time.Minute), a)
	h.settle(t)
	if c := strings.Count(out.String(), "[FIRING:2]"); c != 1 {
		t.Errorf("fallback sent %d times", c)
	}
}

func TestStopIsBoundedAndIdempotent(t *testing.T) {
	slow, _ := hungReceiver(t)
	d, err := notifiers.Build(notifiers.Config{GroupWait: time.Second, DeliveryTimeout: time.Minute,
		Channels: []notifiers.ChannelConfig{webhookChannel("slow", slow.URL)}},
		notifiers.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	a := members(unreachable, 1, model.StateFiring, "slow")
	d.Process(t0, a)
	d.Process(t0.Add(time.Second), a)
	waitUntil(t, "the delivery to start", func() bool { return slow.hitCount() == 1 })
	// Stop must return by its deadline, while the request still hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(ctx) }()
	select {
	case err := <-stopped:
		if err == nil {
			t.Error("Stop with a stuck delivery returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return by its deadline while a delivery hung")
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	d.Process(t0.Add(time.Hour), a) // no-op, no panic
}
