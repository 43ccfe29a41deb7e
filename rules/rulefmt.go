package rules

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// This file is only the file format: YAML shapes and the positions of
// their values, so every later error can say file:line:col.

// fileNode is one rule file.
type fileNode struct {
	Groups []groupNode `yaml:"groups"`
}

type groupNode struct {
	Name     str `yaml:"name"`
	Interval str `yaml:"interval"`
	Schedule str `yaml:"schedule"`
	// Rules are decoded one by one so a mistake in one rule does not hide
	// the mistakes in the next.
	Rules []ast.Node `yaml:"rules"`
}

// ruleNode is one rule as written.
type ruleNode struct {
	Name          str            `yaml:"name"`
	Description   str            `yaml:"description"`
	Severity      str            `yaml:"severity"`
	Labels        map[string]str `yaml:"labels"`
	Scope         str            `yaml:"scope"`
	SegmentBy     []str          `yaml:"segment_by"`
	Across        str            `yaml:"across"`
	Window        str            `yaml:"window"`
	Condition     str            `yaml:"condition"`
	For           str            `yaml:"for"`
	Trigger       str            `yaml:"trigger"`
	KeepFiringFor str            `yaml:"keep_firing_for"`
	NoData        str            `yaml:"no_data"`
	Annotations   map[string]str `yaml:"annotations"`
	Notify        []str          `yaml:"notify"`
	Inhibits      *inhibitNode   `yaml:"inhibits"`
	ClearWhen     str            `yaml:"clear_when"`
	Flapping      *flappingNode  `yaml:"flapping"`
	Expect        *expectNode    `yaml:"expect"`
}

type flappingNode struct {
	Changes str `yaml:"changes"`
	Window  str `yaml:"window"`
}

// expectNode names the segments a rule expects: one of the three.
type expectNode struct {
	Inventory str              `yaml:"inventory"`
	Segments  []map[string]str `yaml:"segments"`
	Seen      str              `yaml:"seen"`
}

type inhibitNode struct {
	Rules []str `yaml:"rules"`
	Equal []str `yaml:"equal"`
}

// Pos is a place in a file; Line and Column count from 1.
type Pos struct {
	Line, Column int
}

// str is a scalar with the place it was written. Block scalars (| and >)
// remember their style, because positions inside them are offset by the
// indicator line.
type str struct {
	Value string
	Pos   Pos
	Set   bool
	// Block is true for | and > scalars: the text starts on the next line.
	Block bool
	// Folded is true for > scalars, whose lines are joined by spaces.
	Folded bool
	// Quoted is true for '...' and "..." scalars: the text starts one
	// column after Pos.
	Quoted bool
}

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (s *str) UnmarshalYAML(n ast.Node) error {
	tk := n.GetToken()
	if tk != nil {
		s.Pos = Pos{Line: tk.Position.Line, Column: tk.Position.Column}
	}
	switch v := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.StringNode:
		s.Value = v.Value
		s.Quoted = strings.HasPrefix(tk.Origin, "'") || strings.HasPrefix(tk.Origin, `"`) ||
			strings.HasPrefix(strings.TrimLeft(tk.Origin, " \t\n"), "'") ||
			strings.HasPrefix(strings.TrimLeft(tk.Origin, " \t\n"), `"`)
	case *ast.LiteralNode:
		s.Value = v.Value.Value
		s.Block = true
		s.Folded = v.Start != nil && strings.HasPrefix(v.Start.Value, ">")
	case ast.ScalarNode:
		s.Value = fmt.Sprint(v.GetValue())
	default:
		shape := "a " + strings.ToLower(n.Type().String())
		switch n.(type) {
		case *ast.SequenceNode:
			shape = "a list"
		case *ast.MappingNode, *ast.MappingValueNode:
			shape = "a mapping"
		}
		return fmt.Errorf("[%d:%d] want a single value, found %s", s.Pos.Line, s.Pos.Column, shape)
	}
	s.Set = true
	return nil
}
