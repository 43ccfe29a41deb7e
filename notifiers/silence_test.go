package notifiers_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
	"github.com/vigil-alerts/vigil/silences"
)

// Silences against real webhook receivers: the dispatcher's clock is the
// `now` passed to Process and to the store; tests wait only for
// deliveries.

// silenceOn adds an active (or, with start after now, pending) silence
// of one matcher to st at now.
func silenceOn(t *testing.T, st *silences.Store, matcher string, now, start, end time.Time) silences.Silence {
	t.Helper()
	m, err := silences.ParseMatcher(matcher)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.Add(silences.Silence{Matchers: []silences.Matcher{m}, StartsAt: start, EndsAt: end,
		CreatedBy: "alice", Comment: "replacing disk"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gauge is the value of an unlabelled gauge.
func (h *harness) gauge(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// statuses is, in order, the status of each message about fingerprint fp.
func statuses(got []webhook.Payload, fp string) []string {
	var out []string
	for _, p := range got {
		for _, a := range p.Alerts {
			if a.Fingerprint == fp {
				out = append(out, a.Status)
			}
		}
	}
	return out
}

func listed(p webhook.Payload) []string {
	var out []string
	for _, a := range p.Alerts {
		out = append(out, a.Labels["member"])
	}
	return out
}

// TestSilenceHoldsOneMemberOfThirty: 30 members of EtcdMemberUnreachable
// fire; the host of etcd-07 is silenced for maintenance, so the grouped
// message lists the other 29, and the muted one shows in Silenced() and
// the gauge. A dispatcher without the store silences nothing.
func TestSilenceHoldsOneMemberOfThirty(t *testing.T) {
	const ch = "ops-webhook"
	st := silences.NewStore()
	s := silenceOn(t, st, "member=etcd-07", t0, t0, t0.Add(2*time.Hour))
	rcv, plain := newReceiver(t), newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)}},
		notifiers.WithSilences(st))
	hp := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, plain.URL)}})

	all := members(unreachable, 30, model.StateFiring, ch)
	for _, d := range []*notifiers.Dispatcher{h.d, hp.d} {
		d.Process(t0, all)
		d.Process(t0.Add(30*time.Second), all)
	}
	h.settle(t)
	hp.settle(t)
	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	if names := listed(got[0]); len(names) != 29 || slices.Contains(names, "etcd-07") {
		t.Errorf("message lists %d members %v, want the 29 other than etcd-07", len(names), names)
	}
	if p := plain.got(); len(p) != 1 || len(p[0].Alerts) != 30 {
		t.Errorf("without WithSilences: %d messages, want one of 30 alerts", len(p))
	}

	sil := h.d.Silenced()
	if len(sil) != 1 || sil[0].Alert.Fingerprint != all[7].Fingerprint || !slices.Equal(sil[0].By, []string{s.ID}) {
		t.Fatalf("Silenced() = %+v, want etcd-07 by %s", sil, s.ID)
	}
	if v := h.gauge("vigil_alerts_silenced"); v != 1 {
		t.Errorf("vigil_alerts_silenced = %v, want 1", v)
	}
	if v := hp.gauge("vigil_alerts_silenced"); v != 0 {
		t.Errorf("vigil_alerts_silenced without a store = %v, want 0", v)
	}
	if n := len(hp.d.Silenced()); n != 0 {
		t.Errorf("Silenced() without a store: %d", n)
	}

	// A second silence on the same alert is listed too; expiring both
	// empties the list and the gauge at the next Process.
	s2 := silenceOn(t, st, `member=~"etcd-0[0-7]"`, t0.Add(time.Minute), time.Time{}, t0.Add(time.Hour))
	h.d.Process(t0.Add(time.Minute), all)
	sil = h.d.Silenced()
	if len(sil) != 8 || !slices.IsSortedFunc(sil, func(a, b notifiers.SilencedAlert) int {
		return strings.Compare(a.Alert.Fingerprint, b.Alert.Fingerprint)
	}) {
		t.Fatalf("Silenced() with two silences: %d alerts, want 8 sorted by fingerprint", len(sil))
	}
	for _, sa := range sil {
		want := []string{s2.ID}
		if sa.Alert.Labels["member"] == "etcd-07" {
			want = sorted(s.ID, s2.ID)
		}
		if !slices.Equal(sa.By, want) {
			t.Errorf("%s silenced by %v, want %v", sa.Alert.Labels["member"], sa.By, want)
		}
	}
	if v := h.gauge("vigil_alerts_silenced"); v != 8 {
		t.Errorf("vigil_alerts_silenced = %v, want 8", v)
	}
	for _, id := range []string{s.ID, s2.ID} {
		if _, err := st.Expire(id, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	h.d.Process(t0.Add(2*time.Minute), all)
	if n, v := len(h.d.Silenced()), h.gauge("vigil_alerts_silenced"); n != 0 || v != 0 {
		t.Errorf("after Expire: Silenced() %d, gauge %v", n, v)
	}
	h.settle(t)
	// etcd-07 was never sent: it is news now, sent at the group's next
	// interval, with the 29 others.
	h.d.Process(t0.Add(2*time.Minute+30*time.Second), all)
	h.d.Process(t0.Add(6*time.Minute), all)
	h.settle(t)
	got = rcv.got()
	if len(got) != 2 || len(got[1].Alerts) != 30 {
		t.Fatalf("after the silences ended: %d messages (last %d alerts), want a second one of 30", len(got), len(got[len(got)-1].Alerts))
	}
}

func sorted(ss ...string) []string {
	slices.Sort(ss)
	return ss
}

// TestSilenceAfterPage: a silence added after the receiver was paged stops
// repeats, and when the alert resolves during the silence the receiver
// gets exactly one resolution; after it is expired early, the still firing
// alert is not paged again (the receiver has it).
func TestSilenceAfterPage(t *testing.T) {
	const ch = "ops-webhook"
	m3 := member(unreachable, 3, model.StateFiring, ch)
	m3r := member(unreachable, 3, model.StateResolved, ch)
	for _, tc := range []struct {
		name string
		// after the page at t0+1m: a silence from t0+2m; one Process per
		// minute from t0+2m, each step's alerts (nil: etcd-03 vanished).
		steps [][]model.Alert
		want  []string
	}{
		{"resolves during the silence", stepsOf(20, m3, 5, m3r), []string{"firing", "resolved"}},
		{"vanishes during the silence", stepsOf(20, m3, 5, model.Alert{}), []string{"firing", "resolved"}},
		{"still firing, past repeat_interval", stepsOf(30, m3), []string{"firing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := silences.NewStore()
			rcv := newReceiver(t)
			h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)},
				GroupWait: time.Second, GroupInterval: time.Minute, RepeatInterval: 10 * time.Minute},
				notifiers.WithSilences(st))
			h.d.Process(t0, []model.Alert{m3})
			h.d.Process(t0.Add(time.Minute), []model.Alert{m3})
			h.settle(t)
			s := silenceOn(t, st, "member=etcd-03", t0.Add(2*time.Minute), time.Time{}, t0.Add(time.Hour))
			for i, step := range tc.steps {
				now := t0.Add(time.Duration(2+i) * time.Minute)
				h.d.Process(now, step)
				h.settle(t)
				if step[0].State == model.StateFiring && len(h.d.Silenced()) != 1 {
					t.Fatalf("step %d: Silenced() = %+v", i, h.d.Silenced())
				}
			}
			if got := statuses(rcv.got(), m3.Fingerprint); !slices.Equal(got, tc.want) {
				t.Fatalf("messages about etcd-03: %v, want %v", got, tc.want)
			}
			if tc.steps[len(tc.steps)-1][0].State != model.StateFiring {
				return
			}
			// Expired early while it still fires: no second page until
			// repeat_interval after the last message, as without silences.
			end := t0.Add(time.Duration(2+len(tc.steps)) * time.Minute)
			if _, err := st.Expire(s.ID, end); err != nil {
				t.Fatal(err)
			}
			h.d.Process(end, []model.Alert{m3})
			h.d.Process(end.Add(time.Minute), []model.Alert{m3})
			h.settle(t)
			if got := statuses(rcv.got(), m3.Fingerprint); !slices.Equal(got, []string{"firing", "firing"}) {
				t.Fatalf("after the silence: %v, want the page and one repeat", got)
			}
		})
	}
}

// stepsOf expands (count, alert) pairs into Process steps; a zero alert
// means the alert is gone from the engine's list.
func stepsOf(pairs ...any) [][]model.Alert {
	var out [][]model.Alert
	for i := 0; i < len(pairs); i += 2 {
		n, a := pairs[i].(int), pairs[i+1].(model.Alert)
		for range n {
			if a.Fingerprint == "" {
				out = append(out, []model.Alert{{State: model.StateInactive}})
				continue
			}
			out = append(out, []model.Alert{a})
		}
	}
	return out
}

// TestSilenceExpiresBeforeFirstPage: an alert silenced from the start is
// never sent while the silence lasts; when it ends and the alert still
// fires, it is news, sent after group_wait.
func TestSilenceExpiresBeforeFirstPage(t *testing.T) {
	const ch = "ops-webhook"
	st := silences.NewStore()
	silenceOn(t, st, `member=~"etcd-0[0-9]"`, t0, t0, t0.Add(10*time.Minute))
	rcv := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)},
		GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute}, notifiers.WithSilences(st))
	alerts := members(unreachable, 3, model.StateFiring, ch)
	for i := range 20 { // every 30 s up to t0+9m30s
		h.d.Process(t0.Add(time.Duration(i)*30*time.Second), alerts)
	}
	h.settle(t)
	if n := len(rcv.got()); n != 0 {
		t.Fatalf("%d messages while silenced", n)
	}
	if n := len(h.d.Status()); n != 0 {
		t.Errorf("groups kept for alerts never sent: %+v", h.d.Status())
	}
	end := t0.Add(10 * time.Minute) // EndsAt is exclusive: not muted at end
	h.d.Process(end, alerts)
	h.d.Process(end.Add(29*time.Second), alerts)
	h.settle(t)
	if n := len(rcv.got()); n != 0 {
		t.Fatalf("sent %s after the silence ended, before group_wait", 29*time.Second)
	}
	h.d.Process(end.Add(30*time.Second), alerts)
	h.settle(t)
	got := rcv.got()
	if len(got) != 1 || len(got[0].Alerts) != 3 || got[0].Status != "firing" {
		t.Fatalf("after the silence: %+v, want one message of 3 firing", got)
	}
	// Resolutions of alerts that were never sent while silenced, for
	// comparison, stay quiet: that is covered by inhibition's tests.
}

// TestPendingSilenceMutesNothingUntilItStarts: a silence that starts in 10
// minutes lets pages through until then; from its start, alerts it
// matches are held.
func TestPendingSilenceMutesNothingUntilItStarts(t *testing.T) {
	const ch = "ops-webhook"
	st := silences.NewStore()
	s := silenceOn(t, st, `member=~"etcd-0[35]"`, t0, t0.Add(10*time.Minute), t0.Add(2*time.Hour))
	if s.State(t0) != silences.StatePending {
		t.Fatalf("silence is %s, want pending", s.State(t0))
	}
	rcv := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)},
		GroupWait: 30 * time.Second, GroupInterval: time.Minute}, notifiers.WithSilences(st))
	m3, m5 := member(unreachable, 3, model.StateFiring, ch), member(unreachable, 5, model.StateFiring, ch)
	h.d.Process(t0, []model.Alert{m3})
	if n := len(h.d.Silenced()); n != 0 {
		t.Errorf("pending silence muted %d alerts", n)
	}
	h.d.Process(t0.Add(30*time.Second), []model.Alert{m3})
	h.settle(t)
	if got := statuses(rcv.got(), m3.Fingerprint); !slices.Equal(got, []string{"firing"}) {
		t.Fatalf("etcd-03 before the silence starts: %v, want paged", got)
	}
	h.d.Process(t0.Add(10*time.Minute-time.Nanosecond), []model.Alert{m3})
	if n := len(h.d.Silenced()); n != 0 {
		t.Errorf("silence muted before StartsAt: %d", n)
	}
	// From StartsAt (inclusive), etcd-05 starts firing too: held.
	for i := range 10 {
		h.d.Process(t0.Add(10*time.Minute+time.Duration(i)*time.Minute), []model.Alert{m3, m5})
		h.settle(t)
	}
	sil := h.d.Silenced()
	if len(sil) != 2 || !slices.Equal(sil[0].By, []string{s.ID}) || !slices.Equal(sil[1].By, []string{s.ID}) {
		t.Fatalf("Silenced() = %+v, want etcd-03 and etcd-05 by %s", sil, s.ID)
	}
	if v := h.gauge("vigil_alerts_silenced"); v != 2 {
		t.Errorf("vigil_alerts_silenced = %v, want 2", v)
	}
	if got := statuses(rcv.got(), m5.Fingerprint); len(got) != 0 {
		t.Errorf("etcd-05 sent while silenced: %v", got)
	}
	if got := statuses(rcv.got(), m3.Fingerprint); !slices.Equal(got, []string{"firing"}) {
		t.Errorf("etcd-03: %v, want only the page from before the silence", got)
	}
}

// TestSilencedAndInhibited: an alert held by both is in both lists, and
// counted in both gauges.
func TestSilencedAndInhibited(t *testing.T) {
	const ch = "ops-webhook"
	st := silences.NewStore()
	s := silenceOn(t, st, "member=etcd-03", t0, t0, t0.Add(time.Hour))
	rcv := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)}},
		notifiers.WithSilences(st))
	m3 := member(unreachable, 3, model.StateFiring, ch)
	h.d.Process(t0, []model.Alert{m3, clusterAlert(model.StateFiring, ch)})
	inh, sil := h.d.Inhibited(), h.d.Silenced()
	if len(inh) != 1 || inh[0].Alert.Fingerprint != m3.Fingerprint {
		t.Errorf("Inhibited() = %+v", inh)
	}
	if len(sil) != 1 || sil[0].Alert.Fingerprint != m3.Fingerprint || !slices.Equal(sil[0].By, []string{s.ID}) {
		t.Errorf("Silenced() = %+v", sil)
	}
	if a, b := h.gauge("vigil_alerts_inhibited"), h.gauge("vigil_alerts_silenced"); a != 1 || b != 1 {
		t.Errorf("gauges inhibited %v silenced %v, want 1 and 1", a, b)
	}
}

// TestApplyKeepsSilences: the store is not config; a reload (here: a new
// channel and new timings) keeps silencing, on the kept channel and the
// new one.
func TestApplyKeepsSilences(t *testing.T) {
	st := silences.NewStore()
	s := silenceOn(t, st, "member=etcd-07", t0, t0, t0.Add(2*time.Hour))
	a, b := newReceiver(t), newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("a", a.URL)},
		DefaultChannels: []string{"a"}}, notifiers.WithSilences(st))
	all := members(unreachable, 30, model.StateFiring)
	h.d.Process(t0, all)
	h.apply(t, notifiers.Config{
		Channels:        []notifiers.ChannelConfig{webhookChannel("a", a.URL), webhookChannel("b", b.URL)},
		DefaultChannels: []string{"a", "b"}, GroupWait: 20 * time.Second})
	h.d.Process(t0.Add(20*time.Second), all)
	h.d.Process(t0.Add(40*time.Second), all)
	h.settle(t)
	for name, r := range map[string]*receiver{"a": a, "b": b} {
		got := r.got()
		if len(got) != 1 {
			t.Fatalf("%s: %d messages, want 1", name, len(got))
		}
		if names := listed(got[0]); len(names) != 29 || slices.Contains(names, "etcd-07") {
			t.Errorf("%s: message lists %d members, want the 29 other than etcd-07", name, len(names))
		}
	}
	if sil := h.d.Silenced(); len(sil) != 1 || !slices.Equal(sil[0].By, []string{s.ID}) {
		t.Errorf("Silenced() after Apply = %+v", sil)
	}
}
