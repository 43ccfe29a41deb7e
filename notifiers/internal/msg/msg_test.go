package msg_test

import (
	"fmt"
	"testing"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
)

func alert(member string, state model.AlertState, summary string) model.Alert {
	seg := model.Labels{"member": member}
	return model.Alert{Rule: "EtcdDown", State: state, Segment: seg, Labels: seg,
		Annotations: map[string]string{"summary": summary}}
}

func TestTitleSummarisesTheGroup(t *testing.T) {
	var five []model.Alert
	for i := range 5 {
		five = append(five, alert(fmt.Sprintf("etcd-%d", i), model.StateFiring, "down"))
	}
	whole := model.Alert{Rule: "EtcdDown", State: model.StateFiring}
	cases := []struct {
		name   string
		alerts []model.Alert
		want   string
	}{
		{"firing", five[:2], "[FIRING:2] EtcdDown: etcd-0, etcd-1"},
		{"more than three", five, "[FIRING:5] EtcdDown: etcd-0, etcd-1, etcd-2 and 2 more"},
		{"mixed", []model.Alert{alert("b", model.StateResolved, ""), alert("a", model.StateFiring, "")},
			"[FIRING:1, RESOLVED:1] EtcdDown: a (resolved: b)"},
		{"resolved", []model.Alert{alert("a", model.StateResolved, ""), alert("b", model.StateResolved, "")},
			"[RESOLVED:2] EtcdDown: a, b"},
		{"whole scope", []model.Alert{whole}, "[FIRING:1] EtcdDown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := msg.New(c.alerts).Title; got != c.want {
				t.Errorf("Title = %q, want %q", got, c.want)
			}
		})
	}
}

// A summary templated per segment names one segment: the group's header
// shows it only when every alert has the same.
func TestSummaryOnlyWhenCommon(t *testing.T) {
	if s := msg.New([]model.Alert{alert("a", model.StateFiring, "a down"), alert("b", model.StateFiring, "b down")}).Summary; s != "" {
		t.Errorf("Summary = %q, want none", s)
	}
	if s := msg.New([]model.Alert{alert("a", model.StateFiring, "down"), alert("b", model.StateFiring, "down")}).Summary; s != "down" {
		t.Errorf("Summary = %q, want down", s)
	}
}

func TestGroupKeyFormat(t *testing.T) {
	got := msg.GroupKey("oncall", model.Labels{"cluster": `p"1`, "alertname": "X"})
	if want := `{}/{channel="oncall"}:{alertname="X", cluster="p\"1"}`; got != want {
		t.Errorf("GroupKey = %s, want %s", got, want)
	}
}
