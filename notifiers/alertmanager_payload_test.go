package notifiers_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// amMessage is Alertmanager's webhook message (notify/webhook.Message,
// v0.35.0) with its template.Data: what an Alertmanager receiver decodes.
type amMessage struct {
	*amtemplate.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// decodeAM decodes a body as a receiver written against Alertmanager's
// types would, refusing fields those types do not have.
func decodeAM(t *testing.T, body []byte) amMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m amMessage
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("Alertmanager's types do not decode the payload: %v\n%s", err, body)
	}
	return m
}

// One incident, grouped by cluster, that grows over three evaluations and
// then resolves: every message about it carries the same groupKey and the
// group's labels, decoded with Alertmanager's own types; another cluster
// is another group with its own key.
func TestAlertmanagerGroupKeyIsStableForTheGroupsLife(t *testing.T) {
	hook := newReceiver(t)
	h := build(t, notifiers.Config{
		GroupBy: []string{"cluster"}, GroupInterval: time.Minute,
		Channels:        []notifiers.ChannelConfig{{Name: "am", Webhook: &webhook.Config{URL: hook.URL, Format: webhook.FormatAlertmanager}}},
		DefaultChannels: []string{"am"},
	}, notifiers.WithExternalURL("https://vigil.example.com/"))

	prod := func(n int, state model.AlertState) []model.Alert {
		var out []model.Alert
		for i := range n {
			out = append(out, inCluster("prod", member(unreachable, i, state))...)
		}
		return out
	}
	staging := inCluster("staging", member(unreachable, 7, model.StateFiring))[0]
	steps := []struct {
		at     time.Duration
		alerts []model.Alert
	}{
		{0, append(prod(1, model.StateFiring), staging)},
		{30 * time.Second, append(prod(1, model.StateFiring), staging)}, // group_wait over: first messages
		{time.Minute, append(prod(2, model.StateFiring), staging)},
		{90 * time.Second, append(prod(2, model.StateFiring), staging)}, // a second prod member
		{2 * time.Minute, append(prod(3, model.StateFiring), staging)},
		{150 * time.Second, append(prod(3, model.StateFiring), staging)},   // a third
		{210 * time.Second, append(prod(3, model.StateResolved), staging)}, // all of prod resolves
	}
	for _, s := range steps {
		h.d.Process(t0.Add(s.at), s.alerts)
		h.settle(t)
	}

	hook.mu.Lock()
	bodies := append([][]byte(nil), hook.bodies...)
	hook.mu.Unlock()
	const prodKey = `{}/{channel="am"}:{alertname="EtcdMemberUnreachable", cluster="prod"}`
	const stagingKey = `{}/{channel="am"}:{alertname="EtcdMemberUnreachable", cluster="staging"}`
	var prodSizes []int
	var statuses []string
	for _, b := range bodies {
		m := decodeAM(t, b)
		if m.Version != "4" || m.Receiver != "am" || m.ExternalURL != "https://vigil.example.com/" {
			t.Errorf("version=%q receiver=%q externalURL=%q", m.Version, m.Receiver, m.ExternalURL)
		}
		cluster := m.GroupLabels["cluster"]
		want := map[string]string{"alertname": unreachable, "cluster": cluster}
		if !maps.Equal(map[string]string(m.GroupLabels), want) {
			t.Errorf("groupLabels = %v, want alertname and cluster", m.GroupLabels)
		}
		for k, v := range m.GroupLabels {
			if m.CommonLabels[k] != v {
				t.Errorf("commonLabels %v lack group label %s=%s", m.CommonLabels, k, v)
			}
		}
		switch cluster {
		case "prod":
			if m.GroupKey != prodKey {
				t.Errorf("prod message %d: groupKey = %s, want %s", len(prodSizes), m.GroupKey, prodKey)
			}
			prodSizes = append(prodSizes, len(m.Alerts))
			statuses = append(statuses, m.Status)
		case "staging":
			if m.GroupKey != stagingKey {
				t.Errorf("staging: groupKey = %s, want %s", m.GroupKey, stagingKey)
			}
		default:
			t.Errorf("groupLabels without a cluster: %v", m.GroupLabels)
		}
		for _, a := range m.Alerts {
			if a.GeneratorURL != "https://vigil.example.com/rules/EtcdMemberUnreachable" {
				t.Errorf("generatorURL = %q", a.GeneratorURL)
			}
			if a.Labels["alertname"] != unreachable || a.Labels["cluster"] != cluster || a.Fingerprint == "" || !a.StartsAt.Equal(t0) {
				t.Errorf("alert %+v", a)
			}
			if (a.Status == "resolved") == a.EndsAt.IsZero() {
				t.Errorf("alert %s: status %s with endsAt %v", a.Labels["member"], a.Status, a.EndsAt)
			}
		}
		if len(m.Alerts.Firing())+len(m.Alerts.Resolved()) != len(m.Alerts) {
			t.Errorf("alerts neither firing nor resolved: %+v", m.Alerts)
		}
	}
	if want := []int{1, 2, 3, 3}; !equalInts(prodSizes, want) || statuses[len(statuses)-1] != "resolved" {
		t.Errorf("prod messages had %v alerts (statuses %v), want %v ending resolved", prodSizes, statuses, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
