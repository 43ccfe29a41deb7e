package notifiers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// memberMessages returns the messages about the member rule, in order, as
// their status and (for checking) the fingerprints and statuses listed.
func memberMessages(got []webhook.Payload) []webhook.Payload {
	var out []webhook.Payload
	for _, p := range got {
		if p.Rule == unreachable {
			out = append(out, p)
		}
	}
	return out
}

// TestResolutionOfInhibitedAlert: an alert that paged gets exactly one
// resolution, whether it was inhibited in between or not, and across a
// hand-over of the delivery state; one inhibited before it was ever
// delivered sends nothing when it resolves.
func TestResolutionOfInhibitedAlert(t *testing.T) {
	const ch = "ops-webhook"
	m := member(unreachable, 3, model.StateFiring, ch)    // etcd-03 down
	mr := member(unreachable, 3, model.StateResolved, ch) // etcd-03 back
	c := clusterAlert(model.StateFiring, ch)              // inhibits the members
	var (
		fire   = []model.Alert{m}
		inh    = []model.Alert{m, c}  // etcd-03 down, held by the cluster alert
		resInh = []model.Alert{mr, c} // etcd-03 back, cluster alert still firing
		res    = []model.Alert{mr}
		gone   = []model.Alert{c} // etcd-03 vanished from the engine's list
	)
	// handOver as a step: export the delivery state into a new process.
	var handOverStep []model.Alert

	for _, tc := range []struct {
		name string
		// one Process per step, a minute apart (group_wait 1s,
		// group_interval 1m); handOverStep moves to a new dispatcher.
		steps [][]model.Alert
		// statuses of the messages about etcd-03, in order
		want []string
	}{
		{"paged, inhibited, resolves while inhibited",
			[][]model.Alert{fire, fire, inh, inh, resInh, resInh, resInh}, []string{"firing", "resolved"}},
		{"paged, inhibited, resolves in the same evaluation the inhibition starts",
			[][]model.Alert{fire, fire, resInh, resInh}, []string{"firing", "resolved"}},
		{"paged, inhibited, vanishes while inhibited",
			[][]model.Alert{fire, fire, inh, gone, gone}, []string{"firing", "resolved"}},
		{"paged, inhibited, inhibition lifts (no second page), then resolves",
			[][]model.Alert{fire, fire, inh, fire, fire, res, res}, []string{"firing", "resolved"}},
		{"paged, inhibited, resolved, fires again inhibited, resolves: one resolution",
			[][]model.Alert{fire, fire, inh, resInh, inh, inh, resInh, resInh}, []string{"firing", "resolved"}},
		{"not inhibited: one resolution",
			[][]model.Alert{fire, fire, res, res}, []string{"firing", "resolved"}},
		{"inhibited before it was ever delivered: nothing",
			[][]model.Alert{inh, inh, resInh, resInh, gone}, nil},
		{"inhibited during group_wait, before the first message: nothing",
			[][]model.Alert{fire, inh, inh, resInh, res}, nil},
		{"inhibited before delivery, inhibition lifts: paged then, then resolved",
			[][]model.Alert{inh, inh, fire, fire, res}, []string{"firing", "resolved"}},
		{"hand-over while held, resolves while inhibited",
			[][]model.Alert{fire, fire, inh, handOverStep, inh, resInh, resInh}, []string{"firing", "resolved"}},
		{"hand-over while held, resolves at the first Process",
			[][]model.Alert{fire, fire, inh, handOverStep, resInh, resInh}, []string{"firing", "resolved"}},
		{"hand-over while held, inhibition lifts, then resolves",
			[][]model.Alert{fire, fire, inh, handOverStep, fire, res, res}, []string{"firing", "resolved"}},
		{"hand-over while held, vanishes",
			[][]model.Alert{fire, fire, inh, handOverStep, gone, gone}, []string{"firing", "resolved"}},
		{"hand-over, inhibited before it was ever delivered: nothing",
			[][]model.Alert{inh, inh, handOverStep, inh, resInh, resInh}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t)
			cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)},
				GroupWait: time.Second, GroupInterval: time.Minute}
			h := build(t, cfg)
			for i, step := range tc.steps {
				if step == nil {
					h = handOver(t, h.d, cfg)
					continue
				}
				h.d.Process(t0.Add(time.Duration(i)*time.Minute), step)
				h.settle(t)
			}
			got := memberMessages(rcv.got())
			if len(got) != len(tc.want) {
				t.Fatalf("%d messages about etcd-03, want %v: %+v", len(got), tc.want, got)
			}
			for i, p := range got {
				if p.Status != tc.want[i] || len(p.Alerts) != 1 ||
					p.Alerts[0].Fingerprint != m.Fingerprint || p.Alerts[0].Status != tc.want[i] {
					t.Errorf("message %d: status %q alerts %+v, want one %q alert for etcd-03", i, p.Status, p.Alerts, tc.want[i])
				}
			}
			for _, g := range h.d.Status() {
				if g.Key == unreachable && g.Firing+g.Resolved == 0 {
					t.Errorf("empty group left: %+v", g)
				}
			}
		})
	}
}

// TestInhibitedWhileFiringMessageInFlight: the alert is inhibited while
// its first page is being delivered; the page arrives, so its resolution
// is due.
func TestInhibitedWhileFiringMessageInFlight(t *testing.T) {
	const ch = "ops-webhook"
	gate := make(chan struct{})
	var (
		mu       sync.Mutex
		statuses []string
		first    = true
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var p webhook.Payload
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		wait := first && p.Rule == unreachable
		if wait {
			first = false
		}
		mu.Unlock()
		if wait {
			<-gate
		}
		mu.Lock()
		if p.Rule == unreachable {
			statuses = append(statuses, p.Status)
		}
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, srv.URL)},
		GroupWait: time.Second, GroupInterval: time.Minute})
	m := member(unreachable, 3, model.StateFiring, ch)
	c := clusterAlert(model.StateFiring, ch)
	h.d.Process(t0, []model.Alert{m})
	h.d.Process(t0.Add(time.Minute), []model.Alert{m}) // the page goes out, and hangs
	h.d.Process(t0.Add(2*time.Minute), []model.Alert{m, c})
	close(gate)
	h.settle(t)
	h.d.Process(t0.Add(3*time.Minute), []model.Alert{m, c})
	h.settle(t)
	h.d.Process(t0.Add(4*time.Minute), []model.Alert{member(unreachable, 3, model.StateResolved, ch), c})
	h.settle(t)
	mu.Lock()
	defer mu.Unlock()
	if len(statuses) != 2 || statuses[0] != "firing" || statuses[1] != "resolved" {
		t.Fatalf("messages about etcd-03: %v, want [firing resolved]", statuses)
	}
}

// TestHeldAlertIsExportedAsSent: the delivery state of a held (inhibited)
// alert that paged says the receiver has it, so a new leader still owes
// the resolution.
func TestHeldAlertIsExportedAsSent(t *testing.T) {
	const ch = "ops-webhook"
	rcv := newReceiver(t)
	h := build(t, notifiers.Config{Channels: []notifiers.ChannelConfig{webhookChannel(ch, rcv.URL)},
		GroupWait: time.Second, GroupInterval: time.Minute})
	m := member(unreachable, 3, model.StateFiring, ch)
	h.d.Process(t0, []model.Alert{m})
	h.d.Process(t0.Add(time.Minute), []model.Alert{m})
	h.settle(t)
	h.d.Process(t0.Add(2*time.Minute), []model.Alert{m, clusterAlert(model.StateFiring, ch)})
	h.settle(t)
	var rec *notifiers.DeliveryRecord
	for _, r := range h.d.ExportState() {
		if r.Group == unreachable {
			rec = &r
		}
	}
	if rec == nil || len(rec.Sent) != 1 || rec.Sent[0].Fingerprint != m.Fingerprint || rec.Sent[0].State != model.StateFiring {
		t.Fatalf("ExportState while held: %+v", h.d.ExportState())
	}
	if n := len(h.d.Inhibited()); n != 1 {
		t.Errorf("Inhibited() = %d, want 1", n)
	}
}
