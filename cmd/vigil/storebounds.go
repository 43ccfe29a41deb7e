package main

import (
	"time"

	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/rules"
)

// seriesRetention is how long a series that stopped reporting is kept:
// the longest any rule still acts on a vanished segment, plus slack. Its
// segment goes without data one window after its last sample, a no_data
// or keep_state alert then needs `for` to fire, and a firing one is held
// keep_firing_for more; forgetting the segment earlier would cut those
// short.
func seriesRetention(rs *rules.RuleSet, slack time.Duration) time.Duration {
	reach := rs.MaxWindow
	for _, r := range rs.Rules() {
		reach = max(reach, r.Window+r.For+r.KeepFiringFor)
	}
	return reach + slack
}

// applyStoreBounds sets the window store's bounds from the rules and the
// config's store: section, at start and at every reload.
func (d *daemon) applyStoreBounds(rs *rules.RuleSet, cfg *config.Config) {
	d.store.SetRetention(rs.MaxWindow + time.Minute)
	d.store.SetSeriesRetention(seriesRetention(rs, time.Duration(cfg.Store.RetentionSlack)))
}
