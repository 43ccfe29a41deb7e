package silences

import (
	"crypto/rand"
	"encoding/hex"
	"slices"

	"github.com/vigil-alerts/vigil/model"
)

// AlertSpace is every label set the alerts of one rule can have, as far
// as a silence can tell before they exist: Fixed labels have exactly that
// value on every alert (alertname, severity, the rule's labels); Present
// labels are on every alert, with a value no one knows yet (the segment_by
// labels of an `across: any` rule); any other label may have any value,
// or be absent.
type AlertSpace struct {
	Fixed   model.Labels
	Present []string
}

// MutesAll reports whether s matches every alert of every space, whatever
// the spelling of its matchers: it decides by matching, not by the text.
// Every matcher is tried:
//
//   - on a Fixed label, against that value;
//   - on any other label, against probe values that label may take: two
//     random ones drawn at each call (one plain, one with a space and
//     non-ASCII letters), and the empty string (an absent label) unless
//     the label is Present.
//
// The silence mutes all when each matcher matches every value it is tried
// against, in every space. So `alertname=~".+"`, `alertname!=""`,
// `severity=~"critical|high|medium|low|info"`, `alertname!~"x"`,
// `host=~".*"` and `host!="__impossible__"` restrict nothing, while
// `alertname="X"`, `host="m1"` or `host=~"m.*"` do. The random probes
// mean a matcher that excludes a single value (`cluster!="dev"`) on a
// label the rules do not fix restricts nothing either: to mute all but
// something, name what to mute. With no spaces (no rules) it is false.
func (s Silence) MutesAll(spaces []AlertSpace) bool {
	if len(spaces) == 0 || len(s.Matchers) == 0 {
		return false
	}
	probes := []string{randomProbe(""), randomProbe("Ω probe ")}
	for _, sp := range spaces {
		for _, m := range s.Matchers {
			if v, ok := sp.Fixed[m.Name]; ok {
				if !m.matchesValue(v) {
					return false
				}
				continue
			}
			for _, v := range probes {
				if !m.matchesValue(v) {
					return false
				}
			}
			if !slices.Contains(sp.Present, m.Name) && !m.matchesValue("") {
				return false
			}
		}
	}
	return true
}

// randomProbe is prefix and 16 random hex digits: a value no matcher
// written by hand excludes by name.
func randomProbe(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
