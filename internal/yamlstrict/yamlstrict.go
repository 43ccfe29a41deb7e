// Package yamlstrict makes go-yaml's unknown-field errors repeatable.
//
// go-yaml's strict mode reports one unknown field of a mapping, chosen by
// Go's random map order: a file with two misspelt fields gave a different
// error on each run (found by FuzzParse in rules). FirstUnknown finds the
// first one as written, so the same file always gets the same error.
package yamlstrict

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// IsUnknownField reports whether a go-yaml error message is about an
// unknown field.
func IsUnknownField(msg string) bool { return strings.HasPrefix(msg, "unknown field ") }

// FirstUnknown returns the key, earliest in the file, of a mapping under
// node that no field of t accepts, following yaml tags through structs,
// pointers, slices and maps. Values decoded by their own unmarshaler are
// not looked into. It returns nil when every key is known.
func FirstUnknown(node ast.Node, t reflect.Type) *token.Token {
	var first *token.Token
	walk(node, t, func(tk *token.Token) {
		if tk != nil && tk.Position != nil && (first == nil || before(tk, first)) {
			first = tk
		}
	})
	return first
}

func before(a, b *token.Token) bool {
	if a.Position.Line != b.Position.Line {
		return a.Position.Line < b.Position.Line
	}
	return a.Position.Column < b.Position.Column
}

var (
	nodeType  = reflect.TypeFor[ast.Node]()
	stoppers  = []reflect.Type{reflect.TypeFor[yaml.BytesUnmarshaler](), reflect.TypeFor[yaml.InterfaceUnmarshaler](), reflect.TypeFor[yaml.NodeUnmarshaler](), reflect.TypeFor[encoding.TextUnmarshaler]()}
	maxDepth  = 64 // deeper YAML is not a config file
	mergeKey  = "<<"
	skipField = "-"
)

func walk(node ast.Node, t reflect.Type, unknown func(*token.Token)) {
	walkDepth(node, t, unknown, 0)
}

func walkDepth(node ast.Node, t reflect.Type, unknown func(*token.Token), depth int) {
	if node == nil || t == nil || depth > maxDepth {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || t.Kind() == reflect.Interface {
		return
	}
	for _, s := range stoppers {
		if reflect.PointerTo(t).Implements(s) || t.Implements(s) {
			return
		}
	}
	switch n := node.(type) {
	case *ast.TagNode:
		walkDepth(n.Value, t, unknown, depth+1)
		return
	case *ast.AnchorNode:
		walkDepth(n.Value, t, unknown, depth+1)
		return
	case *ast.DocumentNode:
		walkDepth(n.Body, t, unknown, depth+1)
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if seq, ok := node.(*ast.SequenceNode); ok {
			for _, v := range seq.Values {
				walkDepth(v, t.Elem(), unknown, depth+1)
			}
		}
	case reflect.Map:
		for _, mv := range pairs(node) {
			walkDepth(mv.Value, t.Elem(), unknown, depth+1)
		}
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		collect(t, fields, 0)
		for _, mv := range pairs(node) {
			if mv.Key == nil {
				continue
			}
			key := mv.Key.String()
			if k, ok := mv.Key.(ast.ScalarNode); ok {
				if s, ok := k.GetValue().(string); ok {
					key = s
				}
			}
			if key == mergeKey {
				continue
			}
			ft, ok := fields[key]
			if !ok {
				unknown(mv.Key.GetToken())
				continue
			}
			walkDepth(mv.Value, ft, unknown, depth+1)
		}
	}
}

// pairs lists the key-value pairs of a mapping node.
func pairs(node ast.Node) []*ast.MappingValueNode {
	switch n := node.(type) {
	case *ast.MappingNode:
		return n.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{n}
	}
	return nil
}

// collect adds the yaml names of t's fields, inline structs included.
func collect(t reflect.Type, fields map[string]reflect.Type, depth int) {
	if depth > maxDepth {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		opts := strings.Split(tag, ",")
		name := opts[0]
		if name == skipField {
			continue
		}
		inline := false
		for _, o := range opts[1:] {
			inline = inline || o == "inline"
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collect(ft, fields, depth+1)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
}

// Unmarshal is yaml.UnmarshalWithOptions that returns an error where the
// decoder panics: goccy/go-yaml v1.19.2 dereferences a nil sequence on
// some tagged inputs (`key: !t` followed by a broken list), and a file a
// user wrote must never crash Vigil.
func Unmarshal(data []byte, v any, opts ...yaml.DecodeOption) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the YAML cannot be decoded (the decoder failed: %v); check the tags (!...) and list indentation", p)
		}
	}()
	return yaml.UnmarshalWithOptions(data, v, opts...)
}
