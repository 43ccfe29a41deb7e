package yamlstrict

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Problem is one field that does not exist or one value that does not fit
// its field.
type Problem struct {
	// Field names the value as a reader would: collectors[0].interval.
	Field string
	// Token is where it is written: the key of an unknown field, else the
	// value.
	Token *token.Token
	// Msg says what is wrong, starting with the field.
	Msg string
	// Pruned is the field Check removed from the tree because of this
	// problem ("" when it could not remove one).
	Pruned string
}

// Check walks node as a strict decoding into a value of type t would, and
// lists every unknown field and every value that does not decode into its
// field, in the order written. go-yaml stops at the first of them and
// often cannot say where a value's own UnmarshalText failed; Check names
// the field and the place of each one.
//
// Check removes each offending key: value pair from node's mappings (the
// whole pair holding a list with a bad entry, so list indexes keep their
// meaning), so a strict decoding of what remains succeeds and later
// checks still see every other field. Values decoded by their own
// unmarshaler are decoded on their own, as one value; aliases are not
// looked into.
func Check(node ast.Node, t reflect.Type, field string) []Problem {
	c := &checker{drop: map[*ast.MappingValueNode]bool{}, parent: map[*ast.MappingValueNode]*ast.MappingNode{}}
	c.walk(node, t, field, nil, 0)
	for kv := range c.drop {
		m := c.parent[kv]
		kept := m.Values[:0]
		for _, v := range m.Values {
			if !c.drop[v] {
				kept = append(kept, v)
			}
		}
		m.Values = kept
	}
	return c.problems
}

type checker struct {
	problems []Problem
	drop     map[*ast.MappingValueNode]bool
	parent   map[*ast.MappingValueNode]*ast.MappingNode
}

// pair is the key: value pair a value sits in, and its field.
type pair struct {
	m     *ast.MappingNode
	kv    *ast.MappingValueNode
	field string
}

func (c *checker) problem(tk *token.Token, field, msg string, at *pair) {
	p := Problem{Field: field, Token: tk, Msg: msg}
	if at != nil && at.m != nil {
		c.drop[at.kv] = true
		c.parent[at.kv] = at.m
		p.Pruned = at.field
	}
	c.problems = append(c.problems, p)
}

func (c *checker) walk(node ast.Node, t reflect.Type, field string, at *pair, depth int) {
	if node == nil || t == nil || depth > maxDepth {
		return
	}
	switch n := node.(type) {
	case *ast.TagNode:
		c.walk(n.Value, t, field, at, depth+1)
		return
	case *ast.AnchorNode:
		c.walk(n.Value, t, field, at, depth+1)
		return
	case *ast.DocumentNode:
		c.walk(n.Body, t, field, at, depth+1)
		return
	case *ast.AliasNode, *ast.NullNode:
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
			c.leaf(node, t, field, at)
			return
		}
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		seq, ok := node.(*ast.SequenceNode)
		if !ok {
			c.problem(node.GetToken(), field, fmt.Sprintf("%s: want a list, found %s", field, describe(node)), at)
			return
		}
		for i, v := range seq.Values {
			c.walk(v, t.Elem(), fmt.Sprintf("%s[%d]", field, i), at, depth+1)
		}
	case reflect.Map, reflect.Struct:
		m, lone := mapping(node)
		if m == nil && lone == nil {
			c.problem(node.GetToken(), field, fmt.Sprintf("%s: want a mapping (key: value), found %s", field, describe(node)), at)
			return
		}
		kvs := []*ast.MappingValueNode{lone}
		if m != nil {
			kvs = m.Values
		}
		var fields map[string]reflect.Type
		if t.Kind() == reflect.Struct {
			fields = map[string]reflect.Type{}
			collect(t, fields, 0)
		}
		for _, kv := range kvs {
			if kv.Key == nil {
				continue
			}
			key := keyOf(kv)
			if key == mergeKey {
				continue
			}
			here := &pair{m: m, kv: kv, field: join(field, key, t.Kind() == reflect.Map)}
			var ft reflect.Type
			if fields == nil {
				ft = t.Elem()
			} else {
				var ok bool
				if ft, ok = fields[key]; !ok {
					msg := fmt.Sprintf("unknown field %q", key)
					if field != "" {
						msg += " in " + field
					}
					c.problem(kv.Key.GetToken(), here.field, msg, here)
					continue
				}
			}
			c.walk(kv.Value, ft, here.field, here, depth+1)
		}
	default:
		c.leaf(node, t, field, at)
	}
}

// leaf decodes one value into a new t on its own.
func (c *checker) leaf(node ast.Node, t reflect.Type, field string, at *pair) {
	v := reflect.New(t)
	err := yaml.NodeToValue(node, v.Interface(), yaml.Strict())
	if err == nil {
		if _, isFloat := node.(*ast.FloatNode); isFloat && isInt(t) && !isDuration(t) {
			c.problem(node.GetToken(), field, fmt.Sprintf("%s: want a whole number, found %s", field, describe(node)), at)
		}
		return
	}
	tk, msg := node.GetToken(), leafMsg(node, t, err)
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		tk = ye.GetToken() // inside the value, from its own unmarshaler
	}
	if IsUnknownField(msg) {
		c.problem(tk, field, msg+" in "+field, at)
		return
	}
	c.problem(tk, field, field+": "+msg, at)
}

var prefixPos = regexp.MustCompile(`^\[\d+:\d+\] `)

func leafMsg(node ast.Node, t reflect.Type, err error) string {
	found := describe(node)
	switch {
	case isDuration(t):
		return durationMsg(node)
	case t.Kind() == reflect.Bool:
		return "want true or false, found " + found
	case isInt(t):
		return "want a whole number, found " + found
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "want a number, found " + found
	case t.Kind() == reflect.String:
		return "want a single value, found " + found
	}
	msg := err.Error()
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
	}
	return prefixPos.ReplaceAllString(msg, "")
}

var (
	numberOnly     = regexp.MustCompile(`^[-+]?[0-9]*\.?[0-9]+$`)
	durationSyntax = regexp.MustCompile(`^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$`)
)

// durationMsg explains why a value is not a Go duration.
func durationMsg(node ast.Node) string {
	s, ok := scalarText(node)
	switch {
	case !ok:
		return "want a duration like 30s or 1m, found " + describe(node)
	case numberOnly.MatchString(s):
		return fmt.Sprintf("%s has no unit: want a duration like %ss or %sm", s, s, s)
	case strings.HasPrefix(s, "-"):
		return fmt.Sprintf("%s is negative: want a duration of 0 or more", s)
	case durationSyntax.MatchString(s):
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("%s is out of range: at most %dh (about 292 years)", s, int64(1<<63-1)/int64(time.Hour))
		}
	}
	return fmt.Sprintf("%q is not a duration: want one like 30s, 1m30s or 1h", s)
}

// isDuration: time.Duration and types like it (collectors.Duration).
func isDuration(t reflect.Type) bool {
	return t == reflect.TypeFor[time.Duration]() || (t.Kind() == reflect.Int64 && t.Name() == "Duration")
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func scalarText(node ast.Node) (string, bool) {
	if _, ok := node.(ast.ScalarNode); !ok {
		return "", false
	}
	if tk := node.GetToken(); tk != nil {
		return tk.Value, true
	}
	return "", false
}

// describe names what was written: a scalar as written, else its shape.
func describe(node ast.Node) string {
	switch node.(type) {
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	}
	if s, ok := scalarText(node); ok {
		if _, isString := node.(*ast.StringNode); isString {
			return strconv.Quote(s)
		}
		return s
	}
	return node.Type().String()
}

func mapping(node ast.Node) (*ast.MappingNode, *ast.MappingValueNode) {
	switch n := node.(type) {
	case *ast.MappingNode:
		return n, nil
	case *ast.MappingValueNode:
		return nil, n
	}
	return nil, nil
}

func keyOf(kv *ast.MappingValueNode) string {
	key := kv.Key.String()
	if k, ok := kv.Key.(ast.ScalarNode); ok {
		if s, ok := k.GetValue().(string); ok {
			key = s
		}
	}
	return key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// join appends a key to a field name; map keys that are not plain words
// are quoted: tags["host.mac"].
func join(field, key string, mapKey bool) string {
	if mapKey && !plainKey.MatchString(key) {
		return field + "[" + strconv.Quote(key) + "]"
	}
	if field == "" {
		return key
	}
	return field + "." + key
}
