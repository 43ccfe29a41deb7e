// Package silences mutes alerts by label for a time, as Alertmanager's
// silences do: "everything with host.mac=00:…:01 for 2 h, comment:
// replacing disk". A Silence is plain data with JSON tags; a Store holds
// them, answers "which silences mute these labels now" cheaply enough to
// be asked for every firing alert at every evaluation, and tells a
// subscriber about local changes so they can be written through to a
// shared store. Limits bound what it accepts, and MutesAll tells a
// silence that would mute every alert of a rule set. Time is always an
// argument.
package silences

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// States of a silence, as Silence.State reports them.
const (
	StatePending = "pending" // not started yet: mutes nothing
	StateActive  = "active"  // mutes the alerts it matches
	StateExpired = "expired" // over (ended, or expired early); kept until GC
)

// Silence mutes the firing alerts whose labels satisfy every matcher,
// from StartsAt (inclusive) to EndsAt (exclusive).
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Validate reports every problem at once, each naming its field: at least
// one matcher, each with a valid label name, operator and regex; not every
// matcher matching the empty string (such a silence would mute every alert
// without the labels it names — everything, by accident); an EndsAt after
// StartsAt; CreatedBy and Comment set. It does not look at the ID, which
// Store.Add assigns, nor at the clock (Store.Add does).
func (s Silence) Validate() error { return s.validate(false) }

// validate is Validate; stored accepts an EndsAt equal to StartsAt, which
// is what Expire leaves of a silence expired as it starts (or pending).
func (s Silence) validate(stored bool) error {
	var errs []error
	if len(s.Matchers) == 0 {
		errs = append(errs, errors.New("matchers: at least one is required"))
	}
	allEmpty := len(s.Matchers) > 0
	for i, m := range s.Matchers {
		if err := m.check(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("matchers[%d] (%s): %w", i, m, e))
			}
			allEmpty = false // already refused; do not pile on
			continue
		}
		if !m.matchesValue("") {
			allEmpty = false
		}
	}
	if allEmpty {
		errs = append(errs, errors.New(`matchers: every matcher matches the empty string, so the silence would mute every alert that lacks these labels; add one that requires a value (such as host.mac="…")`))
	}
	switch {
	case s.EndsAt.IsZero():
		errs = append(errs, errors.New("ends_at: required"))
	case !s.StartsAt.IsZero() && s.EndsAt.Before(s.StartsAt),
		!s.StartsAt.IsZero() && s.EndsAt.Equal(s.StartsAt) && !stored:
		errs = append(errs, fmt.Errorf("ends_at: %s is not after starts_at %s",
			s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339)))
	}
	if strings.TrimSpace(s.CreatedBy) == "" {
		errs = append(errs, errors.New("created_by: required"))
	}
	if strings.TrimSpace(s.Comment) == "" {
		errs = append(errs, errors.New("comment: required (why is this muted?)"))
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// State is "pending" before StartsAt, "active" from StartsAt (inclusive)
// to EndsAt (exclusive), and "expired" from EndsAt on.
func (s Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return StatePending
	case now.Before(s.EndsAt):
		return StateActive
	default:
		return StateExpired
	}
}

// Matches reports whether every matcher matches ls, regardless of time. A
// silence without matchers matches nothing.
func (s Silence) Matches(ls model.Labels) bool {
	if len(s.Matchers) == 0 {
		return false
	}
	for _, m := range s.Matchers {
		if !m.Matches(ls) {
			return false
		}
	}
	return true
}

func (s Silence) active(now time.Time) bool {
	return !now.Before(s.StartsAt) && now.Before(s.EndsAt)
}

// clone copies s with its own matchers, so that the Store's copy and the
// caller's share nothing mutable.
func (s Silence) clone() Silence {
	s.Matchers = append([]Matcher(nil), s.Matchers...)
	return s
}

// compiledClone is clone with every regex compiled afresh from its Value:
// what the Store keeps of a silence it is given (the caller may have set
// Value by hand after ParseMatcher).
func (s Silence) compiledClone() Silence {
	s = s.clone()
	for i := range s.Matchers {
		s.Matchers[i] = s.Matchers[i].compiled()
	}
	return s
}
