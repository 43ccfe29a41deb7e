package notifiers_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// inClusterAlert is a firing alert of rule with severity in cluster (no
// cluster label when cluster is ""), with no rule-level inhibit.
func inClusterAlert(rule, severity, cluster, member string) model.Alert {
	seg := model.Labels{"member": member}
	labels := model.Labels{"alertname": rule, "severity": severity, "member": member}
	if cluster != "" {
		labels["cluster"] = cluster
		seg["cluster"] = cluster
	}
	return model.Alert{
		Fingerprint: model.Fingerprint(rule, seg), Rule: rule, Severity: severity, State: model.StateFiring,
		Labels: labels, Segment: seg, Notify: []string{"ops-webhook"}, ActiveAt: t0, FiredAt: t0,
	}
}

// inhibitedRules runs one evaluation's alerts through a dispatcher with
// the config inhibit rule and returns which alerts are held back, as
// "rule/member/cluster", and the pages a real receiver got.
func inhibitedRules(t *testing.T, rule notifiers.InhibitConfig, alerts ...model.Alert) (held []string, paged []string) {
	t.Helper()
	hook := newReceiver(t)
	h := build(t, notifiers.Config{
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)},
		GroupBy:  []string{"alertname", "member", "cluster"},
		Inhibit:  []notifiers.InhibitConfig{rule},
	})
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(time.Minute), alerts) // past group_wait: the pages go out
	h.settle(t)
	for _, ia := range h.d.Inhibited() {
		held = append(held, ia.Alert.Rule+"/"+ia.Alert.Labels["member"]+"/"+ia.Alert.Labels["cluster"])
	}
	for _, p := range hook.got() {
		for _, a := range p.Alerts {
			paged = append(paged, a.Rule+"/"+a.Labels["member"]+"/"+a.Labels["cluster"])
		}
	}
	slices.Sort(held)
	slices.Sort(paged)
	return held, paged
}

// TestConfigInhibitHonoursEqual: a cluster-wide outage in cluster A holds
// back A's member pages only; cluster B's member still pages, and so does
// a member without a cluster label (A's source has one).
func TestConfigInhibitHonoursEqual(t *testing.T) {
	rule := notifiers.InhibitConfig{
		Source: notifiers.MatchConfig{Rules: []string{"ClusterDown"}},
		Target: notifiers.MatchConfig{Rules: []string{"MemberDown"}},
		Equal:  []string{"cluster"},
	}
	held, paged := inhibitedRules(t, rule,
		inClusterAlert("ClusterDown", "critical", "a", ""),
		inClusterAlert("MemberDown", "high", "a", "etcd-1"),
		inClusterAlert("MemberDown", "high", "b", "etcd-2"),
		inClusterAlert("MemberDown", "high", "", "etcd-3"),
	)
	if want := []string{"MemberDown/etcd-1/a"}; !slices.Equal(held, want) {
		t.Errorf("held back %v, want %v", held, want)
	}
	if want := []string{"ClusterDown//a", "MemberDown/etcd-2/b", "MemberDown/etcd-3/"}; !slices.Equal(paged, want) {
		t.Errorf("paged %v, want %v", paged, want)
	}
}

// TestConfigInhibitHonoursTarget: a critical alert holds back the high
// alerts the target names, never a low one outside the target.
func TestConfigInhibitHonoursTarget(t *testing.T) {
	rule := notifiers.InhibitConfig{
		Source: notifiers.MatchConfig{Severity: []string{"critical"}},
		Target: notifiers.MatchConfig{Severity: []string{"high"}, Labels: map[string]string{"member": "etcd-1"}},
		Equal:  []string{"cluster"},
	}
	held, paged := inhibitedRules(t, rule,
		inClusterAlert("ClusterDown", "critical", "a", ""),
		inClusterAlert("MemberDown", "high", "a", "etcd-1"),
		inClusterAlert("MemberSlow", "low", "a", "etcd-1"),
		inClusterAlert("MemberDown", "high", "a", "etcd-2"),
	)
	if want := []string{"MemberDown/etcd-1/a"}; !slices.Equal(held, want) {
		t.Errorf("held back %v, want %v", held, want)
	}
	if want := []string{"ClusterDown//a", "MemberDown/etcd-2/a", "MemberSlow/etcd-1/a"}; !slices.Equal(paged, want) {
		t.Errorf("paged %v, want %v", paged, want)
	}
}

// TestConfigInhibitNeverItself: an alert matching both sides of a rule
// does not hold itself back (it would never page), but it does hold back
// another alert matching the target.
func TestConfigInhibitNeverItself(t *testing.T) {
	rule := notifiers.InhibitConfig{
		Source: notifiers.MatchConfig{Labels: map[string]string{"cluster": "a"}},
		Target: notifiers.MatchConfig{Labels: map[string]string{"cluster": "a"}},
		Equal:  []string{"cluster"},
	}
	held, paged := inhibitedRules(t, rule, inClusterAlert("ClusterDown", "critical", "a", ""))
	if len(held) != 0 || !slices.Equal(paged, []string{"ClusterDown//a"}) {
		t.Errorf("alone: held back %v, paged %v; want it paged", held, paged)
	}
	held, _ = inhibitedRules(t, rule,
		inClusterAlert("ClusterDown", "critical", "a", ""),
		inClusterAlert("MemberDown", "high", "a", "etcd-1"))
	if want := []string{"ClusterDown//a", "MemberDown/etcd-1/a"}; !slices.Equal(held, want) {
		t.Errorf("two alerts matching both sides: held back %v, want each held by the other %v", held, want)
	}
}
