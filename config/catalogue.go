package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// Catalogue is what the config's collectors can produce, plus what the
// samples seen (a recording) show.
func (c *Config) Catalogue(seen []model.Sample) *collectors.Catalogue {
	return collectors.NewCatalogue(c.Collectors, seen)
}

// Labels every alert carries whatever the collectors produce.
var ruleLabels = map[string]bool{"alertname": true, "severity": true}

// CheckCatalogue checks every rule of rs against cat: a metric or label
// no collector produces is an error (a warning when an undeclared
// prometheus or exec collector might produce it), with file:line:col and
// the nearest known name; a rate or increase over a gauge is a warning.
func CheckCatalogue(rs *rules.RuleSet, cat *collectors.Catalogue) (errs, warnings rules.Errors) {
	report := func(r *rules.Rule, pos rules.Pos, unknownIsError bool, format string, args ...any) {
		e := &rules.Error{File: r.File, Pos: pos, Rule: r.Name, Msg: fmt.Sprintf(format, args...)}
		if unknownIsError {
			errs = append(errs, e)
		} else {
			warnings = append(warnings, e)
		}
	}
	open := len(cat.Open) > 0
	maybe := ""
	if open {
		maybe = fmt.Sprintf("; collectors %s declare no metrics (metrics: in their config), so it may come from them", strings.Join(cat.Open, ", "))
	}
	labelNames := cat.LabelNames()
	for _, r := range rs.Rules() {
		checkedMetric := map[string]bool{}
		if r.Condition != nil {
			for _, a := range r.Condition.Aggregates {
				if checkedMetric[a.Metric+string(a.Series)] {
					continue
				}
				checkedMetric[a.Metric+string(a.Series)] = true
				pos := r.ConditionPos(literalOffset(r.Condition.Source, a.Metric))
				info, ok := cat.Metrics[a.Metric]
				if !ok {
					report(r, pos, !open, "condition: no collector produces metric %q%s%s", a.Metric, suggest(a.Metric, cat.Names()), maybe)
					continue
				}
				if (a.Series == rules.Rate || a.Series == rules.Increase) && info.Kind == model.Gauge {
					report(r, pos, false, "condition: %s(%q): %s is a gauge; rate and increase are for counters, and read a gauge going down as a reset", a.Series, a.Metric, a.Metric)
				}
			}
			for _, m := range labelRefs(r.Condition.Source) {
				if !cat.Labels[m.name] && !ruleLabels[m.name] {
					report(r, r.ConditionPos(m.offset), !open, "condition: no collector produces label %q%s%s", m.name, suggest(m.name, labelNames), maybe)
				}
			}
		}
		if r.Scope != nil {
			for _, m := range labelRefs(r.Scope.Source) {
				if !cat.Labels[m.name] {
					report(r, r.ScopePos(m.offset), !open, "scope: no collector produces label %q%s%s", m.name, suggest(m.name, labelNames), maybe)
				}
			}
		}
		for i, l := range r.SegmentBy {
			if !cat.Labels[l] {
				report(r, r.SegmentByPos(i), !open, "segment_by: no collector produces label %q%s%s", l, suggest(l, labelNames), maybe)
			}
		}
		names := make([]string, 0, len(r.Annotations))
		for n := range r.Annotations {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, l := range templateLabels(r.Annotations[n]) {
				if !cat.Labels[l] && !ruleLabels[l] && r.Labels[l] == "" {
					report(r, r.AnnotationPos(n), !open, "annotation %q: no collector produces label %q%s%s", n, l, suggest(l, labelNames), maybe)
				}
			}
		}
	}
	return errs, warnings
}

// literalOffset finds where metric is written as a string literal.
func literalOffset(src, metric string) int {
	for _, q := range []string{strconv.Quote(metric), "'" + metric + "'"} {
		if i := strings.Index(src, q); i >= 0 {
			return i + 1
		}
	}
	return 0
}

var labelRef = regexp.MustCompile(`labels\s*\[\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\]|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s+in\s+labels\b`)

type ref struct {
	name   string
	offset int
}

// labelRefs lists the label names a CEL source reads: labels["x"] and
// "x" in labels.
func labelRefs(src string) []ref {
	var out []ref
	for _, m := range labelRef.FindAllStringSubmatchIndex(src, -1) {
		g := 2
		if m[2] < 0 {
			g = 4
		}
		lit := src[m[g]:m[g+1]]
		name := lit[1 : len(lit)-1]
		if u, err := strconv.Unquote(`"` + strings.ReplaceAll(name, `"`, `\"`) + `"`); err == nil {
			name = u
		}
		out = append(out, ref{name, m[g] + 1})
	}
	return out
}

// templateLabels lists the labels a template reads: label "x",
// index .Labels "x" and .Labels.x.
func templateLabels(t *template.Template) []string {
	if t == nil || t.Tree == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			args := n.Args
			if len(args) >= 2 {
				if id, ok := args[0].(*parse.IdentifierNode); ok {
					switch {
					case id.Ident == "label":
						if s, ok := args[1].(*parse.StringNode); ok {
							add(s.Text)
						}
					case id.Ident == "index" && len(args) >= 3:
						if f, ok := args[1].(*parse.FieldNode); ok && len(f.Ident) == 1 && f.Ident[0] == "Labels" {
							if s, ok := args[2].(*parse.StringNode); ok {
								add(s.Text)
							}
						}
					}
				}
			}
			for _, a := range args {
				if f, ok := a.(*parse.FieldNode); ok && len(f.Ident) == 2 && f.Ident[0] == "Labels" {
					add(f.Ident[1])
				}
				walk(a)
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	walk(t.Tree.Root)
	return out
}

// suggest names the known name nearest to name, when one is close.
func suggest(name string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		d := distance(strings.ToLower(name), strings.ToLower(k))
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(name)/4) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
