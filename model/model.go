// Package model holds the plain data Vigil passes between its parts:
// samples from collectors, and alerts from the engine to notifiers.
// It has no behaviour beyond formatting and hashing, so every other
// package can import it.
package model

import (
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Labels are a series' or an alert's dimensions. Names are dotted, as
// monitoring agents report them: "host.mac", "agent.tag.role".
type Labels map[string]string

// Sample is one observation of one metric.
type Sample struct {
	Metric string // dotted name: "etcd.can_connect"
	Labels Labels
	Value  float64
	Time   time.Time
}

// Inventory is what a source knows must exist, such as the members of an
// etcd cluster from its member list: a rule expecting the source's
// segments alerts on each one that does not report. Collectors hand it to
// the engine's store beside their samples.
type Inventory struct {
	Source  string   // the collector's name, as rules name it
	Members []Labels // one label set per thing that must exist
}

// Names returns the label names in sorted order.
func (ls Labels) Names() []string {
	names := make([]string, 0, len(ls))
	for k := range ls {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// String formats labels as {a="1", b="2"} in name order.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range ls.Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(ls[k])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Hash is a stable 64-bit identity of the label set, independent of map order.
func (ls Labels) Hash() uint64 {
	h := fnv.New64a()
	for _, k := range ls.Names() {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(ls[k]))
		h.Write([]byte{0xff})
	}
	return h.Sum64()
}

// Copy returns an independent copy.
func (ls Labels) Copy() Labels {
	c := make(Labels, len(ls))
	for k, v := range ls {
		c[k] = v
	}
	return c
}

// AlertState is where an alert is in its life.
type AlertState int

const (
	// StateInactive: the condition does not hold (never sent anywhere).
	StateInactive AlertState = iota
	// StatePending: the condition holds but not yet for the rule's `for`.
	StatePending
	// StateFiring: the alert is active and should reach people.
	StateFiring
	// StateResolved: the alert fired and has stopped; kept for a while so
	// its resolution can be delivered.
	StateResolved
)

func (s AlertState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	case StateResolved:
		return "resolved"
	default:
		return "inactive"
	}
}

// ParseAlertState is the inverse of String.
func ParseAlertState(s string) (AlertState, bool) {
	for st := StateInactive; st <= StateResolved; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return StateInactive, false
}

// SegmentValue is one segment of an `across: every` alert.
type SegmentValue struct {
	Labels Labels
	Value  float64
}

// Alert is one alert instance, identified by (rule, segment), as the engine
// hands it to notifiers and the API. It is a snapshot: changing it changes
// nothing in the engine.
type Alert struct {
	Fingerprint string // stable identity of (rule, segment labels)
	Rule        string
	Group       string
	Severity    string
	Description string
	State       AlertState
	// Labels are the segment's labels plus the rule's labels, "alertname"
	// and "severity".
	Labels      Labels
	Annotations map[string]string
	// Segment holds only the segment_by values (empty for a rule without
	// segment_by or for an `across: every` alert).
	Segment Labels
	// Segments lists every segment of an `across: every` alert.
	Segments []SegmentValue
	Value    float64
	Notify   []string // channel names the rule asks for
	// Inhibit, when set, suppresses other alerts while this one fires.
	Inhibit *Inhibit
	// Source is where the alert's rule is written; nil for alerts no
	// rule file makes (VigilReloadFailed). Shared with the rule: read only.
	Source *Source `json:",omitempty"`

	ActiveAt   time.Time // condition first held (start of pending)
	FiredAt    time.Time // zero until firing
	ResolvedAt time.Time // zero until resolved
	LastEvalAt time.Time
}

// Source is where a rule is written: its file, relative to the rules
// directory it was loaded from, the line of its name, and the git commit
// the file was loaded at ("" when the rules are not in git).
type Source struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Commit string `json:"commit,omitempty"`
}

// String formats s as "etcd.yaml:12@1d22bfc5" (the commit shortened to 8
// hex digits, as in git's short hashes), or "etcd.yaml:12" outside git.
func (s *Source) String() string {
	if s == nil {
		return ""
	}
	out := s.File + ":" + strconv.Itoa(s.Line)
	if s.Commit != "" {
		out += "@" + ShortCommit(s.Commit)
	}
	return out
}

// ShortCommit shortens a git commit hash to 8 hex digits.
func ShortCommit(c string) string {
	if len(c) > 8 {
		return c[:8]
	}
	return c
}

// Fingerprint computes an alert identity from the rule name and segment labels.
func Fingerprint(rule string, segment Labels) string {
	h := fnv.New64a()
	h.Write([]byte(rule))
	h.Write([]byte{0xff})
	var buf [8]byte
	v := segment.Hash()
	for i := range buf {
		buf[i] = byte(v >> (8 * i))
	}
	h.Write(buf[:])
	return hex64(h.Sum64())
}

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// Inhibit says which alerts a firing alert suppresses: those of the named
// rules whose labels agree with it on every name in Equal.
type Inhibit struct {
	Rules []string
	Equal []string
}
