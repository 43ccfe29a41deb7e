package notifiers

import (
	"strings"

	"github.com/vigil-alerts/vigil/model"
)

// computeInhibited rebuilds d.inhibited from the firing alerts: a target
// is held back while a different firing alert inhibits it, either through
// its rule's `inhibit:` (model.Alert.Inhibit) or a config inhibit rule.
// Sources are indexed by their equal-label values, so this stays linear in
// the number of alerts.
func (d *Dispatcher) computeInhibited(firing []*model.Alert) {
	clear(d.inhibited)
	// Rule-level inhibits, indexed by target rule, then by the Equal names
	// (sources of one rule share them) and their values.
	type srcSet struct {
		equal []string
		byKey map[string][]*model.Alert
	}
	byTarget := map[string][]*srcSet{}
	for _, s := range firing {
		if s.Inhibit == nil {
			continue
		}
		for _, tr := range s.Inhibit.Rules {
			var set *srcSet
			for _, c := range byTarget[tr] {
				if sameStrings(c.equal, s.Inhibit.Equal) {
					set = c
					break
				}
			}
			if set == nil {
				set = &srcSet{equal: s.Inhibit.Equal, byKey: map[string][]*model.Alert{}}
				byTarget[tr] = append(byTarget[tr], set)
			}
			k := equalKey(s.Labels, set.equal)
			set.byKey[k] = append(set.byKey[k], s)
		}
	}
	// Config rules: sources of rule i by their equal-label values.
	var cfgSources []map[string][]*model.Alert
	if len(d.inhibits) > 0 {
		cfgSources = make([]map[string][]*model.Alert, len(d.inhibits))
		for i, r := range d.inhibits {
			cfgSources[i] = map[string][]*model.Alert{}
			for _, s := range firing {
				if r.source.matches(s.Rule, s.Severity, s.Labels) {
					k := equalKey(s.Labels, r.equal)
					cfgSources[i][k] = append(cfgSources[i][k], s)
				}
			}
		}
	}
	if len(byTarget) == 0 && len(cfgSources) == 0 {
		d.metrics.inhibited.Set(0)
		return
	}
	for _, t := range firing {
		var by []string
		for _, set := range byTarget[t.Rule] {
			by = appendSources(by, t, set.byKey[equalKey(t.Labels, set.equal)])
		}
		for i, r := range d.inhibits {
			if len(cfgSources[i]) == 0 || !r.target.matches(t.Rule, t.Severity, t.Labels) {
				continue
			}
			by = appendSources(by, t, cfgSources[i][equalKey(t.Labels, r.equal)])
		}
		if len(by) > 0 {
			d.inhibited[t.Fingerprint] = InhibitedAlert{Alert: *t, By: by}
		}
	}
	d.metrics.inhibited.Set(float64(len(d.inhibited)))
}

// appendSources adds the sources other than t itself: an alert never
// inhibits itself.
func appendSources(by []string, t *model.Alert, sources []*model.Alert) []string {
	for _, s := range sources {
		if s.Fingerprint == t.Fingerprint {
			continue
		}
		id := s.Rule + "/" + s.Fingerprint
		dup := false
		for _, b := range by {
			if b == id {
				dup = true
				break
			}
		}
		if !dup {
			by = append(by, id)
		}
	}
	return by
}

// equalKey joins the values of names; a label missing on both sides counts
// as equal, as in Alertmanager.
func equalKey(labels model.Labels, names []string) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(labels[n])
		b.WriteByte(0xff)
	}
	return b.String()
}

func sameStrings(a, b []string) bool {
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
