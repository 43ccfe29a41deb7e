// Package replay runs rules over recorded samples and reports the alert
// timeline they would have produced (`vigil replay`), and compares the
// timelines of two versions of the rules (`vigil diff`).
package replay

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// Event is one state change of one alert.
type Event struct {
	Time        time.Time
	Rule        string
	Fingerprint string
	// State is pending, firing, resolved, or inactive (a pending alert
	// whose condition stopped holding before it fired).
	State    string
	Severity string
	Labels   model.Labels
	Segment  model.Labels
	Value    float64
}

// Timeline is every event of a replay, in time order, and what could not
// be evaluated.
type Timeline struct {
	Start, End time.Time
	Evals      int
	Events     []Event
	// Errors are evaluation failures, one per rule (the first).
	Errors []string
}

// Run evaluates rs over samples (sorted by time), each group at its own
// interval or schedule from the first sample to the last, feeding the
// store only what had been collected by each evaluation time.
func Run(rs *rules.RuleSet, samples []model.Sample) (*Timeline, error) {
	tl := &Timeline{}
	if len(samples) == 0 {
		return tl, fmt.Errorf("no samples to replay")
	}
	tl.Start, tl.End = samples[0].Time, samples[len(samples)-1].Time
	store := engine.NewStore(rs.MaxWindow)
	// Series that stop are forgotten as the daemon forgets them.
	store.SetSeriesRetention(engine.SeriesRetentionFor(rs, engine.DefaultSeriesSlack))
	eng := engine.New(store)
	eng.SetRules(rs)

	type next struct {
		group string
		sched cron.Schedule
		every time.Duration
		at    time.Time
	}
	var groups []*next
	for _, g := range rs.Groups {
		n := &next{group: g.Name, every: g.Interval}
		if g.Schedule != "" {
			s, err := cron.ParseStandard(g.Schedule)
			if err != nil {
				return nil, fmt.Errorf("group %s: schedule: %w", g.Name, err)
			}
			n.sched = s
			n.at = s.Next(tl.Start.Add(-time.Nanosecond))
		} else {
			// Evaluation slots on a grid of the interval, as the
			// scheduler keeps them.
			n.at = tl.Start.Truncate(g.Interval)
			if n.at.Before(tl.Start) {
				n.at = n.at.Add(g.Interval)
			}
		}
		groups = append(groups, n)
	}
	if len(groups) == 0 {
		return tl, fmt.Errorf("no rule groups to replay")
	}
	type known struct{ state, rule, group string }
	last := map[string]known{} // by fingerprint
	failing := map[string]bool{}
	fed := 0
	ctx := context.Background()
	for {
		sort.SliceStable(groups, func(i, j int) bool { return groups[i].at.Before(groups[j].at) })
		g := groups[0]
		now := g.at
		if now.After(tl.End) {
			break
		}
		k := fed
		for k < len(samples) && !samples[k].Time.After(now) {
			k++
		}
		store.Append(samples[fed:k]...)
		fed = k
		if err := eng.EvalGroup(ctx, g.group, now); err != nil {
			return nil, err
		}
		tl.Evals++
		if g.sched != nil {
			g.at = g.sched.Next(now)
		} else {
			g.at = now.Add(g.every)
		}
		for _, st := range eng.RuleStatuses() {
			if !st.Health.OK && !failing[st.Rule.Name] {
				failing[st.Rule.Name] = true
				tl.Errors = append(tl.Errors, fmt.Sprintf("%s: rule %s (%s:%d): evaluation failed: %s",
					now.Format(time.RFC3339), st.Rule.Name, st.Rule.File, st.Rule.Pos.Line, st.Health.Err))
			}
		}
		seen := map[string]bool{}
		for _, a := range eng.Alerts() {
			if a.Group != g.group {
				continue
			}
			seen[a.Fingerprint] = true
			s := a.State.String()
			if last[a.Fingerprint].state == s {
				continue
			}
			last[a.Fingerprint] = known{s, a.Rule, a.Group}
			tl.Events = append(tl.Events, Event{Time: now, Rule: a.Rule, Fingerprint: a.Fingerprint, State: s,
				Severity: a.Severity, Labels: a.Labels, Segment: a.Segment, Value: a.Value})
		}
		// A pending alert that is gone never fired; one that resolved and
		// was forgotten has already said so.
		var gone []string
		for fp, k := range last {
			if k.group == g.group && !seen[fp] {
				gone = append(gone, fp)
			}
		}
		sort.Strings(gone)
		for _, fp := range gone {
			if k := last[fp]; k.state == "pending" {
				tl.Events = append(tl.Events, Event{Time: now, Rule: k.rule, Fingerprint: fp, State: "inactive"})
			}
			delete(last, fp)
		}
	}
	return tl, nil
}
