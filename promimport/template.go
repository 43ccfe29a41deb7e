package promimport

import (
	"fmt"
	"slices"
	"strings"
	"text/template/parse"
)

// Prometheus defines these variables before every alert template
// (rules/alerting.go); parsing needs them defined.
const promTemplatePrefix = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// goBuiltins are text/template's own functions, which Vigil keeps.
var goBuiltins = []string{"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"}

// vigilFuncs are the functions Vigil's templates add (docs/rules.md).
var vigilFuncs = []string{"humanize", "humanizeDuration", "humanizePercentage", "label", "value"}

// promFuncs are Prometheus' template functions (template/template.go),
// known so their templates parse; only the ones Vigil has convert.
var promFuncs = []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match",
	"title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "humanize", "humanize1024",
	"humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime", "toDuration", "pathPrefix",
	"externalURL", "parseDuration", "stripPort", "stripDomain", "now", "urlQueryEscape"}

func funcSet(names ...[]string) map[string]any {
	m := map[string]any{}
	for _, l := range names {
		for _, n := range l {
			m[n] = true // parse only asks whether the name is non-nil
		}
	}
	return m
}

// convertTemplate rewrites an annotation from Prometheus' template forms
// ({{ $labels.x }}, {{ $value }}) to Vigil's ({{ label "x" }}, {{ value }}).
func convertTemplate(text string, opts *Options) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	trees, err := parse.Parse("t", promTemplatePrefix+text, "", "", funcSet(goBuiltins, promFuncs))
	if err != nil {
		return "", fmt.Errorf("does not parse: %v", trimTemplateErr(err))
	}
	if len(trees) != 1 {
		return "", fmt.Errorf("{{ define }} is not available in Vigil templates")
	}
	root := trees["t"].Root
	// Drop the four variable definitions of the prefix.
	if len(root.Nodes) < 4 {
		return "", fmt.Errorf("does not parse")
	}
	root.Nodes = root.Nodes[4:]
	rw := &tmplRewriter{opts: opts}
	rw.list(root)
	if rw.err != nil {
		return "", rw.err
	}
	// Spaced as docs/rules.md writes them: {{ label "x" }}.
	var b strings.Builder
	for _, n := range root.Nodes {
		if a, ok := n.(*parse.ActionNode); ok {
			b.WriteString("{{ " + a.Pipe.String() + " }}")
			continue
		}
		b.WriteString(n.String())
	}
	return b.String(), nil
}

func trimTemplateErr(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

type tmplRewriter struct {
	opts *Options
	err  error
}

func (rw *tmplRewriter) fail(format string, a ...any) {
	if rw.err == nil {
		rw.err = fmt.Errorf(format, a...)
	}
}

func (rw *tmplRewriter) list(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		rw.node(n)
	}
}

func (rw *tmplRewriter) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		rw.pipe(n.Pipe)
	case *parse.IfNode:
		rw.branch(&n.BranchNode)
	case *parse.RangeNode:
		rw.branch(&n.BranchNode)
	case *parse.WithNode:
		rw.branch(&n.BranchNode)
	case *parse.ListNode:
		rw.list(n)
	case *parse.TemplateNode:
		rw.fail("{{ template }} is not available in Vigil templates")
	}
}

func (rw *tmplRewriter) branch(b *parse.BranchNode) {
	rw.pipe(b.Pipe)
	rw.list(b.List)
	rw.list(b.ElseList)
}

func (rw *tmplRewriter) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		rw.cmd(c)
	}
}

func (rw *tmplRewriter) cmd(c *parse.CommandNode) {
	// {{ $labels.x }} alone is written {{ label "x" }}.
	if len(c.Args) == 1 {
		if l, ok := labelRef(c.Args[0]); ok {
			c.Args = rw.labelCall(l)
			return
		}
	}
	for i, a := range c.Args {
		c.Args[i] = rw.arg(a, i == 0)
	}
}

// arg rewrites one argument; first says whether it is the command's
// function position.
func (rw *tmplRewriter) arg(a parse.Node, first bool) parse.Node {
	switch a := a.(type) {
	case *parse.VariableNode:
		switch {
		case a.Ident[0] == "$value" && len(a.Ident) == 1:
			return &parse.IdentifierNode{NodeType: parse.NodeIdentifier, Ident: "value"}
		case a.Ident[0] == "$labels" && len(a.Ident) == 1:
			return &parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Labels"}}
		case a.Ident[0] == "$labels" && len(a.Ident) == 2:
			// As an argument: (label "x").
			return &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{{
				NodeType: parse.NodeCommand, Args: rw.labelCall(a.Ident[1]),
			}}}
		case a.Ident[0] == "$externalLabels" || a.Ident[0] == "$externalURL":
			rw.fail("%s: Vigil templates have no external labels or URL", a.Ident[0])
		case a.Ident[0] == "$labels" || a.Ident[0] == "$value":
			rw.fail("%s is not available in Vigil templates", strings.Join(a.Ident, "."))
		}
	case *parse.IdentifierNode:
		if !slices.Contains(goBuiltins, a.Ident) && !slices.Contains(vigilFuncs, a.Ident) {
			rw.fail("the function %s is not available in Vigil templates (they have humanize, humanizeDuration, humanizePercentage and Go's own)", a.Ident)
		}
		if a.Ident == "label" || a.Ident == "value" {
			// Prometheus' label and value read query results: Vigil's
			// are the alert's.
			rw.fail("the function %s reads query results in Prometheus; Vigil templates cannot run queries", a.Ident)
		}
	case *parse.PipeNode:
		rw.pipe(a)
	case *parse.ChainNode:
		rw.arg(a.Node, false)
	case *parse.FieldNode:
		switch {
		case len(a.Ident) == 2 && a.Ident[0] == "Labels":
			return &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{{
				NodeType: parse.NodeCommand, Args: rw.labelCall(a.Ident[1]),
			}}}
		case len(a.Ident) == 1 && (a.Ident[0] == "Labels" || a.Ident[0] == "Value"):
			return a
		}
		rw.fail(".%s: Vigil templates see .Labels, .Value, .Values, .Segments, .Rule and .Severity, not Prometheus' alert data", strings.Join(a.Ident, "."))
	case *parse.DotNode:
		// Inside range or with, dot is what they iterate: fine.
	}
	return a
}

// labelRef recognises $labels.x and .Labels.x.
func labelRef(n parse.Node) (string, bool) {
	switch v := n.(type) {
	case *parse.VariableNode:
		if len(v.Ident) == 2 && v.Ident[0] == "$labels" {
			return v.Ident[1], true
		}
	case *parse.FieldNode:
		if len(v.Ident) == 2 && v.Ident[0] == "Labels" {
			return v.Ident[1], true
		}
	}
	return "", false
}

// labelCall is the arguments of `label "x"`, x renamed.
func (rw *tmplRewriter) labelCall(l string) []parse.Node {
	l = rw.opts.label(l)
	return []parse.Node{
		&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Ident: "label"},
		&parse.StringNode{NodeType: parse.NodeString, Quoted: fmt.Sprintf("%q", l), Text: l},
	}
}

// templateLabels lists the labels a Prometheus template reads with
// $labels.x, in order of appearance.
func templateLabels(text string) []string {
	var out []string
	rest := text
	for {
		i := strings.Index(rest, "abels.")
		if i < 1 || (rest[i-1] != 'l' && rest[i-1] != 'L') {
			if i < 0 {
				return out
			}
			rest = rest[i+1:]
			continue
		}
		rest = rest[i+len("abels."):]
		j := 0
		for j < len(rest) && (rest[j] == '_' || rest[j] >= 'a' && rest[j] <= 'z' || rest[j] >= 'A' && rest[j] <= 'Z' || j > 0 && rest[j] >= '0' && rest[j] <= '9') {
			j++
		}
		if j > 0 && !slices.Contains(out, rest[:j]) {
			out = append(out, rest[:j])
		}
	}
}
