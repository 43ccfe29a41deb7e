package webhook

import (
	"encoding/json"
	"math"
)

// An alert with no data (no_data: alerting) has the value NaN, which JSON
// cannot carry: json.Marshal failed and the page was never sent (found by
// FuzzPayload). Values that are not finite are sent as null.

// MarshalJSON writes Value as null when it is NaN or infinite.
func (a Alert) MarshalJSON() ([]byte, error) {
	type plain Alert // no methods: no recursion
	return json.Marshal(struct {
		plain
		Value *float64 `json:"value"`
	}{plain(a), finite(a.Value)})
}

// UnmarshalJSON reads a null value as NaN, so a receiver in Go gets back
// what was sent.
func (a *Alert) UnmarshalJSON(b []byte) error {
	type plain Alert
	var p struct {
		plain
		Value *float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*a = Alert(p.plain)
	a.Value = orNaN(p.Value)
	return nil
}

// MarshalJSON writes Value as null when it is NaN or infinite.
func (s Segment) MarshalJSON() ([]byte, error) {
	type plain Segment
	return json.Marshal(struct {
		plain
		Value *float64 `json:"value"`
	}{plain(s), finite(s.Value)})
}

// UnmarshalJSON reads a null value as NaN.
func (s *Segment) UnmarshalJSON(b []byte) error {
	type plain Segment
	var p struct {
		plain
		Value *float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Segment(p.plain)
	s.Value = orNaN(p.Value)
	return nil
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func orNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}
