package replay

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Episode is one firing of one alert: from FiredAt until ResolvedAt (zero
// when still firing at the end of the data).
type Episode struct {
	Rule        string
	Fingerprint string
	Segment     model.Labels
	Labels      model.Labels
	Severity    string
	FiredAt     time.Time
	ResolvedAt  time.Time
	Value       float64
}

// Episodes reads the firings out of a timeline, in firing order.
func (tl *Timeline) Episodes() []Episode {
	open := map[string]int{}
	var eps []Episode
	for _, e := range tl.Events {
		switch e.State {
		case "firing":
			if _, ok := open[e.Fingerprint]; ok {
				continue
			}
			open[e.Fingerprint] = len(eps)
			eps = append(eps, Episode{Rule: e.Rule, Fingerprint: e.Fingerprint, Segment: e.Segment, Labels: e.Labels,
				Severity: e.Severity, FiredAt: e.Time, Value: e.Value})
		case "resolved":
			if i, ok := open[e.Fingerprint]; ok {
				eps[i].ResolvedAt = e.Time
				delete(open, e.Fingerprint)
			}
		}
	}
	return eps
}

func (ep Episode) end(tlEnd time.Time) time.Time {
	if ep.ResolvedAt.IsZero() {
		return tlEnd.Add(time.Nanosecond)
	}
	return ep.ResolvedAt
}

// Change is one difference the head rules make.
type Change struct {
	Rule string
	// Kind is new, gone, earlier, later, resolves-earlier,
	// resolves-later, labels or severity.
	Kind       string
	Segment    model.Labels
	Base, Head *Episode
}

// Diff compares the firings of two replays over the same data. A head
// firing that overlaps a base firing of the same alert is the same
// incident, and differences in its times, labels and severity are
// reported; one that overlaps none is new, and a base firing with no
// counterpart is gone.
func Diff(base, head *Timeline) []Change {
	be, he := base.Episodes(), head.Episodes()
	end := base.End
	if head.End.After(end) {
		end = head.End
	}
	used := make([]bool, len(be))
	var out []Change
	for i := range he {
		h := &he[i]
		match := -1
		for j := range be {
			b := &be[j]
			if used[j] || b.Fingerprint != h.Fingerprint || b.Rule != h.Rule {
				continue
			}
			if b.FiredAt.Before(h.end(end)) && h.FiredAt.Before(b.end(end)) {
				match = j
				break
			}
		}
		if match < 0 {
			out = append(out, Change{Rule: h.Rule, Kind: "new", Segment: h.Segment, Head: h})
			continue
		}
		used[match] = true
		b := &be[match]
		switch {
		case h.FiredAt.Before(b.FiredAt):
			out = append(out, Change{Rule: h.Rule, Kind: "earlier", Segment: h.Segment, Base: b, Head: h})
		case h.FiredAt.After(b.FiredAt):
			out = append(out, Change{Rule: h.Rule, Kind: "later", Segment: h.Segment, Base: b, Head: h})
		}
		if !h.ResolvedAt.Equal(b.ResolvedAt) {
			kind := "resolves-later"
			if !h.ResolvedAt.IsZero() && (b.ResolvedAt.IsZero() || h.ResolvedAt.Before(b.ResolvedAt)) {
				kind = "resolves-earlier"
			}
			out = append(out, Change{Rule: h.Rule, Kind: kind, Segment: h.Segment, Base: b, Head: h})
		}
		if h.Severity != b.Severity {
			out = append(out, Change{Rule: h.Rule, Kind: "severity", Segment: h.Segment, Base: b, Head: h})
		}
		if !sameLabels(b.Labels, h.Labels) {
			out = append(out, Change{Rule: h.Rule, Kind: "labels", Segment: h.Segment, Base: b, Head: h})
		}
	}
	for j := range be {
		if !used[j] {
			out = append(out, Change{Rule: be[j].Rule, Kind: "gone", Segment: be[j].Segment, Base: &be[j]})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].at().Before(out[j].at())
	})
	return out
}

func (c Change) at() time.Time {
	if c.Head != nil {
		return c.Head.FiredAt
	}
	return c.Base.FiredAt
}

// sameLabels compares labels other than severity, which is its own kind.
func sameLabels(a, b model.Labels) bool {
	n := 0
	for k, v := range a {
		if k == "severity" {
			continue
		}
		n++
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	for k := range b {
		if k != "severity" {
			n--
		}
	}
	return n == 0
}

const stamp = "2006-01-02 15:04:05Z07:00"

func segment(ls model.Labels) string {
	if len(ls) == 0 {
		return "(whole rule)"
	}
	return ls.String()
}

func span(ep *Episode) string {
	s := ep.FiredAt.UTC().Format(stamp)
	if ep.ResolvedAt.IsZero() {
		return s + " until the end of the data"
	}
	return s + " for " + ep.ResolvedAt.Sub(ep.FiredAt).String()
}

// Describe says one change in a sentence.
func (c Change) Describe() string {
	switch c.Kind {
	case "new":
		return fmt.Sprintf("new: %s fires %s", segment(c.Segment), span(c.Head))
	case "gone":
		return fmt.Sprintf("gone: %s no longer fires (was %s)", segment(c.Segment), span(c.Base))
	case "earlier", "later":
		d := c.Head.FiredAt.Sub(c.Base.FiredAt)
		if d < 0 {
			d = -d
		}
		return fmt.Sprintf("%s: %s fires %s %s (%s instead of %s)", c.Kind, segment(c.Segment), d, c.Kind,
			c.Head.FiredAt.UTC().Format(stamp), c.Base.FiredAt.UTC().Format(stamp))
	case "resolves-earlier", "resolves-later":
		return fmt.Sprintf("%s: %s resolves %s (%s instead of %s)", c.Kind, segment(c.Segment),
			strings.TrimPrefix(c.Kind, "resolves-"), when(c.Head.ResolvedAt), when(c.Base.ResolvedAt))
	case "severity":
		return fmt.Sprintf("severity: %s is %s instead of %s", segment(c.Segment), c.Head.Severity, c.Base.Severity)
	case "labels":
		return fmt.Sprintf("labels: %s has %s instead of %s", segment(c.Segment), c.Head.Labels, c.Base.Labels)
	}
	return c.Kind
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(stamp)
}

// WriteText prints the changes grouped by rule; "no change" when empty.
func WriteText(w io.Writer, changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no change: both versions fire the same alerts at the same times")
		return
	}
	rule := ""
	for _, c := range changes {
		if c.Rule != rule {
			rule = c.Rule
			fmt.Fprintf(w, "%s\n", rule)
		}
		fmt.Fprintf(w, "  %s\n", c.Describe())
	}
}

// WriteMarkdown prints the changes as a pull-request comment.
func WriteMarkdown(w io.Writer, changes []Change, base, head string, tl *Timeline) {
	fmt.Fprintf(w, "### Alert changes: `%s` → `%s`\n\n", mdEscape(base), mdEscape(head))
	if tl != nil {
		fmt.Fprintf(w, "Replayed over %s to %s (%d evaluations).\n\n",
			tl.Start.UTC().Format(stamp), tl.End.UTC().Format(stamp), tl.Evals)
	}
	if len(changes) == 0 {
		fmt.Fprintln(w, "No change: both versions fire the same alerts at the same times.")
		return
	}
	fmt.Fprintln(w, "| rule | change | alert | detail |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, c := range changes {
		d := c.Describe()
		if i := strings.Index(d, ": "); i >= 0 {
			d = d[i+2:]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", mdEscape(c.Rule), c.Kind, mdEscape(segment(c.Segment)), mdEscape(d))
	}
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "`", "'")
	return r.Replace(s)
}

// WriteTimeline prints a replay's events, one line each.
func WriteTimeline(w io.Writer, tl *Timeline) {
	fmt.Fprintf(w, "replayed %s to %s: %d evaluations, %d state changes\n",
		tl.Start.UTC().Format(stamp), tl.End.UTC().Format(stamp), tl.Evals, len(tl.Events))
	for _, e := range tl.Events {
		line := fmt.Sprintf("%s  %-8s %s %s", e.Time.UTC().Format(stamp), e.State, e.Rule, segment(e.Segment))
		if e.State == "pending" || e.State == "firing" {
			line += fmt.Sprintf(" value=%g", e.Value)
		}
		fmt.Fprintln(w, line)
	}
	for _, e := range tl.Errors {
		fmt.Fprintln(w, "error: "+e)
	}
}
