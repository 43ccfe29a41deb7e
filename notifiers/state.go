package notifiers

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// DeliveryRecord is what one channel was last told about one group: the
// dedup state that lets another process (a new HA leader) carry on
// without paging again for what was already delivered. It is plain data
// with JSON tags, saved by the caller (etcd, a file).
type DeliveryRecord struct {
	Channel string `json:"channel"`
	// Group is the grouping key within the channel: the rule, then the
	// values of the channel's group_by labels, separated by 0xff.
	Group string `json:"group"`
	// Sent are the alerts the receiver last got as firing, sorted by
	// fingerprint, as last seen (a resolved one's resolution may still
	// be due).
	Sent []model.Alert `json:"sent,omitempty"`
	// LastSent is when the last message was decided (zero: none yet);
	// the repeat interval counts from it.
	LastSent time.Time `json:"last_sent,omitzero"`
	// NextFlush is the earliest time of the group's next message (group
	// wait, then group interval).
	NextFlush time.Time `json:"next_flush,omitzero"`
	// Thread is what the channel keeps for the group's later messages
	// (the Slack thread of its first firing post), "" if nothing.
	Thread string `json:"thread,omitempty"`
}

// deliveryJSON is DeliveryRecord on the wire. JSON strings are UTF-8, so
// the 0xff separators of a group_by key would come back as U+FFFD (and the
// group never match again): the key travels as the rule plus a list.
type deliveryJSON struct {
	Channel     string        `json:"channel"`
	Group       string        `json:"group"`
	GroupValues []string      `json:"group_values,omitempty"`
	Sent        []model.Alert `json:"sent,omitempty"`
	LastSent    time.Time     `json:"last_sent,omitzero"`
	NextFlush   time.Time     `json:"next_flush,omitzero"`
	Thread      string        `json:"thread,omitempty"`
}

// MarshalJSON writes the group key losslessly (see deliveryJSON).
func (r DeliveryRecord) MarshalJSON() ([]byte, error) {
	parts := strings.Split(r.Group, "\xff")
	return json.Marshal(deliveryJSON{Channel: r.Channel, Group: parts[0], GroupValues: parts[1:],
		Sent: r.Sent, LastSent: r.LastSent, NextFlush: r.NextFlush, Thread: r.Thread})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *DeliveryRecord) UnmarshalJSON(b []byte) error {
	var w deliveryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = DeliveryRecord{Channel: w.Channel, Group: strings.Join(append([]string{w.Group}, w.GroupValues...), "\xff"),
		Sent: w.Sent, LastSent: w.LastSent, NextFlush: w.NextFlush, Thread: w.Thread}
	return nil
}

// Fingerprints lists the fingerprints of r.Sent, in order.
func (r DeliveryRecord) Fingerprints() []string {
	out := make([]string, len(r.Sent))
	for i, a := range r.Sent {
		out[i] = a.Fingerprint
	}
	return out
}

// ExportState returns the delivery state of every group, sorted by channel
// and group. A message in flight counts as not sent yet: its outcome is
// recorded when it completes, and shows in the next export.
func (d *Dispatcher) ExportState() []DeliveryRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DeliveryRecord, 0, len(d.groups))
	for _, g := range d.groups {
		r := DeliveryRecord{Channel: g.ch.name, Group: g.key.key, LastSent: g.lastSent, NextFlush: g.nextFlush, Thread: g.thread}
		for fp := range g.sent {
			a := model.Alert{Fingerprint: fp, State: model.StateFiring}
			if m := g.members[fp]; m != nil {
				a = m.alert
			}
			r.Sent = append(r.Sent, a)
		}
		sort.Slice(r.Sent, func(i, j int) bool { return r.Sent[i].Fingerprint < r.Sent[j].Fingerprint })
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Group < out[j].Group
	})
	return out
}

// ImportState replaces the dispatcher's delivery state with recs (from
// another process's ExportState), before the first Process: an alert the
// receiver already got as firing is not sent again before the repeat
// interval, and its resolution is sent once, even if the alert resolves
// at the very first Process. Records of channels that are not configured
// are dropped and counted. Groups are keyed by channel and by the key
// that channel's group_by gives; a record saved under another group_by
// is regrouped, so a changed config does not page again. Messages already
// in flight are not affected.
func (d *Dispatcher) ImportState(recs []DeliveryRecord) (restored, dropped int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return 0, len(recs)
	}
	d.groups = map[groupKey]*group{}
	d.firing = map[string]model.Alert{}
	stale := false
	for _, r := range recs {
		ci, ok := d.byName[r.Channel]
		if !ok {
			dropped++
			continue
		}
		k := groupKey{ch: ci, key: r.Group}
		g := &group{key: k, ch: d.chans[ci], members: map[string]*member{}, sent: map[string]bool{},
			nextFlush: r.NextFlush, lastSent: r.LastSent, thread: r.Thread}
		for _, a := range r.Sent {
			// seen = gen. A firing one the next Process does not place is
			// inhibited there: it is held, and its resolution is still
			// sent once it resolves (one that is gone resolves through
			// d.firing).
			g.members[a.Fingerprint] = &member{alert: a, seen: d.gen}
			g.sent[a.Fingerprint] = true
			if a.State == model.StateFiring {
				d.firing[a.Fingerprint] = a
			}
		}
		d.groups[k] = g
		restored++
		for _, a := range r.Sent {
			if a.Rule != "" && alertKey(d.grouping[ci].by, &a) != r.Group {
				stale = true
			}
		}
	}
	if stale {
		// Saved under another group_by than the channel has now (the
		// config changed across the hand-over): each alert goes to the
		// group it is placed in now, with what its receiver was sent, as
		// a reload does. An alert saved without its rule stays put.
		d.groups = regroup(d.groups, func(g *group, m *member) string {
			if m.alert.Rule == "" {
				return g.key.key
			}
			return alertKey(d.grouping[g.key.ch].by, &m.alert)
		})
	}
	return restored, dropped
}
