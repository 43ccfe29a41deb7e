package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/vigil-alerts/vigil/internal/yamlstrict"
)

// Error is one mistake in a rule file, with where it is and which rule.
type Error struct {
	File string
	Pos  Pos
	Rule string // empty for file- or group-level mistakes
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Pos.Line, e.Pos.Column)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every mistake of one load, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// shapeErrors lists every unknown field and misshapen value of node, read
// as a v, and prunes them from node so the rest decodes (yamlstrict.Check).
// pruned holds the top-level fields removed, whose absence is then no
// further error.
func shapeErrors(file, rule string, node ast.Node, v any) (Errors, map[string]bool) {
	var errs Errors
	pruned := map[string]bool{}
	for _, p := range yamlstrict.Check(node, reflect.TypeOf(v), "") {
		e := &Error{File: file, Rule: rule, Msg: p.Msg}
		if p.Token != nil && p.Token.Position != nil {
			e.Pos = Pos{p.Token.Position.Line, p.Token.Position.Column}
		}
		errs = append(errs, e)
		top, _, _ := strings.Cut(p.Pruned, ".")
		top, _, _ = strings.Cut(top, "[")
		pruned[top] = true
	}
	return errs, pruned
}

// strictError is yamlError for a strict decoding of node into a value like
// v: of several unknown fields, it names the first as written, not the one
// go-yaml happened to pick.
func strictError(file, rule string, err error, node ast.Node, v any) *Error {
	e := yamlError(file, rule, err)
	if yamlstrict.IsUnknownField(e.Msg) {
		if tk := yamlstrict.FirstUnknown(node, reflect.TypeOf(v)); tk != nil {
			e.Msg = fmt.Sprintf("unknown field %q", tk.Value)
			e.Pos = Pos{tk.Position.Line, tk.Position.Column}
		}
	}
	return e
}

// yamlError turns a go-yaml decoding error into an *Error with its position.
func yamlError(file, rule string, err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		e := &Error{File: file, Rule: rule, Msg: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil {
			e.Pos = Pos{tk.Position.Line, tk.Position.Column}
		}
		return e
	}
	msg := err.Error()
	// str.UnmarshalYAML errors carry their own [line:col] prefix.
	var line, col int
	if n, _ := fmt.Sscanf(msg, "[%d:%d]", &line, &col); n == 2 {
		if i := strings.Index(msg, "] "); i >= 0 {
			msg = msg[i+2:]
		}
		return &Error{File: file, Rule: rule, Pos: Pos{line, col}, Msg: msg}
	}
	return &Error{File: file, Rule: rule, Msg: msg}
}
