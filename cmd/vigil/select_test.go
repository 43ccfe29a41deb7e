package main

import (
	"slices"
	"testing"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/model"
)

// TestCollectorsReadWhatRulesRead checks the wiring: at start each
// collector keeps only the metrics the rules read (so the member's page is
// not even fetched for a rule on Status), and a reload adding a rule on a
// page metric makes the next collection bring it in, and the rule work.
func TestCollectorsReadWhatRulesRead(t *testing.T) {
	h := newHarness(t, upRule)
	sel := func() collectors.Selection {
		return h.d.collectors()[0].(*collectors.TargetCollector).Selection()
	}
	if got := sel().Names(); !slices.Equal(got, []string{"etcd.can_connect"}) {
		t.Fatalf("selection at start: %v", sel())
	}
	h.tick(1)
	if n := h.storeSamples("etcd.has_leader"); n != 0 {
		t.Fatalf("%d etcd.has_leader samples stored, no rule reads it", n)
	}
	h.write("rules/leader.yaml", `groups:
  - name: leader
    interval: 10s
    rules:
      - name: HasLeader
        severity: info
        segment_by: [host.mac]
        condition: last("etcd.has_leader") == 1
        for: 1m
`)
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if got := sel().Names(); !slices.Equal(got, []string{"etcd.can_connect", "etcd.has_leader"}) {
		t.Fatalf("selection after reload: %v", sel())
	}
	h.tick(1)
	if n := h.storeSamples("etcd.has_leader"); n != 1 {
		t.Fatalf("%d etcd.has_leader samples stored after the reload", n)
	}
	if a, ok := h.alert("HasLeader"); !ok || a.State != model.StatePending {
		t.Fatalf("HasLeader: %+v %v", a, ok)
	}
}

// storeSamples counts the samples of metric in the daemon's store.
func (h *harness) storeSamples(metric string) int {
	return h.d.store.CountSamples(metric)
}
