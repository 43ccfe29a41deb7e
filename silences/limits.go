package silences

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Limits bound what Add accepts, as Alertmanager's --silences.max-silences
// and --silences.max-silence-size-bytes do, plus a longest duration, so
// that nobody (by mistake or not) fills memory and disk with silences or
// mutes a page for a year. A zero field is no limit. Silences restored or
// replicated through Put and Replace are not checked: a lowered limit
// refuses new silences, it does not drop old ones.
type Limits struct {
	// MaxSilences bounds the active and pending silences; changing one
	// that exists does not count as another.
	MaxSilences int
	// MaxSizeBytes bounds one silence's JSON encoding, as it is stored.
	MaxSizeBytes int
	// MaxDuration bounds EndsAt minus the later of StartsAt and now: a
	// silence can be extended (Add with its ID) before it ends, never set
	// far ahead at once.
	MaxDuration time.Duration
}

// Errors of a silence beyond the Limits; Add wraps them with the figures.
var (
	ErrTooMany = errors.New("too many silences")
	ErrTooBig  = errors.New("silence too big")
	ErrTooLong = errors.New("silence too long")
)

// SetLimits replaces the limits Add applies from now on.
func (st *Store) SetLimits(l Limits) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.limits = l
}

// checkLimits reports every limit s passes; mu is held.
func (st *Store) checkLimits(s Silence, isNew bool, now time.Time) error {
	l := st.limits
	if l == (Limits{}) {
		return nil
	}
	var errs []error
	if l.MaxSizeBytes > 0 {
		b, _ := json.Marshal(s)
		if len(b) > l.MaxSizeBytes {
			errs = append(errs, fmt.Errorf("%w: %d bytes, more than the limit of %d; shorten the comment or the matchers",
				ErrTooBig, len(b), l.MaxSizeBytes))
		}
	}
	if l.MaxDuration > 0 {
		from := s.StartsAt
		if from.Before(now) {
			from = now
		}
		if d := s.EndsAt.Sub(from); d > l.MaxDuration {
			errs = append(errs, fmt.Errorf("%w: it would last %v, more than the limit of %v; make it shorter and extend it (same id) before it ends",
				ErrTooLong, d, l.MaxDuration))
		}
	}
	if l.MaxSilences > 0 && isNew {
		n := 0
		for _, e := range st.byID {
			if now.Before(e.s.EndsAt) {
				n++
			}
		}
		if n >= l.MaxSilences {
			errs = append(errs, fmt.Errorf("%w: %d active and pending already, the limit is %d; expire one first",
				ErrTooMany, n, l.MaxSilences))
		} else if len(st.byID) >= 2*l.MaxSilences {
			// Expired silences are kept a day: without this, creating and
			// expiring in a loop would grow memory and the state file
			// without bound.
			errs = append(errs, fmt.Errorf("%w: %d silences kept, expired ones included (they are kept 24 h), the limit is %d (twice max_silences)",
				ErrTooMany, len(st.byID), 2*l.MaxSilences))
		}
	}
	return errors.Join(errs...)
}
