package ha_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/model"
)

// A change that decides what the next leader does (hold a flapping alert,
// keep one firing, page for a missing member) is written even when the
// alert's state and times did not change: the hash that skips unchanged
// records must cover it, or a failover restores the old decision.
func TestStateOnlyChangesAreWritten(t *testing.T) {
	ep := startEtcd(t)
	term := leadAlone(t, ep).Term()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := model.Labels{"host": "etcd-1"}
	orig := engine.AlertRecord{
		Rule: "LinkDown", StateKey: 42, Across: "any", SegmentBy: []string{"host"},
		Fingerprint: model.Fingerprint("LinkDown", seg), Segment: seg,
		Labels: model.Labels{"alertname": "LinkDown", "host": "etcd-1"},
		State:  "firing", ActiveAt: base.Add(-10 * time.Minute), FiredAt: base.Add(-5 * time.Minute),
		Changes: []time.Time{base.Add(-5 * time.Minute)},
	}
	for _, c := range []struct {
		what   string
		change func(r *engine.AlertRecord)
		same   func(got engine.AlertRecord) bool
	}{
		{"held as flapping", func(r *engine.AlertRecord) { r.Flapping, r.FlapSince = true, base },
			func(g engine.AlertRecord) bool { return g.Flapping && g.FlapSince.Equal(base) }},
		{"one more change in the flapping window", func(r *engine.AlertRecord) { r.Changes = append(r.Changes, base) },
			func(g engine.AlertRecord) bool { return len(g.Changes) == 2 }},
		{"kept firing since", func(r *engine.AlertRecord) { r.KeepSince = base },
			func(g engine.AlertRecord) bool { return g.KeepSince.Equal(base) }},
		{"segment missing", func(r *engine.AlertRecord) { r.Missing = true },
			func(g engine.AlertRecord) bool { return g.Missing }},
	} {
		t.Run(c.what, func(t *testing.T) {
			leader := ha.NewState(newClient(t, ep), "/"+t.Name()+"/")
			if err := leader.SaveAlerts(ctx, term, []engine.AlertRecord{orig}); err != nil {
				t.Fatal(err)
			}
			changed := orig
			changed.Changes = append([]time.Time(nil), orig.Changes...)
			c.change(&changed)
			if err := leader.SaveAlerts(ctx, term, []engine.AlertRecord{changed}); err != nil {
				t.Fatal(err)
			}
			got, _, err := ha.NewState(newClient(t, ep), "/"+t.Name()+"/").Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !c.same(got[0]) {
				t.Fatalf("the next leader loaded %+v, want it %s", got, c.what)
			}
		})
	}
}
