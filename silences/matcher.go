package silences

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vigil-alerts/vigil/model"
)

// Matcher operators.
const (
	OpEqual     = "="
	OpNotEqual  = "!="
	OpRegexp    = "=~"
	OpNotRegexp = "!~"
)

// labelName is what a rule may call a label (rules/load.go labelPattern):
// dotted names such as host.mac are the normal case.
var labelName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/-]*$`)

// Matcher matches one label. Op is "=", "!=", "=~" or "!~"; regexes are
// fully anchored (as in Alertmanager) and compiled once, by ParseMatcher,
// NewMatcher, UnmarshalJSON or the Store. A label that is absent has the
// value "".
type Matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`

	re *regexp.Regexp // for =~ and !~; nil until compiled
}

// NewMatcher checks the name and operator and compiles a regex value.
func NewMatcher(name, op, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	if err := m.check(); err != nil {
		return Matcher{}, err
	}
	return m.compiled(), nil
}

// ParseMatcher reads `name op value`: `severity=critical`,
// `host.mac=~"00:00:5e:.*"`, `cluster!=dev`. The value is bare (the rest
// of the text, spaces around it trimmed) or quoted in Go or JSON string
// syntax, which is how to write one with leading spaces or a `"` in it.
func ParseMatcher(s string) (Matcher, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Matcher{}, errors.New("empty matcher")
	}
	i := strings.IndexFunc(text, func(r rune) bool { return !isNameRune(r) })
	if i < 0 {
		return Matcher{}, fmt.Errorf("matcher %q: no operator (one of =, !=, =~, !~)", s)
	}
	name, rest := text[:i], strings.TrimLeft(text[i:], " \t")
	var op string
	for _, o := range []string{OpRegexp, OpNotRegexp, OpNotEqual, OpEqual} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return Matcher{}, fmt.Errorf("matcher %q: no operator (one of =, !=, =~, !~) after the label name", s)
	}
	value := strings.TrimSpace(rest[len(op):])
	if strings.HasPrefix(value, `"`) {
		v, err := strconv.Unquote(value)
		if err != nil {
			// JSON escapes Go does not know, such as \/.
			if jerr := json.Unmarshal([]byte(value), &v); jerr != nil {
				return Matcher{}, fmt.Errorf("matcher %q: value is not a valid quoted string", s)
			}
		}
		value = v
	}
	m, err := NewMatcher(name, op, value)
	if err != nil {
		return Matcher{}, fmt.Errorf("matcher %q: %w", s, err)
	}
	return m, nil
}

func isNameRune(r rune) bool {
	return r == '_' || r == '.' || r == ':' || r == '/' || r == '-' ||
		(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// String is the matcher as ParseMatcher reads it, the value always quoted.
func (m Matcher) String() string {
	return m.Name + m.Op + strconv.Quote(m.Value)
}

// Matches reports whether ls[m.Name] (absent: "") satisfies m. A regex
// that does not compile matches nothing, with either operator: a broken
// matcher never mutes.
func (m Matcher) Matches(ls model.Labels) bool {
	return m.matchesValue(ls[m.Name])
}

func (m Matcher) matchesValue(v string) bool {
	switch m.Op {
	case OpEqual:
		return v == m.Value
	case OpNotEqual:
		return v != m.Value
	case OpRegexp, OpNotRegexp:
		re := m.re
		if re == nil {
			var err error
			if re, err = compile(m.Value); err != nil {
				return false
			}
		}
		return re.MatchString(v) == (m.Op == OpRegexp)
	}
	return false
}

// UnmarshalJSON reads {"name","op","value"} and compiles a regex value. A
// value that does not compile is kept as it is, for Validate to report
// with the other problems of its silence.
func (m *Matcher) UnmarshalJSON(b []byte) error {
	type plain Matcher // no methods: no recursion
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*m = Matcher(p).compiled()
	return nil
}

// check reports what is wrong with m: its name, operator or regex.
func (m Matcher) check() error {
	var errs []error
	if m.Name == "" {
		errs = append(errs, errors.New("label name is missing"))
	} else if !labelName.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("label name %q is not valid", m.Name))
	}
	switch m.Op {
	case OpEqual, OpNotEqual:
	case OpRegexp, OpNotRegexp:
		if _, err := compile(m.Value); err != nil {
			errs = append(errs, fmt.Errorf("regex %q: %w", m.Value, err))
		}
	default:
		errs = append(errs, fmt.Errorf("operator %q is not one of =, !=, =~, !~", m.Op))
	}
	return errors.Join(errs...)
}

// compiled returns m with its regex compiled, when it has one that compiles.
func (m Matcher) compiled() Matcher {
	m.re = nil
	if m.Op == OpRegexp || m.Op == OpNotRegexp {
		m.re, _ = compile(m.Value)
	}
	return m
}

func compile(v string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + v + ")$")
	if err != nil {
		// Report against the value as written, not the anchored one.
		if _, err2 := regexp.Compile(v); err2 != nil {
			return nil, err2
		}
	}
	return re, err
}
