package notifiers

import (
	"context"
	"log/slog"
	"slices"
	"sort"
)

// Apply makes cfg the running dispatcher's config (a reload), built with
// the options given to Build. Everything that can fail — building every
// channel (an unchanged one too, which reads its secrets again), checking
// routes and inhibit rules — is done first, without holding up Process; on an error nothing changes and the
// error names the channel or route, as Build's do. Then, in one step under
// the lock Process takes:
//
//   - A channel whose name, config and secrets are unchanged is kept as it
//     is: its queue, workers and deliveries in flight, and its groups'
//     dedup state. Every channel's *_file secrets are read again, so a
//     rotated secret file (a Kubernetes Secret volume) counts as a change
//     of config, below; *_env secrets cannot change in a running process.
//   - A channel whose name is kept and whose only change is to its own
//     group_by, group_wait, group_interval or repeat_interval is kept too:
//     those shape its groups (below), not its sender.
//   - A channel whose name is kept but whose config changed (URL, token,
//     recipients, concurrency, send_resolved), or whose secrets read again
//     differ from those it was built with, gets a new sender and
//     workers. Its groups, and so what its receiver was already sent, are
//     kept: nothing is paged again. Messages still queued move to the new
//     sender, and so does a message waiting for its next attempt (still
//     not before a Retry-After the receiver asked for); an attempt
//     already sent finishes with the old one.
//   - A removed channel's queued messages are dropped, a delivery in flight
//     to it is cancelled (an attempt still finishing with settings an
//     earlier reload replaced too), both counted in
//     vigil_notifications_dropped_total and logged; its groups are
//     forgotten and its per-channel metric series deleted once its last
//     delivery has returned.
//   - A new channel starts empty: alerts already firing that now route to
//     it are news to it, sent after group_wait.
//   - Routes, default_channels, inhibit_rules and timings are used from the
//     next Process. A group's next message, scheduled with its channel's
//     old group_wait or group_interval, moves by the difference; a new
//     repeat_interval counts from the group's last message. A channel
//     whose group_by changes (its own, or the global one it uses) has its
//     alerts regrouped, keeping what its receiver was sent; other
//     channels' groups are left as they are.
//
// An alert a receiver was paged about that no longer routes to it is not
// repeated to it, and it still gets the resolution. Apply after Stop does
// nothing. Safe to call concurrently with everything else.
func (d *Dispatcher) Apply(cfg Config) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	running := make(map[string]*channel, len(d.chans))
	for _, c := range d.chans {
		running[c.name] = c
	}
	p, err := d.o.parts(cfg, func(name string, conf *ChannelConfig, n Notifier) *channel {
		if c := running[name]; c != nil && sameChannel(c, conf, n) {
			return c
		}
		return nil
	})
	if err != nil {
		return err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	kept := make(map[*channel]bool, len(p.chans))
	for _, c := range p.chans {
		kept[c] = c.launched()
	}
	var added, changed, removed []string
	moving := map[string][]*job{}
	dropped := map[string]int{}
	for _, c := range d.chans {
		if kept[c] {
			continue
		}
		i, stays := p.byName[c.name]
		if stays {
			c.successor = p.chans[i]
		}
		q := d.retire(c, !stays)
		if stays {
			changed = append(changed, c.name)
			moving[c.name] = q
			continue
		}
		removed = append(removed, c.name)
		dropped[c.name] = len(q)
		d.metrics.dropped.Add(float64(len(q)))
	}
	for _, c := range p.chans {
		if c.launched() {
			continue
		}
		d.launch(c)
		if q, ok := moving[c.name]; ok {
			c.enqueue(q...)
		} else {
			added = append(added, c.name)
		}
	}

	// Groups follow their channel by name to its index in the new list;
	// a removed channel's groups are forgotten. The groups of a channel
	// whose group_by changes (its own or the global one it uses) are
	// regrouped.
	var retimed []string
	was := make(map[string]grouping, len(d.chans))
	for i, c := range d.chans {
		was[c.name] = d.grouping[i]
	}
	for i, c := range p.chans {
		if old, ok := was[c.name]; ok && !old.equal(p.grouping[i]) {
			retimed = append(retimed, c.name)
		}
	}
	groups := make(map[groupKey]*group, len(d.groups))
	rekey := map[groupKey]*group{}
	forgotten := map[string]int{}
	for _, g := range d.groups {
		i, ok := p.byName[g.ch.name]
		if !ok {
			forgotten[g.ch.name]++
			continue
		}
		regrouped := !slices.Equal(was[g.ch.name].by, p.grouping[i].by)
		g.ch, g.key.ch = p.chans[i], i
		if regrouped {
			rekey[g.key] = g
		} else {
			groups[g.key] = g
		}
	}
	// Only the regrouped channels' groups are re-keyed, so no key can
	// collide with a group left as it is.
	for k, g := range regroup(rekey, func(g *group, m *member) string { return alertKey(p.grouping[g.key.ch].by, &m.alert) }) {
		groups[k] = g
	}
	for _, g := range groups {
		gr := p.grouping[g.key.ch]
		want := gr.interval
		if g.first {
			want = gr.wait
		}
		if g.spacing != 0 && g.spacing != want {
			g.nextFlush = g.nextFlush.Add(want - g.spacing)
			g.spacing = want
		}
	}

	d.parts = *p
	d.groups = groups
	// An evaluation that began before the reload may still name a channel
	// that the same reload removed: that is not worth an error log.
	d.unknown = map[string]bool{}
	for _, name := range removed {
		d.unknown[name] = true
	}

	for _, name := range removed {
		level := slog.LevelInfo
		if dropped[name] > 0 {
			level = slog.LevelWarn
		}
		d.log.Log(context.Background(), level, "channel removed by reload; queued messages dropped, deliveries in flight cancelled",
			"channel", name, "dropped", dropped[name], "groups_forgotten", forgotten[name])
	}
	d.log.Info("notifiers config applied", "added", added, "changed", changed, "removed", removed,
		"regrouped_or_retimed", retimed, "channels", len(d.chans), "groups", len(d.groups))
	return nil
}

// regroup re-keys every group's members under a new group_by: each member
// moves, with whether its receiver was sent it, to the group keyOf puts
// it in now on the same channel. A merged group takes the earliest
// next message and the latest last message of the groups it merges. A
// group with a message in flight forwards that message's outcome to where
// its members went (complete), and those groups count it as in flight, so
// they do not send the same alerts again meanwhile.
func regroup(groups map[groupKey]*group, keyOf func(g *group, m *member) string) map[groupKey]*group {
	old := make([]*group, 0, len(groups))
	for _, g := range groups {
		old = append(old, g)
	}
	// In key order, so that which error a merged group shows does not
	// depend on map order.
	sort.Slice(old, func(i, j int) bool {
		if old[i].key.ch != old[j].key.ch {
			return old[i].key.ch < old[j].key.ch
		}
		return old[i].key.key < old[j].key.key
	})
	out := make(map[groupKey]*group, len(groups))
	for _, g := range old {
		for fp, m := range g.members {
			k := groupKey{ch: g.key.ch, key: keyOf(g, m)}
			t := out[k]
			if t == nil {
				t = &group{key: k, ch: g.ch, members: map[string]*member{}, sent: map[string]bool{},
					nextFlush: g.nextFlush, lastSent: g.lastSent, spacing: g.spacing, first: g.first,
					lastErr: g.lastErr, failures: g.failures, thread: g.thread}
				out[k] = t
			} else { // idempotent: once per member is as good as once per group
				if g.nextFlush.Before(t.nextFlush) {
					t.nextFlush, t.spacing, t.first = g.nextFlush, g.spacing, g.first
				}
				if g.lastSent.After(t.lastSent) {
					t.lastSent = g.lastSent
				}
				if g.failures > t.failures {
					t.lastErr, t.failures = g.lastErr, g.failures
				}
				if t.thread == "" { // merged groups go on in the first one's thread
					t.thread = g.thread
				}
			}
			t.members[fp] = m
			if g.sent[fp] {
				t.sent[fp] = true
			}
			if g.inflight > 0 {
				if g.moved == nil {
					g.moved = map[string]*group{}
				}
				g.moved[fp] = t
				if !slices.Contains(g.forward, t) {
					g.forward = append(g.forward, t)
					t.inflight += g.inflight
				}
			}
		}
	}
	return out
}
