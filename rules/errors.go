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
