package main

import (
	"net/http"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// groupsView is /api/v1/groups: the notification groups each channel
// holds, what their receiver was told and whether delivery is failing,
// as Alertmanager's /api/v2/alerts/groups shows its aggregation groups.
type groupsView struct {
	Groups []apiNotificationGroup `json:"groups"`
	// Following, with ha:, names the leader: the groups are its.
	Following string `json:"following,omitempty"`
}

type apiNotificationGroup struct {
	Channel   string           `json:"channel"`
	Key       string           `json:"key"`
	Labels    model.Labels     `json:"labels"`
	Firing    int              `json:"firing"`
	Resolved  int              `json:"resolved"`
	Alerts    []apiGroupMember `json:"alerts"`
	LastSent  time.Time        `json:"last_sent,omitzero"`
	NextFlush time.Time        `json:"next_flush,omitzero"`
	InFlight  bool             `json:"in_flight"`
	LastError string           `json:"last_error,omitempty"`
	Failures  int              `json:"failures,omitempty"`
}

type apiGroupMember struct {
	Rule        string       `json:"rule"`
	Fingerprint string       `json:"fingerprint"`
	State       string       `json:"state"`
	Labels      model.Labels `json:"labels"`
	// Sent: the receiver was told it fires.
	Sent bool `json:"sent"`
}

func (d *daemon) groupsView() groupsView {
	v := groupsView{Groups: []apiNotificationGroup{}}
	_, disp, ok := d.lead()
	if !ok {
		v.Following = d.following()
		return v
	}
	for _, g := range disp.Status() {
		ag := apiNotificationGroup{Channel: g.Channel, Key: g.Key, Labels: g.Labels, Firing: g.Firing,
			Resolved: g.Resolved, Alerts: []apiGroupMember{}, LastSent: g.LastSent, NextFlush: g.NextFlush,
			InFlight: g.InFlight, LastError: g.LastError, Failures: g.Failures}
		for _, m := range g.Alerts {
			ag.Alerts = append(ag.Alerts, apiGroupMember{Rule: m.Rule, Fingerprint: m.Fingerprint,
				State: m.State.String(), Labels: m.Labels, Sent: m.Sent})
		}
		v.Groups = append(v.Groups, ag)
	}
	return v
}

func (d *daemon) apiGroups(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.groupsView())
}
