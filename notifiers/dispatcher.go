package notifiers

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
)

// Dispatcher routes, inhibits, silences, groups and deduplicates alerts,
// and hands groups to per-channel delivery queues. Process decides against the
// caller's clock; only delivery (network I/O, backoff) runs on real time.
type Dispatcher struct {
	o       options // as given to Build; Apply builds with them too (o.silences is kept)
	log     *slog.Logger
	metrics *metrics

	// applyMu makes Apply one at a time. What Apply replaces is written
	// under both applyMu and mu, so Apply reads it under applyMu alone
	// while it builds, and everything else reads it under mu.
	applyMu sync.Mutex
	mu      sync.Mutex
	// From the config; replaced by Apply. Channel indexes (routes,
	// defaults, byName, groupKey.ch) are into its chans.
	parts

	gen       uint64
	groups    map[groupKey]*group
	firing    map[string]model.Alert // last seen firing alerts, to notice vanished ones
	inhibited map[string]InhibitedAlert
	silenced  map[string]SilencedAlert
	unknown   map[string]bool // unknown channel names already logged
	// retired holds, by name, the channels a reload retired whose workers
	// have not all returned yet (an attempt still finishing with old
	// settings), so that removing the name cancels those deliveries too,
	// and its metric series go only when the last of them returns.
	retired map[string][]*channel
	stopped bool
	// settled, made by a waiting Settle, is closed when a delivery
	// completes; nil while nobody waits, so delivery pays nothing for it.
	settled chan struct{}

	// delivery lifecycle: ctx is cancelled when Stop runs out of time.
	ctx      context.Context
	cancel   context.CancelFunc
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	done     chan struct{}
}

type route struct {
	m        *matcher
	channels []int
	iv       *intervals // mute_time_intervals, active_time_intervals; nil: none
}

type inhibitRule struct {
	source, target *matcher
	equal          []string
}

// groupKey is a group's channel (an index into Dispatcher.chans, which
// Apply renumbers) and its key within the channel (alertKey).
type groupKey struct {
	ch  int
	key string
}

type member struct {
	alert model.Alert
	seen  uint64
	// routeMutes are the time intervals of the routes that brought the
	// alert to this channel when it was last placed; nil when a way
	// without any (notify list, default channels, an untimed route) did.
	routeMutes []*intervals
}

// group is one message thread: one rule (and the channel's group_by
// values) on one channel, timed by the channel's grouping. sent holds the
// firing alerts the receiver last got, which is what dedup compares
// against; it changes only after a delivery succeeds, so a failed one is
// tried again at the next group interval.
type group struct {
	key       groupKey
	ch        *channel
	members   map[string]*member
	sent      map[string]bool
	nextFlush time.Time
	lastSent  time.Time
	// spacing is the group_wait (first) or group_interval nextFlush was
	// set with, so that Apply can move nextFlush when the setting changes;
	// 0 when nextFlush came from ImportState.
	spacing time.Duration
	first   bool
	// inflight counts messages of this group being delivered (one, or more
	// when a reload merged groups with messages in flight).
	inflight int
	lastErr  string
	failures int
	// thread is what the channel returned to be given with the group's
	// next messages (GroupNotifier), "" if nothing.
	thread string
	// moved and forward are set when a reload regrouped this group (a new
	// group_by) while a message of it was in flight: moved is where each
	// member went, forward the groups that are owed that message's outcome.
	moved   map[string]*group
	forward []*group
}

// InhibitedAlert is a firing alert that is held back, and by what.
type InhibitedAlert struct {
	Alert model.Alert
	// By names the inhibiting alerts as "rule/fingerprint".
	By []string
}

// SilencedAlert is a firing alert that is held back by silences.
type SilencedAlert struct {
	Alert model.Alert
	// By lists the IDs of the active silences muting it, sorted.
	By []string
}

// GroupStatus describes one group for the API.
type GroupStatus struct {
	Channel string
	Key     string
	// Labels are the group's labels (alertname and group_by), as its
	// receiver sees them; Alerts its members, sorted by rule and
	// fingerprint, each saying whether the receiver was told it fires.
	Labels    model.Labels
	Alerts    []GroupMember
	Firing    int
	Resolved  int
	LastSent  time.Time // zero if nothing was delivered yet
	NextFlush time.Time
	InFlight  bool
	// LastError is the reason of the last final failure, empty after a
	// success; Failures counts final failures since the last success.
	LastError string
	Failures  int
}

// GroupMember is one alert of a group.
type GroupMember struct {
	Rule        string
	Fingerprint string
	State       model.AlertState
	Labels      model.Labels
	// Sent: the receiver was told the alert fires (its resolution is due
	// when it resolves).
	Sent bool
}

// newDispatcher makes a dispatcher of p; launch starts its channels.
func newDispatcher(p *parts, o options) *Dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		o: o, log: o.logger, metrics: newMetrics(o.reg),
		parts:  *p,
		groups: map[groupKey]*group{}, firing: map[string]model.Alert{},
		inhibited: map[string]InhibitedAlert{}, silenced: map[string]SilencedAlert{}, unknown: map[string]bool{},
		retired: map[string][]*channel{},
		ctx:     ctx, cancel: cancel, stopping: make(chan struct{}), done: make(chan struct{}),
	}
}

// ChannelNames lists the configured channels, sorted, so the rule loader
// can reject unknown `notify:` names with their file position.
func (d *Dispatcher) ChannelNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.chans))
	for _, c := range d.chans {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return names
}

// Process takes the engine's current alerts after an evaluation at now.
// Pending alerts are ignored; a firing alert that is missing from alerts
// is treated as resolved at now. A firing alert that an active silence
// mutes at now (WithSilences) is held exactly as an inhibited one is. It
// never blocks on delivery.
func (d *Dispatcher) Process(now time.Time, alerts []model.Alert) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.gen++
	resolved := resolvedIndex{alerts: alerts}
	present := make(map[string]struct{}, len(d.firing))
	var firing []*model.Alert
	for i := range alerts {
		a := &alerts[i]
		if a.State == model.StateFiring {
			firing = append(firing, a)
			present[a.Fingerprint] = struct{}{}
		}
	}
	d.computeInhibited(firing)
	d.computeSilenced(now, firing)

	var chanBuf [8]int
	apply := func(a *model.Alert) {
		if _, held := d.inhibited[a.Fingerprint]; held {
			return
		}
		if _, held := d.silenced[a.Fingerprint]; held {
			return
		}
		chans := d.route(a, chanBuf[:0])
		if len(chans) == 0 {
			return
		}
		// The key once per alert and group_by, not per channel: channels
		// that group alike are usually all of them.
		var key string
		var keyBy []string
		for i, ci := range chans {
			if by := d.grouping[ci].by; i == 0 || !slices.Equal(by, keyBy) {
				key, keyBy = alertKey(by, a), by
			}
			var rm []*intervals
			if d.timedRoutes {
				rm = d.routeMutes(a, ci)
			}
			d.place(now, groupKey{ch: ci, key: key}, a, rm)
		}
	}
	for i := range alerts {
		a := &alerts[i]
		switch a.State {
		case model.StateFiring:
			d.firing[a.Fingerprint] = *a
			apply(a)
		case model.StateResolved:
			delete(d.firing, a.Fingerprint)
			apply(a)
		}
	}
	// Alerts that were firing and are gone (rule removed, engine restarted
	// its state) resolve now rather than page forever.
	for fp, a := range d.firing {
		if _, ok := present[fp]; ok {
			continue
		}
		delete(d.firing, fp)
		a.State = model.StateResolved
		a.ResolvedAt = now
		apply(&a)
	}
	for k, g := range d.groups {
		d.flushIfDue(now, k, g, &resolved)
	}
}

// Hold works out which firing alerts inhibition and silences hold back at
// now, as Process does, without placing or sending anything: state just
// restored (a restart, a new HA term) shows its inhibited and silenced
// alerts as such before the first evaluation.
func (d *Dispatcher) Hold(now time.Time, alerts []model.Alert) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	var firing []*model.Alert
	for i := range alerts {
		if alerts[i].State == model.StateFiring {
			firing = append(firing, &alerts[i])
		}
	}
	d.computeInhibited(firing)
	d.computeSilenced(now, firing)
}

// resolvedIndex finds one Process's resolved alerts by fingerprint. It is
// built on first use, which is rare: only when a reload changed where an
// alert goes between its page and its resolution.
type resolvedIndex struct {
	alerts []model.Alert
	byFP   map[string]int
}

func (r *resolvedIndex) get(fp string) (model.Alert, bool) {
	if r.byFP == nil {
		r.byFP = map[string]int{}
		for i := range r.alerts {
			if r.alerts[i].State == model.StateResolved {
				r.byFP[r.alerts[i].Fingerprint] = i
			}
		}
	}
	i, ok := r.byFP[fp]
	if !ok {
		return model.Alert{}, false
	}
	return r.alerts[i], true
}

// route returns the channel indexes for a: its rule's notify list plus
// every matching route, or the default channels when that is empty.
func (d *Dispatcher) route(a *model.Alert, out []int) []int {
	for _, name := range a.Notify {
		i, ok := d.byName[name]
		if !ok {
			if !d.unknown[name] {
				d.unknown[name] = true
				d.log.Error("alert names an unknown channel", "rule", a.Rule, "channel", name)
			}
			d.metrics.unknownChannel.Inc()
			continue
		}
		out = appendUnique(out, i)
	}
	for _, r := range d.routes {
		if r.m.matches(a.Rule, a.Severity, a.Labels) {
			for _, i := range r.channels {
				out = appendUnique(out, i)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, d.defaults...)
	}
	return out
}

// routeMutes lists the time intervals of every way a reaches channel ci,
// or nil when one way has none: that way is never muted by a route.
func (d *Dispatcher) routeMutes(a *model.Alert, ci int) []*intervals {
	for _, name := range a.Notify {
		if i, ok := d.byName[name]; ok && i == ci {
			return nil
		}
	}
	var out []*intervals
	for _, r := range d.routes {
		if slices.Contains(r.channels, ci) && r.m.matches(a.Rule, a.Severity, a.Labels) {
			if r.iv == nil {
				return nil
			}
			out = append(out, r.iv)
		}
	}
	return out // nil too when no route brought it: the default channels
}

// muted reports whether member m is held at now by time intervals: its
// channel's own (chMuted), or those of every route that brought it.
func muted(m *member, chMuted bool, now time.Time) bool {
	if chMuted {
		return true
	}
	if len(m.routeMutes) == 0 {
		return false
	}
	for _, iv := range m.routeMutes {
		if !iv.muted(now) {
			return false
		}
	}
	return true
}

func appendUnique(s []int, v int) []int {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// alertKey is the grouping key within a channel: the rule, then the
// values of the channel's group_by labels.
func alertKey(groupBy []string, a *model.Alert) string {
	if len(groupBy) == 0 {
		return a.Rule
	}
	var b strings.Builder
	b.WriteString(a.Rule)
	for _, l := range groupBy {
		b.WriteByte(0xff)
		b.WriteString(a.Labels[l])
	}
	return b.String()
}

// groupInfo is g as its receiver sees it: the Alertmanager-style key and
// labels, which depend only on the channel's name, its group_by and the
// group's values, so they do not change while alerts join and leave the
// group, and the thread the channel keeps for it.
func (d *Dispatcher) groupInfo(g *group) Group {
	by := d.grouping[g.key.ch].by
	parts := strings.Split(g.key.key, "\xff")
	labels := model.Labels{"alertname": parts[0]}
	if len(parts) == len(by)+1 { // else a key from before a regroup; see ImportState
		for i, l := range by {
			if v := parts[i+1]; v != "" {
				labels[l] = v
			}
		}
	}
	return Group{Key: msg.GroupKey(g.ch.name, labels), Labels: labels, Thread: g.thread}
}

// place puts a into group k. A resolved alert only updates
// a group that already holds it: nobody was told it fired.
func (d *Dispatcher) place(now time.Time, k groupKey, a *model.Alert, routeMutes []*intervals) {
	g := d.groups[k]
	if g == nil {
		if a.State != model.StateFiring {
			return
		}
		wait := d.grouping[k.ch].wait
		g = &group{key: k, ch: d.chans[k.ch], members: map[string]*member{}, sent: map[string]bool{},
			nextFlush: now.Add(wait), spacing: wait, first: true}
		d.groups[k] = g
	}
	m := g.members[a.Fingerprint]
	if m == nil {
		if a.State != model.StateFiring {
			return
		}
		m = &member{}
		g.members[a.Fingerprint] = m
	}
	m.alert = *a
	m.seen = d.gen
	m.routeMutes = routeMutes
}

// flushIfDue drops members that went away, and enqueues a message when the
// group's wait is over and the receiver would learn something new (or the
// repeat interval has passed).
func (d *Dispatcher) flushIfDue(now time.Time, k groupKey, g *group, resolved *resolvedIndex) {
	sendResolved := g.ch.sendResolved
	for fp, m := range g.members {
		if m.alert.State == model.StateFiring && m.seen != d.gen {
			if _, firing := d.firing[fp]; !firing {
				// It resolved (or vanished), but its resolution was not
				// routed here: a reload changed the routes or the rule's
				// notify list since the receiver got the page. The
				// receiver still gets the end of it.
				a, ok := resolved.get(fp)
				if !ok {
					a = m.alert
					a.State, a.ResolvedAt = model.StateResolved, now
				}
				m.alert, m.seen = a, d.gen
			}
		}
		// A firing member not seen this round is inhibited or silenced
		// now (held), or no longer routed here (a reload changed where it
		// goes). If the receiver never got it, drop it quietly: if it
		// fires again un-held it is news, and if it resolves nobody is
		// told. If the receiver did get it (or may be getting it: a
		// message is in flight), keep it, out of messages while held, so
		// that its resolution is still sent: the person paged is told it
		// is over.
		if d.held(m) && !g.sent[fp] && g.inflight == 0 {
			delete(g.members, fp)
		}
	}
	if g.inflight > 0 {
		return
	}
	// A member muted by time intervals stays in the group, out of
	// messages, as Alertmanager keeps a muted group: when the interval
	// ends it is news (firing), or its resolution is due (sent before).
	chMuted := d.mutes[k.ch].muted(now)
	newFiring, resolvedNews, nFiring := false, false, 0
	for fp, m := range g.members {
		if d.held(m) || muted(m, chMuted, now) {
			continue
		}
		if m.alert.State == model.StateFiring {
			nFiring++
			if !g.sent[fp] {
				newFiring = true
			}
		} else if sendResolved && g.sent[fp] {
			resolvedNews = true
		}
	}
	gr := d.grouping[k.ch]
	due := !now.Before(g.nextFlush)
	repeat := nFiring > 0 && !g.lastSent.IsZero() && !now.Before(g.lastSent.Add(gr.repeat))
	if !due || !(newFiring || resolvedNews || repeat) {
		if due || nFiring == 0 {
			d.dropSilentResolved(g)
		}
		if len(g.members) == 0 {
			delete(d.groups, k)
		}
		return
	}
	info := d.groupInfo(g)
	j := &job{group: g, labels: groupLabels(gr.by, g), key: info.Key, info: info, decidedAt: now}
	for fp, m := range g.members {
		switch {
		case d.held(m), muted(m, chMuted, now):
		case m.alert.State == model.StateFiring:
			j.alerts = append(j.alerts, m.alert)
			j.firing = append(j.firing, fp)
		case sendResolved && g.sent[fp]:
			j.alerts = append(j.alerts, m.alert)
			j.resolved = append(j.resolved, fp)
		}
	}
	d.dropSilentResolved(g)
	sort.Slice(j.alerts, func(a, b int) bool { return j.alerts[a].Fingerprint < j.alerts[b].Fingerprint })
	g.inflight++
	g.nextFlush = now.Add(gr.interval)
	g.spacing, g.first = gr.interval, false
	g.ch.enqueue(j)
}

// groupLabels are what identifies g to a person reading the logs: the
// rule as alertname and the values of the channel's group_by labels.
func groupLabels(by []string, g *group) model.Labels {
	for _, m := range g.members {
		ls := model.Labels{"alertname": m.alert.Rule}
		for _, l := range by {
			ls[l] = m.alert.Labels[l]
		}
		return ls
	}
	return model.Labels{}
}

// held reports whether m is a firing member that the last Process did not
// place: it is inhibited or silenced, so no message lists it, repeats it or counts it
// as news, but the group remembers whether the receiver got it.
func (d *Dispatcher) held(m *member) bool {
	return m.alert.State == model.StateFiring && m.seen != d.gen
}

// dropSilentResolved forgets resolved members no message will mention:
// never sent as firing, or the channel does not send resolutions.
func (d *Dispatcher) dropSilentResolved(g *group) {
	for fp, m := range g.members {
		if m.alert.State != model.StateFiring && (!g.ch.sendResolved || !g.sent[fp]) {
			delete(g.members, fp)
			delete(g.sent, fp)
		}
	}
}

// complete records a delivery's outcome; called by the channel worker. It
// goes to the job's group, or to the groups a reload moved its members to
// while the message was in flight.
func (d *Dispatcher) complete(j *job, err error, thread string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled != nil { // wake Settle; nil unless someone waits
		close(d.settled)
		d.settled = nil
	}
	targets := j.group.settle(nil)
	for i, g := range targets {
		if slices.Contains(targets[:i], g) {
			continue
		}
		if err != nil {
			g.lastErr = err.Error()
			g.failures++
			continue
		}
		g.lastErr, g.failures = "", 0
		if thread != "" && (g == j.group || g.thread == "") {
			g.thread = thread
		}
		if j.decidedAt.After(g.lastSent) {
			g.lastSent = j.decidedAt
		}
	}
	if err != nil {
		return
	}
	for _, fp := range j.firing {
		// The receiver got it, even if it is held (inhibited) by now: its
		// resolution is due when it resolves.
		if g := j.group.holder(fp); g != nil && g.members[fp] != nil {
			g.sent[fp] = true
		}
	}
	for _, fp := range j.resolved {
		g := j.group.holder(fp)
		if g == nil {
			continue
		}
		delete(g.sent, fp)
		if m := g.members[fp]; m != nil && m.alert.State != model.StateFiring {
			delete(g.members, fp)
		}
	}
	for _, g := range targets {
		if len(g.members) == 0 && d.groups[g.key] == g {
			delete(d.groups, g.key)
		}
	}
}

// settle ends one message in flight of g and returns the groups that own
// its outcome: g itself, or, when a reload regrouped g meanwhile, the
// groups its members went to (each counted that message as in flight).
func (g *group) settle(out []*group) []*group {
	if g.forward == nil {
		g.inflight--
		return append(out, g)
	}
	for _, t := range g.forward {
		out = t.settle(out)
	}
	return out
}

// holder is the group that holds g's member fp now: g, or where reloads
// moved it.
func (g *group) holder(fp string) *group {
	for g != nil && g.moved != nil {
		g = g.moved[fp]
	}
	return g
}

// Inhibited lists the firing alerts held back by inhibition at the last
// Process, sorted by rule and fingerprint.
func (d *Dispatcher) Inhibited() []InhibitedAlert {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]InhibitedAlert, 0, len(d.inhibited))
	for _, ia := range d.inhibited {
		out = append(out, ia)
	}
	slices.SortFunc(out, func(a, b InhibitedAlert) int { return byRuleAndFingerprint(a.Alert, b.Alert) })
	return out
}

// Silenced lists the firing alerts held back by silences at the last
// Process, with the silences muting them, sorted by rule and fingerprint.
// An alert both inhibited and silenced is in this list and Inhibited's.
func (d *Dispatcher) Silenced() []SilencedAlert {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]SilencedAlert, 0, len(d.silenced))
	for _, sa := range d.silenced {
		sa.By = slices.Clone(sa.By)
		out = append(out, sa)
	}
	slices.SortFunc(out, func(a, b SilencedAlert) int { return byRuleAndFingerprint(a.Alert, b.Alert) })
	return out
}

func byRuleAndFingerprint(a, b model.Alert) int {
	if c := strings.Compare(a.Rule, b.Rule); c != 0 {
		return c
	}
	return strings.Compare(a.Fingerprint, b.Fingerprint)
}

// computeSilenced rebuilds d.silenced: the firing alerts that an active
// silence mutes at now. Resolved alerts are never silenced: a receiver
// that was paged is told the alert is over.
func (d *Dispatcher) computeSilenced(now time.Time, firing []*model.Alert) {
	clear(d.silenced)
	if st := d.o.silences; st != nil {
		for _, a := range firing {
			if by := st.Mutes(a.Labels, now); len(by) > 0 {
				d.silenced[a.Fingerprint] = SilencedAlert{Alert: *a, By: by}
			}
		}
	}
	d.metrics.silenced.Set(float64(len(d.silenced)))
}

// Status lists every group with its delivery state, so failed deliveries
// are visible, not just logged.
func (d *Dispatcher) Status() []GroupStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]GroupStatus, 0, len(d.groups))
	for _, g := range d.groups {
		s := GroupStatus{Channel: g.ch.name, Key: strings.ReplaceAll(g.key.key, "\xff", "/"),
			LastSent: g.lastSent, NextFlush: g.nextFlush, InFlight: g.inflight > 0,
			LastError: g.lastErr, Failures: g.failures, Labels: d.groupInfo(g).Labels}
		for fp, m := range g.members {
			if m.alert.State == model.StateFiring {
				s.Firing++
			} else {
				s.Resolved++
			}
			s.Alerts = append(s.Alerts, GroupMember{Rule: m.alert.Rule, Fingerprint: fp,
				State: m.alert.State, Labels: m.alert.Labels, Sent: g.sent[fp]})
		}
		slices.SortFunc(s.Alerts, func(a, b GroupMember) int {
			return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Fingerprint, b.Fingerprint))
		})
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Key < out[j].Key
	})
	return out
}
