package notifiers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// handOver exports d's delivery state through JSON, as an HA leader's
// successor would read it from etcd, into a fresh dispatcher.
func handOver(t *testing.T, from *notifiers.Dispatcher, cfg notifiers.Config) *harness {
	t.Helper()
	b, err := json.Marshal(from.ExportState())
	if err != nil {
		t.Fatal(err)
	}
	var recs []notifiers.DeliveryRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatal(err)
	}
	to := build(t, cfg)
	if restored, dropped := to.d.ImportState(recs); restored != len(recs) || dropped != 0 {
		t.Fatalf("ImportState: restored %d, dropped %d of %d", restored, dropped, len(recs))
	}
	return to
}

func TestImportStateCarriesDedupOver(t *testing.T) {
	rcv := newReceiver(t)
	cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("hook", rcv.URL)},
		DefaultChannels: []string{"hook"}, GroupWait: time.Second, GroupInterval: time.Minute}
	firing := member("EtcdMemberDown", 1, model.StateFiring)
	resolved := member("EtcdMemberDown", 1, model.StateResolved)

	for _, tc := range []struct {
		name string
		// after the hand-over: what the new process sees, one Process each
		then []model.Alert
		// messages the receiver gets after the hand-over, by status
		want []string
	}{
		{"still firing: nothing new", []model.Alert{firing, firing}, nil},
		{"resolves later: one resolution", []model.Alert{firing, resolved, resolved}, []string{"resolved"}},
		{"resolves at the first Process: one resolution", []model.Alert{resolved, resolved}, []string{"resolved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv.mu.Lock()
			rcv.payloads = nil
			rcv.mu.Unlock()
			old := build(t, cfg)
			old.d.Process(t0, []model.Alert{firing})
			old.d.Process(t0.Add(time.Second), []model.Alert{firing})
			old.settle(t)
			if got := len(rcv.got()); got != 1 {
				t.Fatalf("before the hand-over: %d messages, want 1", got)
			}
			recs := old.d.ExportState()
			if len(recs) != 1 || len(recs[0].Sent) != 1 || recs[0].LastSent.IsZero() {
				t.Fatalf("ExportState: %+v", recs)
			}
			now := handOver(t, old.d, cfg)
			for i, a := range tc.then {
				now.d.Process(t0.Add(time.Duration(2+i)*time.Minute), []model.Alert{a})
				now.settle(t)
			}
			got := rcv.got()[1:]
			if len(got) != len(tc.want) {
				t.Fatalf("after the hand-over: %d messages %+v, want %v", len(got), got, tc.want)
			}
			for i, p := range got {
				if p.Status != tc.want[i] {
					t.Errorf("message %d: status %q, want %q", i, p.Status, tc.want[i])
				}
			}
		})
	}
}

func TestImportStateRepeatsOnSchedule(t *testing.T) {
	rcv := newReceiver(t)
	cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("hook", rcv.URL)},
		DefaultChannels: []string{"hook"}, GroupWait: time.Second, GroupInterval: time.Minute, RepeatInterval: time.Hour}
	firing := member("EtcdMemberDown", 1, model.StateFiring)
	old := build(t, cfg)
	old.d.Process(t0, []model.Alert{firing})
	old.d.Process(t0.Add(time.Second), []model.Alert{firing})
	old.settle(t)
	next := handOver(t, old.d, cfg)
	next.d.Process(t0.Add(59*time.Minute), []model.Alert{firing})
	next.settle(t)
	if got := len(rcv.got()); got != 1 {
		t.Fatalf("before the repeat interval: %d messages, want 1", got)
	}
	next.d.Process(t0.Add(61*time.Minute), []model.Alert{firing})
	next.settle(t)
	if got := len(rcv.got()); got != 2 {
		t.Fatalf("after the repeat interval: %d messages, want 2", got)
	}
}

func TestImportStateDropsUnknownChannels(t *testing.T) {
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel("hook", "http://127.0.0.1:1")}})
	restored, dropped := h.d.ImportState([]notifiers.DeliveryRecord{
		{Channel: "hook", Group: "R"}, {Channel: "gone", Group: "R"},
	})
	if restored != 1 || dropped != 1 {
		t.Fatalf("restored %d, dropped %d; want 1, 1", restored, dropped)
	}
}

// A group_by key survives JSON (the state file, etcd) byte for byte: its
// 0xff separators are not valid UTF-8 and would come back as U+FFFD.
func TestDeliveryRecordJSONKeepsGroupKey(t *testing.T) {
	for _, group := range []string{"EtcdMemberUnreachable", "EtcdMemberUnreachable\xffprod\xff02:00:00:00:00:01", "Rule\xff"} {
		in := notifiers.DeliveryRecord{Channel: "ops", Group: group, LastSent: t0, NextFlush: t0.Add(time.Minute),
			Sent: []model.Alert{{Fingerprint: "f1", Rule: "EtcdMemberUnreachable", State: model.StateFiring}}}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out notifiers.DeliveryRecord
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.Group != in.Group || out.Channel != in.Channel || !out.LastSent.Equal(in.LastSent) ||
			!out.NextFlush.Equal(in.NextFlush) || len(out.Sent) != 1 || out.Sent[0].Fingerprint != "f1" {
			t.Errorf("round trip of group %q: got %+v from %s", group, out, b)
		}
	}
}
