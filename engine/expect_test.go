package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// TestInventoryExpectsMembers: with `expect: {inventory: etcd}`, every
// member of the collector's last inventory must report. A silent member
// fires a missing alert (under no_data: ok, after for), labelled as the
// inventory labels it; an inventory member without the segment_by label
// is not expected; a restart before the collector's first inventory keeps
// the missing alert firing (nothing is known yet), and an inventory
// without the member resolves it.
func TestInventoryExpectsMembers(t *testing.T) {
	set := ruleSet(t, `name: R
severity: high
segment_by: [etcd.member.name]
condition: max("up") == 0
for: 1m
expect: {inventory: etcd}`)
	inv := func(names ...string) model.Inventory {
		in := model.Inventory{Source: "etcd", Members: []model.Labels{{"etcd.member.id": "ffff"}}} // not started: no name
		for _, n := range names {
			in.Members = append(in.Members, model.Labels{"etcd.member.name": n, "etcd.member.id": "id-" + n})
		}
		return in
	}
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	run := func(eng *engine.Engine, m int) []model.Alert {
		eng.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"etcd.member.name": "m0"}, Value: 1, Time: at(m)})
		if err := eng.Eval(context.Background(), at(m)); err != nil {
			t.Fatal(err)
		}
		return eng.Alerts()
	}
	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	if got := run(eng, 0); len(got) != 0 {
		t.Fatalf("at 0m, no inventory yet: %+v, want nothing expected", got)
	}
	eng.Store().SetInventory(inv("m0", "m1"))
	run(eng, 1)
	got := run(eng, 2)
	if len(got) != 1 || got[0].State != model.StateFiring || got[0].Labels["etcd.member.name"] != "m1" ||
		got[0].Labels["etcd.member.id"] != "id-m1" || got[0].Labels[engine.LabelMissing] != "true" {
		t.Fatalf("at 2m: %+v, want m1 missing and firing", got)
	}
	saved, err := json.Marshal(eng.Export())
	if err != nil {
		t.Fatal(err)
	}

	var recs []engine.AlertRecord
	if err := json.Unmarshal(saved, &recs); err != nil {
		t.Fatal(err)
	}
	eng = engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	if restored, _ := eng.Import(recs); restored != 1 {
		t.Fatalf("restored %d alerts, want 1", restored)
	}
	for m := 3; m <= 5; m++ {
		if got := run(eng, m); len(got) != 1 || got[0].State != model.StateFiring || !got[0].FiredAt.Equal(at(2)) {
			t.Fatalf("at %dm, after a restart, before any inventory: %+v, want m1's missing alert still firing since 2m", m, got)
		}
	}
	eng.Store().SetInventory(inv("m0"))
	if got := run(eng, 6); len(got) != 1 || got[0].State != model.StateResolved {
		t.Fatalf("at 6m, m1 gone from the inventory: %+v, want its missing alert resolved", got)
	}
}
