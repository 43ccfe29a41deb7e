package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// TemplateData is what an annotation template sees.
type TemplateData struct {
	Rule     string
	Severity string
	Labels   model.Labels
	// Value is what the condition compares: the side of its first
	// comparison that reads an aggregate (last("used") / last("quota") in
	// `last("used") / last("quota") > 0.8`), else its first aggregate.
	Value float64
	// Values holds every aggregate by its text, e.g. `avg("etcd.leader.latency")`.
	Values   map[string]float64
	Segments []model.SegmentValue
}

// placeholder functions: parsing needs the names; Expand binds the real ones.
var templateFuncs = template.FuncMap{
	"label":              func(string) string { return "" },
	"value":              func() float64 { return 0 },
	"humanize":           humanize,
	"humanizeDuration":   humanizeDuration,
	"humanizePercentage": func(v float64) string { return fmt.Sprintf("%.4g%%", v*100) },
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
}

// Expand renders every annotation of r. A template that fails at run time
// still yields an annotation, carrying the error, so the alert is never lost.
func (r *Rule) Expand(data *TemplateData) map[string]string {
	if len(r.Annotations) == 0 {
		return nil
	}
	out := make(map[string]string, len(r.Annotations))
	funcs := template.FuncMap{
		"label": func(name string) string { return data.Labels[name] },
		"value": func() float64 { return data.Value },
	}
	for name, t := range r.Annotations {
		var b strings.Builder
		tc, err := t.Clone()
		if err == nil {
			err = tc.Funcs(funcs).Execute(&b, data)
		}
		if err != nil {
			out[name] = fmt.Sprintf("template error in annotation %q of rule %s: %v", name, r.Name, err)
			continue
		}
		out[name] = b.String()
	}
	return out
}

// humanize prints a number with an SI prefix: 1.5k, 230m, 12M.
func humanize(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v)
	}
	abs := math.Abs(v)
	prefixes := []struct {
		f float64
		p string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}, {1e-3, "m"}, {1e-6, "µ"}, {1e-9, "n"}}
	for _, p := range prefixes {
		if abs >= p.f {
			return fmt.Sprintf("%.4g%s", v/p.f, p.p)
		}
	}
	return fmt.Sprintf("%.4g", v)
}

func humanizeDuration(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	if d >= time.Second {
		d = d.Round(time.Millisecond)
	}
	return d.String()
}

// valuesIndexed lists the keys a template reads as constants from .Values
// (`index .Values "avg(\"m\")"`), so a load can check that the condition
// computes each: an absent key would render 0.
func valuesIndexed(t *template.Template) []string {
	var keys []string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(&n.BranchNode)
		case *parse.RangeNode:
			walk(&n.BranchNode)
		case *parse.WithNode:
			walk(&n.BranchNode)
		case *parse.BranchNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			if len(n.Args) == 3 {
				fn, ok1 := n.Args[0].(*parse.IdentifierNode)
				field, ok2 := n.Args[1].(*parse.FieldNode)
				key, ok3 := n.Args[2].(*parse.StringNode)
				if ok1 && ok2 && ok3 && fn.Ident == "index" && slices.Equal(field.Ident, []string{"Values"}) {
					keys = append(keys, key.Text)
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	if t != nil && t.Tree != nil {
		walk(t.Tree.Root)
	}
	return keys
}
