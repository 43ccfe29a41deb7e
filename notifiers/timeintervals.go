package notifiers

import (
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
)

// TimeIntervalConfig is a named set of times, written exactly as
// Alertmanager's `time_intervals:` entries (its own timeinterval package
// decodes and evaluates them): weekdays, times of day, days of month,
// months, years and a location, each list an OR, the fields an AND.
type TimeIntervalConfig struct {
	Name          string                      `yaml:"name" json:"name"`
	TimeIntervals []timeinterval.TimeInterval `yaml:"time_intervals" json:"time_intervals"`
}

// intervals is a compiled reference to named time intervals: mute
// (mute_time_intervals) and active (active_time_intervals), as on an
// Alertmanager route.
type intervals struct {
	mute, active [][]timeinterval.TimeInterval
}

// muted reports whether notifications are held at now: now is in one of
// the mute intervals, or active intervals are set and now is in none of
// them. A nil *intervals mutes nothing.
func (iv *intervals) muted(now time.Time) bool {
	if iv == nil {
		return false
	}
	for _, ti := range iv.mute {
		if contains(ti, now) {
			return true
		}
	}
	if len(iv.active) == 0 {
		return false
	}
	for _, ti := range iv.active {
		if contains(ti, now) {
			return false
		}
	}
	return true
}

func contains(tis []timeinterval.TimeInterval, now time.Time) bool {
	for _, ti := range tis {
		// Alertmanager passes UTC; ContainsTime moves it to the
		// interval's location, if it has one.
		if ti.ContainsTime(now.UTC()) {
			return true
		}
	}
	return false
}

// compileTimeIntervals indexes the named intervals, reporting names that
// are empty or defined twice.
func compileTimeIntervals(cfgs []TimeIntervalConfig) (map[string][]timeinterval.TimeInterval, []error) {
	var errs []error
	byName := map[string][]timeinterval.TimeInterval{}
	for i, ti := range cfgs {
		if ti.Name == "" {
			errs = append(errs, fmt.Errorf("time_intervals[%d]: name is required", i))
			continue
		}
		if _, dup := byName[ti.Name]; dup {
			errs = append(errs, fmt.Errorf("time_intervals[%d]: name %q defined twice", i, ti.Name))
			continue
		}
		byName[ti.Name] = ti.TimeIntervals
	}
	return byName, errs
}

// resolveIntervals looks up the names a route or channel refers to;
// where is the referrer ("routes[0]", `channel "x": `-style prefixes are
// the caller's). It returns nil when neither list is set.
func resolveIntervals(where string, byName map[string][]timeinterval.TimeInterval, mute, active []string) (*intervals, []error) {
	if len(mute) == 0 && len(active) == 0 {
		return nil, nil
	}
	var errs []error
	iv := &intervals{}
	look := func(field string, names []string, out *[][]timeinterval.TimeInterval) {
		for i, n := range names {
			ti, ok := byName[n]
			if !ok {
				errs = append(errs, fmt.Errorf("%s%s[%d]: unknown time interval %q", where, field, i, n))
				continue
			}
			*out = append(*out, ti)
		}
	}
	look("mute_time_intervals", mute, &iv.mute)
	look("active_time_intervals", active, &iv.active)
	return iv, errs
}
