package etcd_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/collectors/etcd"
	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

const silentMemberRules = `groups:
  - name: etcd
    interval: 30s
    rules:
      - name: EtcdMemberSilent
        severity: high
        segment_by: [etcd.member.name]
        condition: max("etcd.can_connect") == 0
        for: 1m
        expect: {inventory: etcd}
        annotations:
          summary: 'etcd member {{ label "etcd.member.name" }} ({{ label "etcd.member.id" }}) sends nothing'
`

// TestSilentMemberIsMissing: a member of a real 3-member cluster that
// Vigil is not pointed at (its series never arrive) is still in the
// cluster's member list, so a rule expecting the collector's inventory
// fires a missing alert for it under no_data: ok, after `for`; removed
// from the cluster (MemberRemove), it is no longer expected and the alert
// resolves.
func TestSilentMemberIsMissing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	c := etcdtest.StartCluster(t, 3)
	ms := c.Members()
	cfg := collectors.Config{
		Name: "etcd", Type: collectors.TypeEtcd,
		Interval: collectors.Duration(15 * time.Second), Timeout: collectors.Duration(collectTimeout),
	}
	for _, m := range ms[:2] { // m2 left out: its series never arrive
		cfg.Targets = append(cfg.Targets, collectors.Target{Name: m.Name, Address: m.ClientURL, Tags: map[string]string{"cluster": "main"}})
	}
	cs, err := collectors.Build([]collectors.Config{cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	coll := cs[0].(*collectors.TargetCollector)
	t.Cleanup(func() { coll.Close() })
	set, err := rules.Parse([]string{"silent.yaml"}, map[string][]byte{"silent.yaml": []byte(silentMemberRules)})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last []model.Sample
	step := func() {
		t.Helper()
		now = now.Add(groupInterval)
		samples, err := coll.Collect(context.Background(), now)
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		last = samples
		eng.Store().Append(samples...)
		inv, ok := coll.Inventory()
		if !ok {
			t.Fatal("no inventory after a collection")
		}
		eng.Store().SetInventory(inv)
		if err := eng.Eval(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
	alerts := func() []model.Alert {
		var out []model.Alert
		for _, a := range eng.Alerts() {
			if a.State != model.StateInactive {
				out = append(out, a)
			}
		}
		return out
	}

	step()
	for _, s := range last {
		if s.Metric == "etcd.can_connect" && s.Labels[etcd.LabelMemberName] != s.Labels[collectors.LabelTarget] {
			t.Errorf("can_connect of target %s is labelled %s=%q, want the member's name", s.Labels[collectors.LabelTarget], etcd.LabelMemberName, s.Labels[etcd.LabelMemberName])
		}
	}
	inv, _ := coll.Inventory()
	if len(inv.Members) != 3 {
		t.Fatalf("inventory %v, want the 3 members", inv.Members)
	}
	// Warm-up (1m window) and `for: 1m`: firing by 2m30s of engine time.
	for range 4 {
		step()
	}
	got := alerts()
	if len(got) != 1 || got[0].State != model.StateFiring || got[0].Labels[etcd.LabelMemberName] != "m2" ||
		got[0].Labels[engine.LabelMissing] != "true" || got[0].Labels[etcd.LabelMemberID] != ms[2].ID() {
		t.Fatalf("alerts %+v, want one firing missing alert for m2 (%s)", got, ms[2].ID())
	}
	if want := "etcd member m2 (" + ms[2].ID() + ") sends nothing"; got[0].Annotations["summary"] != want {
		t.Errorf("summary %q, want %q", got[0].Annotations["summary"], want)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ms[0].ClientURL}, DialTimeout: waitBudget, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id := ms[2].Etcd().Server.MemberID()
	// etcd refuses to remove a member until its peers have been connected
	// for a while (its strict reconfiguration check): retry until then.
	var removeErr error
	waitFor(t, "MemberRemove accepted", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
		defer cancel()
		_, removeErr = cli.MemberRemove(ctx, uint64(id))
		if removeErr != nil {
			time.Sleep(200 * time.Millisecond)
		}
		return removeErr == nil
	})
	step()
	got = alerts()
	if len(got) != 1 || got[0].State != model.StateResolved || got[0].Labels[etcd.LabelMemberName] != "m2" {
		t.Fatalf("after MemberRemove: alerts %+v, want m2's missing alert resolved", got)
	}
	if inv, _ := coll.Inventory(); len(inv.Members) != 2 {
		t.Errorf("inventory after MemberRemove %v, want 2 members", inv.Members)
	}
}
