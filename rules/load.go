package rules

import (
	"bytes"
	"unicode/utf8"

	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/goccy/go-yaml"
	yamlast "github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	pmodel "github.com/prometheus/common/model"
	"github.com/robfig/cron/v3"

	"github.com/vigil-alerts/vigil/model"
)

// Defaults applied when a rule or group leaves a field out.
const (
	DefaultInterval = time.Minute
	DefaultWindow   = time.Minute
)

var (
	namePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]*$`)
	labelPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/-]*$`)
	channelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// IsRuleFile says whether a file under a rule directory holds rules: YAML,
// not a rule test (*_test.yaml), not hidden (Kubernetes' ..data entries).
func IsRuleFile(path string) bool {
	base := filepath.Base(path)
	if strings.HasPrefix(base, ".") {
		return false
	}
	ext := filepath.Ext(base)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(base, ext), "_test")
}

// Files lists the rule files named by paths: files as given, directories
// walked recursively (following symlinked files, as in ConfigMap mounts).
func Files(paths ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !IsRuleFile(path) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
					return nil
				}
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

// Load reads, validates and compiles every rule file under paths. It
// returns the whole set, or Errors listing every mistake found.
func Load(paths ...string) (*RuleSet, error) {
	files, err := Files(paths...)
	if err != nil {
		return nil, err
	}
	contents := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		contents[f] = b
	}
	rs, err := Parse(files, contents)
	if err != nil {
		return nil, err
	}
	src := newSourcer(paths)
	for _, g := range rs.Groups {
		src.stamp(g.File, []*Group{g})
	}
	return rs, nil
}

// Parse compiles rule files already read into memory, in the given order.
func Parse(files []string, contents map[string][]byte) (*RuleSet, error) {
	c, err := newCompiler()
	if err != nil {
		return nil, err
	}
	rs := &RuleSet{Files: files, Sums: make(map[string]string, len(files))}
	var errs Errors
	for _, f := range files {
		rs.Sums[f] = checksum(contents[f])
		groups, ferrs := c.parseFile(f, contents[f])
		errs = append(errs, ferrs...)
		rs.Groups = append(rs.Groups, groups...)
	}
	errs = append(errs, validateSet(rs)...)
	if len(errs) > 0 {
		sortErrors(errs, files)
		return nil, errs
	}
	for _, r := range rs.Rules() {
		rs.MaxWindow = max(rs.MaxWindow, r.Window)
	}
	return rs, nil
}

// sortErrors orders errs by file (in the order of files), line and column.
func sortErrors(errs Errors, files []string) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return slices.Index(files, a.File) < slices.Index(files, b.File)
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Column < b.Pos.Column
	})
}

// validateSet checks what only the whole set can tell: unique names and
// inhibit targets that exist.
func validateSet(rs *RuleSet) Errors {
	errs := validateNames(rs.Groups)
	seen := map[string]bool{}
	for _, r := range rs.Rules() {
		seen[r.Name] = true
	}
	for _, r := range rs.Rules() {
		if r.Inhibit == nil {
			continue
		}
		for _, target := range r.Inhibit.Rules {
			if !seen[target] {
				errs = append(errs, &Error{File: r.File, Pos: r.Pos, Rule: r.Name,
					Msg: fmt.Sprintf("inhibits: no rule named %q", target)})
			}
		}
	}
	return errs
}

// validateNames checks that group names are unique across files and rule
// names across the set.
func validateNames(groups []*Group) Errors {
	var errs Errors
	byName := map[string]*Group{}
	for _, g := range groups {
		// Group names identify schedules and metrics: unique across files.
		if prev, ok := byName[g.Name]; ok && prev.File != g.File {
			errs = append(errs, &Error{File: g.File, Pos: g.Pos,
				Msg: fmt.Sprintf("group %q: duplicate group name, first defined at %s:%d:%d", g.Name, prev.File, prev.Pos.Line, prev.Pos.Column)})
			continue
		}
		byName[g.Name] = g
	}
	seen := map[string]*Rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			if prev, ok := seen[r.Name]; ok {
				errs = append(errs, &Error{File: r.File, Pos: r.Pos, Rule: r.Name,
					Msg: fmt.Sprintf("duplicate rule name, first defined at %s:%d:%d", prev.File, prev.Pos.Line, prev.Pos.Column)})
				continue
			}
			seen[r.Name] = r
		}
	}
	return errs
}

func (c *compiler) parseFile(file string, data []byte) ([]*Group, Errors) {
	if !utf8.Valid(data) {
		return nil, Errors{notUTF8(file, data)}
	}
	doc, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(file, "", err)}
	}
	if len(doc.Docs) != 1 || doc.Docs[0].Body == nil {
		return nil, Errors{{File: file, Msg: "expected one YAML document with a groups: list"}}
	}
	// Every unknown field and misshapen value first, each at its place;
	// Check prunes them, so the rest still decodes and is checked.
	body := doc.Docs[0].Body
	errs, _ := shapeErrors(file, "", body, fileNode{})
	var fn fileNode
	if err := yaml.NodeToValue(body, &fn, yaml.Strict()); err != nil {
		if len(errs) > 0 {
			return nil, errs
		}
		return nil, Errors{strictError(file, "", err, body, fn)}
	}
	if len(fn.Groups) == 0 {
		if len(errs) > 0 {
			return nil, errs
		}
		return nil, Errors{{File: file, Msg: "no groups: a rule file holds groups, each with rules"}}
	}
	lines := bytes.Split(data, []byte("\n"))
	var (
		groups     []*Group
		groupNames = map[string]bool{}
	)
	for _, gn := range fn.Groups {
		g := &Group{Name: gn.Name.Value, File: file, Pos: gn.Name.Pos, Interval: DefaultInterval}
		gerr := func(s str, format string, args ...any) {
			errs = append(errs, &Error{File: file, Pos: s.Pos, Msg: fmt.Sprintf("group %q: ", g.Name) + fmt.Sprintf(format, args...)})
		}
		switch {
		case !gn.Name.Set || gn.Name.Value == "":
			gerr(gn.Name, "a group needs a name")
		case groupNames[g.Name]:
			gerr(gn.Name, "duplicate group name in this file")
		}
		groupNames[g.Name] = true
		if gn.Interval.Set {
			d, err := parseDuration(gn.Interval.Value)
			switch {
			case err != nil || d <= 0:
				gerr(gn.Interval, "interval %q: want a positive duration like 30s or 1m%s", gn.Interval.Value, because(err))
			case d < time.Second || d%time.Second != 0:
				// The scheduler runs whole seconds: 1ms would silently
				// run every second.
				gerr(gn.Interval, "interval %q: want whole seconds, 1s or more (the scheduler's resolution)", gn.Interval.Value)
			default:
				g.Interval = d
			}
		}
		if gn.Schedule.Set {
			if sched, err := cron.ParseStandard(gn.Schedule.Value); err != nil {
				gerr(gn.Schedule, "schedule %q: %v (want a cron spec like \"*/5 * * * *\" or @every 30s)", gn.Schedule.Value, err)
			} else if neverFires(sched) {
				// "0 0 31 2 *" parses, and would silently never run.
				gerr(gn.Schedule, "schedule %q: never fires (no such date): the group would never be evaluated", gn.Schedule.Value)
			} else if every, ok := strings.CutPrefix(gn.Schedule.Value, "@every "); ok && !wholeSeconds(every) {
				// robfig/cron rounds @every up to a second, silently.
				gerr(gn.Schedule, "schedule %q: want @every with whole seconds, 1s or more (the scheduler's resolution)", gn.Schedule.Value)
			} else {
				g.Schedule = gn.Schedule.Value
				if gn.Interval.Set {
					gerr(gn.Schedule, "give interval or schedule, not both")
				}
			}
		}
		for _, node := range gn.Rules {
			r, rerrs := c.compileRule(file, lines, g, node)
			errs = append(errs, rerrs...)
			if r != nil {
				g.Rules = append(g.Rules, r)
			}
		}
		groups = append(groups, g)
	}
	return groups, errs
}

// compileRule validates and compiles one rule node; it returns every error
// it finds rather than the first.
func (c *compiler) compileRule(file string, lines [][]byte, g *Group, node yamlast.Node) (*Rule, Errors) {
	if node == nil { // a bare "-": go-yaml panics on a nil node
		return nil, Errors{{File: file, Pos: g.Pos, Msg: fmt.Sprintf("group %q: an empty entry in rules: each rule is a mapping with name, severity and condition", g.Name)}}
	}
	errs, pruned := shapeErrors(file, ruleNameOf(node), node, ruleNode{})
	var rn ruleNode
	if err := yaml.NodeToValue(node, &rn, yaml.Strict()); err != nil {
		if len(errs) > 0 {
			return nil, errs
		}
		return nil, Errors{strictError(file, ruleNameOf(node), err, node, rn)}
	}
	r := &Rule{
		Name: rn.Name.Value, Group: g.Name, File: file, Pos: rn.Name.Pos,
		Description: rn.Description.Value,
		Severity:    Severity(rn.Severity.Value),
		Across:      AcrossAny, Window: DefaultWindow, Trigger: TriggerSustained, NoData: NoDataOK,
	}
	if !rn.Name.Set {
		tk := node.GetToken()
		r.Pos = Pos{tk.Position.Line, tk.Position.Column}
	}
	fail := func(at Pos, format string, args ...any) {
		errs = append(errs, &Error{File: file, Pos: at, Rule: r.Name, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case r.Name == "" && !pruned["name"]:
		fail(r.Pos, "a rule needs a name")
	case !namePattern.MatchString(r.Name):
		fail(rn.Name.Pos, "name %q: use letters, digits, _, ., : or -, starting with a letter or _", r.Name)
	}
	if !rn.Severity.Set {
		if !pruned["severity"] {
			fail(r.Pos, "severity is required: one of %s", severityList())
		}
	} else if !slices.Contains(Severities, r.Severity) {
		fail(rn.Severity.Pos, "unknown severity %q: want one of %s", rn.Severity.Value, severityList())
	}
	enum := func(s str, field string, dst *string, allowed ...string) {
		if !s.Set {
			return
		}
		if !slices.Contains(allowed, s.Value) {
			fail(s.Pos, "%s: unknown value %q: want one of %s", field, s.Value, strings.Join(allowed, ", "))
			return
		}
		*dst = s.Value
	}
	enum(rn.Across, "across", (*string)(&r.Across), string(AcrossAny), string(AcrossEvery))
	enum(rn.Trigger, "trigger", (*string)(&r.Trigger), string(TriggerSustained), string(TriggerAtLeastOnce))
	enum(rn.NoData, "no_data", (*string)(&r.NoData), string(NoDataOK), string(NoDataAlerting), string(NoDataKeepState))

	duration := func(s str, field string, dst *time.Duration, positive bool) {
		if !s.Set {
			return
		}
		d, err := parseDuration(s.Value)
		if err != nil || d < 0 || (positive && d == 0) {
			if positive {
				fail(s.Pos, "%s %q: want a positive duration like 30s, 5m or 1h%s", field, s.Value, because(err))
			} else {
				fail(s.Pos, "%s %q: want a duration like 30s, 5m or 1h%s", field, s.Value, because(err))
			}
			return
		}
		*dst = d
	}
	duration(rn.Window, "window", &r.Window, true)
	duration(rn.For, "for", &r.For, false)
	duration(rn.KeepFiringFor, "keep_firing_for", &r.KeepFiringFor, false)
	if r.Trigger == TriggerAtLeastOnce && r.For == 0 && rn.Trigger.Set {
		fail(rn.Trigger.Pos, "trigger at_least_once needs a for: duration to look back over")
	}

	for _, s := range rn.SegmentBy {
		if !labelPattern.MatchString(s.Value) {
			fail(s.Pos, "segment_by: %q is not a label name", s.Value)
		}
		if slices.Contains(r.SegmentBy, s.Value) {
			fail(s.Pos, "segment_by: %q listed twice", s.Value)
		}
		r.SegmentBy = append(r.SegmentBy, s.Value)
	}
	if len(rn.Labels) > 0 {
		r.Labels = model.Labels{}
		for k, v := range rn.Labels {
			if !labelPattern.MatchString(k) {
				fail(v.Pos, "labels: %q is not a label name", k)
			}
			if k == "alertname" || k == "severity" {
				fail(v.Pos, "labels: %q is set by Vigil from the rule's %s", k, map[string]string{"alertname": "name", "severity": "severity"}[k])
			}
			r.Labels[k] = v.Value
		}
	}
	for _, n := range rn.Notify {
		if !channelPattern.MatchString(n.Value) {
			fail(n.Pos, "notify: %q is not a channel name (letters, digits, _, . and -)", n.Value)
		}
		r.Notify = append(r.Notify, n.Value)
		r.NotifyPos = append(r.NotifyPos, n.Pos)
	}
	if rn.Inhibits != nil {
		r.Inhibit = &model.Inhibit{}
		for _, s := range rn.Inhibits.Rules {
			r.Inhibit.Rules = append(r.Inhibit.Rules, s.Value)
		}
		for _, s := range rn.Inhibits.Equal {
			r.Inhibit.Equal = append(r.Inhibit.Equal, s.Value)
		}
		if len(r.Inhibit.Rules) == 0 {
			fail(r.Pos, "inhibits: list the rules this one suppresses under rules:")
		}
	}

	if rn.Scope.Set && strings.TrimSpace(rn.Scope.Value) != "" {
		scope, cerrs := c.compileScope(rn.Scope.Value)
		for _, ce := range cerrs {
			fail(celPos(lines, rn.Scope, ce), "scope: %s", ce.Msg)
		}
		r.Scope = scope
	}
	if pruned["condition"] {
		// its shape error is reported
	} else if !rn.Condition.Set || strings.TrimSpace(rn.Condition.Value) == "" {
		fail(r.Pos, `condition is required, e.g. condition: max("etcd.can_connect") == 0`)
	} else {
		cond, cerrs := c.compileCondition(rn.Condition.Value)
		for _, ce := range cerrs {
			fail(celPos(lines, rn.Condition, ce), "condition: %s", ce.Msg)
		}
		if cond != nil && len(cond.Aggregates) == 0 {
			fail(rn.Condition.Pos, `condition uses no metric: compare an aggregate such as avg("etcd.leader.latency")`)
		}
		if cond != nil {
			stepAggregates(cond, g, func(a *Aggregate) {
				fail(rn.Condition.Pos, "condition: %s reduces across series at each step of the group's interval, and group %q has a schedule instead; put the rule in a group with an interval", a.Text, g.Name)
			})
		}
		r.Condition = cond
	}
	c.compileStateFields(r, &rn, lines, fail)

	r.keepSources(lines, &rn)
	if len(rn.Annotations) > 0 {
		r.Annotations = map[string]*template.Template{}
		for k, v := range rn.Annotations {
			t, err := parseTemplate(k, v.Value)
			if err != nil {
				fail(v.Pos, "annotation %q: %v", k, err)
				continue
			}
			r.Annotations[k] = t
			if r.Condition == nil {
				continue
			}
			var have []string
			for _, a := range r.Condition.Aggregates {
				have = append(have, a.Text)
			}
			for _, key := range valuesIndexed(t) {
				if !slices.Contains(have, key) {
					fail(v.Pos, "annotation %q: .Values has no %q: the condition computes %s", k, key, strings.Join(have, ", "))
				}
			}
		}
	}
	if len(errs) == 0 {
		r.StateKey = stateKey(r, g)
	}
	// A rule with errors is still returned, so set-wide checks (duplicate
	// names) see it; Parse drops the whole set anyway.
	return r, errs
}

// stateKey hashes what decides a rule's alerts.
func stateKey(r *Rule, g *Group) uint64 {
	h := fnv.New64a()
	scope := ""
	if r.Scope != nil {
		scope = r.Scope.Source
	}
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s",
		r.Name, scope, r.SegmentBy, r.Across, r.Window, r.Condition.Source, r.For, r.Trigger, r.KeepFiringFor, r.NoData, g.Interval.String()+" "+g.Schedule)
	// Written only when set, so the key of a rule without them is unchanged.
	if r.ClearWhen != nil {
		fmt.Fprintf(h, "\x00clear_when %s", r.ClearWhen.Source)
	}
	if r.Flapping != nil {
		fmt.Fprintf(h, "\x00flapping %d %s", r.Flapping.Changes, r.Flapping.Window)
	}
	if r.Expect != nil {
		fmt.Fprintf(h, "\x00expect %s %v %s", r.Expect.Inventory, r.Expect.Segments, r.Expect.Seen)
	}
	return h.Sum64()
}

func severityList() string {
	s := make([]string, len(Severities))
	for i, v := range Severities {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// because explains a duration that did not parse: out of range (Go
// durations end at about 292 years) or not a duration at all.
func because(err error) string {
	if err == nil {
		return ""
	}
	if m := unitless.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf(" (a number needs a unit: %ss, %sm)", m[1], m[1])
	}
	if strings.Contains(err.Error(), "range") || strings.Contains(err.Error(), "overflow") {
		return " (out of range: at most 292 years)"
	}
	return ""
}

// neverFires reports whether a cron schedule has no time to run at:
// robfig/cron's Next gives the zero time when nothing matches within five
// years, and a leap day matches in any four.
func neverFires(s cron.Schedule) bool {
	return s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero()
}

// unitless finds a number without a unit in a duration parse error.
var unitless = regexp.MustCompile(`"([0-9]+(?:\.[0-9]+)?)"`)

// wholeSeconds reports whether an @every duration is 1s or more and whole
// seconds.
func wholeSeconds(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d >= time.Second && d%time.Second == 0
}

// notUTF8 names where a rule file stops being UTF-8: YAML is UTF-8, and a
// Latin-1 file would load with mangled names and labels.
func notUTF8(file string, data []byte) *Error {
	line, col := 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return &Error{File: file, Pos: Pos{Line: line, Column: col}, Msg: "not UTF-8: rule files are UTF-8 text"}
}

func parseDuration(s string) (time.Duration, error) {
	d, err := pmodel.ParseDuration(s)
	return time.Duration(d), err
}

// ruleNameOf finds a rule's name in a node that failed to decode, so the
// error can still say which rule it is.
func ruleNameOf(node yamlast.Node) string {
	m, ok := node.(*yamlast.MappingNode)
	if !ok {
		return ""
	}
	for _, v := range m.Values {
		if v.Key.String() == "name" {
			if s, ok := v.Value.(*yamlast.StringNode); ok {
				return s.Value
			}
		}
	}
	return ""
}

// celPos maps a position inside a CEL expression to the rule file.
func celPos(lines [][]byte, s str, ce celError) Pos {
	switch {
	case s.Block:
		// The text starts on the line after the indicator, at its indent.
		var content []int // 0-based indexes of the block's lines
		indent := -1
		for i := s.Pos.Line; i < len(lines); i++ {
			l := lines[i]
			if len(bytes.TrimSpace(l)) == 0 {
				if indent >= 0 {
					content = append(content, i)
				}
				continue
			}
			ind := len(l) - len(bytes.TrimLeft(l, " \t"))
			if indent < 0 {
				indent = ind
			} else if ind < indent {
				break
			}
			content = append(content, i)
		}
		if indent < 0 {
			return s.Pos
		}
		if !s.Folded {
			return Pos{Line: s.Pos.Line + ce.Line, Column: indent + ce.Column}
		}
		// Folded: lines were joined by spaces, except around empty and
		// more-indented lines, which keep their line breaks. Replay that.
		line, col := 1, 1
		prevPlain := false
		for n, i := range content {
			text := bytes.TrimRight(lines[i], " \t\r")
			if len(text) > indent {
				text = text[indent:]
			} else {
				text = nil
			}
			plain := len(text) > 0 && text[0] != ' ' && text[0] != '\t'
			if n > 0 {
				if plain && prevPlain {
					col++ // the space that replaced the line break
				} else {
					line, col = line+1, 1
				}
			}
			for k := range text {
				if line == ce.Line && col == ce.Column {
					return Pos{Line: i + 1, Column: indent + k + 1}
				}
				col++
			}
			prevPlain = plain
		}
		return Pos{Line: s.Pos.Line + 1, Column: indent + 1}
	case ce.Line > 1:
		return Pos{Line: s.Pos.Line + ce.Line - 1, Column: ce.Column}
	default:
		col := s.Pos.Column + ce.Column - 1
		if s.Quoted {
			col++
		}
		return Pos{Line: s.Pos.Line, Column: col}
	}
}
