// Package promimport converts Prometheus alerting rule files into Vigil
// rule files, and promtool rule test files into `vigil test` files
// (`vigil import`). PromQL is parsed with Prometheus' own parser; what
// Vigil's condition language cannot express is listed rule by rule with
// the reason, in the report and as a comment in the output, never dropped.
package promimport

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	pmodel "github.com/prometheus/common/model"
	promparser "github.com/prometheus/prometheus/promql/parser"
)

// Options say how Prometheus names become Vigil's.
type Options struct {
	// Labels renames labels, in selectors, by, without, templates and test
	// series. Nil means DefaultLabels.
	Labels map[string]string
	// Metrics renames metrics. Nil means DefaultMetrics.
	Metrics map[string]string
	// Identity is the Prometheus labels that tell one scraped series from
	// another: an unaggregated expression is segmented by them (plus the
	// labels its annotations read). Nil means DefaultIdentity.
	Identity []string
}

// DefaultLabels maps Prometheus' target labels to the ones Vigil's
// prometheus collector sets: the collector's name and the target's.
var DefaultLabels = map[string]string{"job": "collector", "instance": "target"}

// DefaultMetrics maps Prometheus' synthetic scrape metric to Vigil's own.
var DefaultMetrics = map[string]string{"up": "vigil.collector.up"}

// DefaultIdentity is what tells scraped series apart in Prometheus.
var DefaultIdentity = []string{"instance", "job"}

func (o *Options) label(l string) string {
	m := o.Labels
	if m == nil {
		m = DefaultLabels
	}
	if v, ok := m[l]; ok {
		return v
	}
	return l
}

func (o *Options) metric(n string) string {
	m := o.Metrics
	if m == nil {
		m = DefaultMetrics
	}
	if v, ok := m[n]; ok {
		return v
	}
	return n
}

func (o *Options) identity() []string {
	if o.Identity == nil {
		return DefaultIdentity
	}
	return o.Identity
}

// Item is what happened to one rule (or, with no Rule, one group).
type Item struct {
	File  string
	Line  int
	Group string
	Rule  string // the Prometheus alert (or record) name
	Test  string // for a promtool test file: the test's name, "" for the file
	// Name is the Vigil rule's name when it differs (duplicates).
	Name string
	// Converted is true when the rule is in the output.
	Converted bool
	// Problems are what was not converted: the rule, or a part of it.
	Problems []string
	// Notes say where the converted rule behaves differently.
	Notes []string
}

// Report lists every rule of the converted files.
type Report struct {
	Items []Item
}

// Complete says whether everything was converted.
func (r *Report) Complete() bool {
	for _, it := range r.Items {
		if !it.Converted || len(it.Problems) > 0 {
			return false
		}
	}
	return true
}

// Counts is how many rules were converted, and how many of the
// Items list something not converted.
func (r *Report) Counts() (converted, rules, incomplete int) {
	for _, it := range r.Items {
		if it.Rule != "" {
			rules++
			if it.Converted {
				converted++
			}
		}
		if !it.Converted || len(it.Problems) > 0 {
			incomplete++
		}
	}
	return
}

// String is the report as printed on stderr: one line per problem.
func (r *Report) String() string {
	var b strings.Builder
	for _, it := range r.Items {
		what := fmt.Sprintf("group %q", it.Group)
		switch {
		case it.Rule != "":
			what = fmt.Sprintf("rule %q", it.Rule)
		case it.Test != "":
			what = fmt.Sprintf("test %q", it.Test)
		case it.Group == "":
			what = "file"
		}
		where := it.File
		if it.Line > 0 {
			where = fmt.Sprintf("%s:%d", it.File, it.Line)
		}
		for _, p := range it.Problems {
			verb := "not converted"
			if it.Converted && it.Rule != "" {
				verb = "converted without"
			}
			fmt.Fprintf(&b, "%s: %s: %s: %s\n", where, what, verb, p)
		}
	}
	return b.String()
}

// promGroup and promRule are Prometheus' rule file format
// (model/rulefmt), decoded here to keep line numbers: rulefmt itself
// imports Prometheus' query engine and template packages.
type promGroup struct {
	Name        string            `yaml:"name"`
	Interval    string            `yaml:"interval"`
	QueryOffset string            `yaml:"query_offset"`
	Limit       int               `yaml:"limit"`
	Labels      map[string]string `yaml:"labels"`
	Rules       []ast.Node        `yaml:"rules"`
}

type promRule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

// Vigil's name rules (rules/load.go), checked here so that what is
// written loads.
var (
	vigilName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]*$`)
	vigilLabel = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/-]*$`)
)

// Severities maps Prometheus' usual severity label values to Vigil's
// severities; anything else becomes medium, with a note.
var Severities = map[string]string{
	"critical": "critical", "page": "critical",
	"high": "high", "error": "high", "major": "high",
	"warning": "medium", "warn": "medium", "medium": "medium",
	"low": "low", "minor": "low",
	"info": "info", "informational": "info", "none": "info",
}

func severity(v string) (string, bool) {
	s, ok := Severities[strings.ToLower(v)]
	if !ok {
		return "medium", false
	}
	return s, true
}

// Rules converts one Prometheus rule file. It returns the Vigil rule file
// (nil when no rule converted), the report, and an error only for a file
// that cannot be read as a rule file at all.
func Rules(file string, data []byte, opts Options) ([]byte, *Report, error) {
	conv, err := convertRules(file, data, &opts)
	if err != nil {
		return nil, nil, err
	}
	return conv.out, conv.report, nil
}

// converted is a converted rule file, with what a test file needs.
type converted struct {
	out    []byte
	report *Report
	// names maps a Prometheus alert name to the Vigil rules made from it.
	names map[string][]vigilRule
}

type vigilRule struct {
	name     string
	severity string // Prometheus' severity label value
}

func convertRules(file string, data []byte, opts *Options) (*converted, error) {
	groups, err := decodeGroups(file, data)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	conv := &converted{report: rep, names: map[string][]vigilRule{}}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Converted from %s by `vigil import prometheus`.\n", baseName(file))
	fmt.Fprintf(&b, "# Review it: docs/coming-from-prometheus.md says what differs.\n")
	b.WriteString("groups:\n")
	// Vigil rule names are unique; Prometheus repeats an alert name for
	// each severity. Count first so every copy gets a suffix.
	seen := map[string]int{}
	for _, g := range groups {
		for _, rn := range g.rules {
			if rn.rule.Alert != "" {
				seen[rn.rule.Alert]++
			}
		}
	}
	used := map[string]bool{}
	groupNames := map[string]bool{}
	nconv := 0
	for _, g := range groups {
		var body bytes.Buffer
		gi := Item{File: file, Line: g.line, Group: g.Name, Converted: true}
		// Prometheus refuses these files too; Vigil's loader would
		// refuse the output.
		if g.Name == "" || groupNames[g.Name] {
			why := "the group has no name"
			if g.Name != "" {
				why = "a second group with this name"
			}
			gi.Converted = false
			gi.Problems = append(gi.Problems, why+": its rules are not converted")
			rep.Items = append(rep.Items, gi)
			fmt.Fprintf(&b, "  # group %q (%s:%d): %s\n", g.Name, baseName(file), g.line, why)
			continue
		}
		groupNames[g.Name] = true
		if g.QueryOffset != "" {
			gi.Problems = append(gi.Problems, fmt.Sprintf("query_offset %s: Vigil evaluates at the scheduled time", g.QueryOffset))
		}
		if g.Limit != 0 {
			gi.Problems = append(gi.Problems, fmt.Sprintf("limit %d: Vigil has no limit on a rule's alerts", g.Limit))
		}
		interval := ""
		if g.Interval != "" {
			d, err := pmodel.ParseDuration(g.Interval)
			switch {
			case err != nil:
				gi.Problems = append(gi.Problems, fmt.Sprintf("interval %q: %v", g.Interval, err))
			case time.Duration(d) < time.Second || time.Duration(d)%time.Second != 0:
				gi.Problems = append(gi.Problems, fmt.Sprintf("interval %s: Vigil evaluates in whole seconds; the default 1m is used", g.Interval))
			default:
				interval = d.String()
			}
		}
		if len(gi.Problems) > 0 {
			rep.Items = append(rep.Items, gi)
		}
		inGroup := 0
		for _, rn := range g.rules {
			it, text, vr := convertRule(file, g, rn, opts, seen, used)
			rep.Items = append(rep.Items, it)
			body.WriteString(text)
			if it.Converted {
				inGroup++
				conv.names[it.Rule] = append(conv.names[it.Rule], vr)
			}
		}
		nconv += inGroup
		if inGroup == 0 {
			// No rule converted: a Vigil group needs rules, so the group
			// is only a comment.
			fmt.Fprintf(&b, "  # group %q: no rule converted\n", g.Name)
			b.Write(commentOut(body.Bytes()))
			continue
		}
		fmt.Fprintf(&b, "  - name: %s\n", quote(g.Name))
		if interval != "" {
			fmt.Fprintf(&b, "    interval: %s\n", interval)
		}
		b.WriteString("    rules:\n")
		b.Write(body.Bytes())
	}
	if nconv > 0 {
		conv.out = b.Bytes()
	}
	return conv, nil
}

// commentOut turns rule text into comments (lines already comments stay).
func commentOut(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(strings.TrimLeft(l, " "), "#") {
			out.WriteString(l)
		} else {
			out.WriteString("  # " + strings.TrimLeft(l, " "))
		}
	}
	return out.Bytes()
}

type groupIn struct {
	promGroup
	line  int
	rules []ruleIn
}

type ruleIn struct {
	rule promRule
	line int
	err  error
}

func decodeGroups(file string, data []byte) ([]groupIn, error) {
	doc, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", file, yaml.FormatError(err, false, false))
	}
	if len(doc.Docs) != 1 || doc.Docs[0].Body == nil {
		return nil, fmt.Errorf("%s: expected one YAML document with a groups: list", file)
	}
	body := doc.Docs[0].Body
	if m, ok := body.(*ast.MappingNode); ok {
		// A Prometheus Operator PrometheusRule: its spec is a rule file.
		for _, kv := range m.Values {
			if kv.Key != nil && kv.Key.String() == "spec" && !isEmpty(kv.Value) {
				body = kv.Value
			}
		}
	}
	var f struct {
		Groups []ast.Node `yaml:"groups"`
	}
	if err := yaml.NodeToValue(body, &f); err != nil {
		return nil, fmt.Errorf("%s: %s", file, yaml.FormatError(err, false, false))
	}
	if len(f.Groups) == 0 {
		if bytes.Contains(data, []byte("rule_files")) {
			return nil, fmt.Errorf("%s: no groups: this looks like a promtool test file; use vigil import promtool", file)
		}
		return nil, fmt.Errorf("%s: no groups: a Prometheus rule file holds groups, each with rules", file)
	}
	var out []groupIn
	for _, gn := range f.Groups {
		g := groupIn{line: line(gn)}
		if isEmpty(gn) {
			return nil, fmt.Errorf("%s:%d: an empty entry in groups", file, g.line)
		}
		if err := yaml.NodeToValue(gn, &g.promGroup, yaml.Strict()); err != nil {
			return nil, fmt.Errorf("%s: %s", file, yaml.FormatError(err, false, false))
		}
		for _, rn := range g.Rules {
			r := ruleIn{line: line(rn)}
			if isEmpty(rn) {
				r.err = fmt.Errorf("an empty entry in rules")
			} else if err := yaml.NodeToValue(rn, &r.rule, yaml.Strict()); err != nil {
				r.err = fmt.Errorf("%s", strings.TrimSpace(yaml.FormatError(err, false, false)))
			}
			g.rules = append(g.rules, r)
		}
		out = append(out, g)
	}
	return out, nil
}

// isEmpty says whether a list entry is missing or null (goccy's decoder
// panics on a nil node).
func isEmpty(n ast.Node) bool {
	if n == nil {
		return true
	}
	_, null := n.(*ast.NullNode)
	return null
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

var promParser = promparser.NewParser(promparser.Options{})

// convertRule converts one rule; text is its Vigil YAML (or the comment
// saying why there is none).
func convertRule(file string, g groupIn, rn ruleIn, opts *Options, seen map[string]int, used map[string]bool) (it Item, text string, vr vigilRule) {
	r := rn.rule
	it = Item{File: file, Line: rn.line, Group: g.Name, Rule: r.Alert}
	var b strings.Builder
	notConverted := func(reason string) (Item, string, vigilRule) {
		it.Converted = false
		it.Problems = append(it.Problems, reason)
		it.Notes = nil
		fmt.Fprintf(&b, "      # NOT CONVERTED %s (%s:%d): %s\n", orUnnamed(it.Rule), baseName(file), rn.line, oneLine(reason))
		if r.Expr != "" {
			fmt.Fprintf(&b, "      #   expr: %s\n", oneLine(r.Expr))
		}
		return it, b.String(), vr
	}
	switch {
	case rn.err != nil:
		return notConverted(rn.err.Error())
	case r.Record != "":
		it.Rule = r.Record
		return notConverted("recording rule: Vigil has no recording rules; write its expression into the alerts that use it")
	case r.Alert == "":
		return notConverted("a rule needs alert: (or record:)")
	case r.Expr == "":
		return notConverted("a rule needs expr:")
	}
	name := r.Alert
	sevValue := r.Labels["severity"]
	if sevValue == "" {
		sevValue = g.Labels["severity"]
	}
	if seen[name] > 1 {
		// Told apart by severity, as the copies usually are.
		suffix := sevValue
		if suffix == "" {
			suffix = "copy"
		}
		name = name + "_" + suffix
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%s_%d", r.Alert, suffix, i)
		}
		it.Name = name
		it.Notes = append(it.Notes, fmt.Sprintf("renamed %s: Vigil rule names are unique, and %s is used %d times in this file", name, r.Alert, seen[r.Alert]))
	}
	if !vigilName.MatchString(name) {
		return notConverted(fmt.Sprintf("the name %q is not a Vigil rule name (letters, digits, _ . : -)", name))
	}
	used[name] = true
	vr = vigilRule{name: name, severity: sevValue}

	expr, err := promParser.ParseExpr(r.Expr)
	if err != nil {
		return notConverted("expr: " + oneLine(err.Error()))
	}
	tr := &translator{opts: opts}
	// The labels an unaggregated series is told apart by: the target's,
	// and those the annotations name.
	idents := slices.Clone(opts.identity())
	for _, k := range sortedKeys(r.Annotations) {
		for _, l := range templateLabels(r.Annotations[k]) {
			if !slices.Contains(idents, l) {
				idents = append(idents, l)
			}
		}
	}
	sort.Strings(idents)
	tr.identity = idents
	cond, err := tr.condition(expr)
	if err != nil {
		return notConverted(err.Error())
	}
	var segmentBy []string
	if cond.group != nil {
		for _, l := range cond.group.by {
			segmentBy = append(segmentBy, opts.label(l))
		}
		sort.Strings(segmentBy)
		if cond.group.series {
			tr.note("Prometheus alerts once per series; this rule has one alert per %s, so series that differ only in other labels share an alert (their samples pooled, their rates added up)", listOrNone(segmentBy))
		}
	}
	for _, l := range segmentBy {
		if !vigilLabel.MatchString(l) {
			return notConverted(fmt.Sprintf("the label %q is not a Vigil label name", l))
		}
	}
	window := tr.window
	if window == 0 {
		window = lookback
	}
	it.Notes = append(it.Notes, tr.notes...)

	sev, ok := severity(sevValue)
	switch {
	case sevValue == "":
		it.Notes = append(it.Notes, "no severity label: severity medium")
	case !ok:
		it.Notes = append(it.Notes, fmt.Sprintf("severity %q is not one Vigil knows: severity medium", sevValue))
	}
	labelsOut := map[string]string{}
	for k, v := range g.Labels {
		labelsOut[k] = v
	}
	for k, v := range r.Labels {
		labelsOut[k] = v
	}
	delete(labelsOut, "severity")
	for _, k := range sortedKeys(labelsOut) {
		v := labelsOut[k]
		switch {
		case k == "alertname":
			it.Problems = append(it.Problems, "label alertname: Vigil sets it from the rule's name")
			delete(labelsOut, k)
		case !vigilLabel.MatchString(k):
			it.Problems = append(it.Problems, fmt.Sprintf("label %q: not a Vigil label name", k))
			delete(labelsOut, k)
		case strings.Contains(v, "{{"):
			it.Problems = append(it.Problems, fmt.Sprintf("label %s: %q is a template; Vigil's rule labels are plain text", k, v))
			delete(labelsOut, k)
		}
	}
	annOut := map[string]string{}
	for _, k := range sortedKeys(r.Annotations) {
		t, err := convertTemplate(r.Annotations[k], opts)
		if err != nil {
			it.Problems = append(it.Problems, fmt.Sprintf("annotation %s: %v", k, err))
			continue
		}
		annOut[k] = t
	}

	var forD, keepD string
	if r.For != "" {
		d, err := pmodel.ParseDuration(r.For)
		if err != nil {
			return notConverted(fmt.Sprintf("for %q: %v", r.For, err))
		}
		if d != 0 {
			forD = d.String()
		}
	}
	if r.KeepFiringFor != "" {
		d, err := pmodel.ParseDuration(r.KeepFiringFor)
		if err != nil {
			return notConverted(fmt.Sprintf("keep_firing_for %q: %v", r.KeepFiringFor, err))
		}
		if d != 0 {
			keepD = d.String()
		}
	}

	it.Converted = true
	fmt.Fprintf(&b, "      # from %s:%d\n", baseName(file), rn.line)
	fmt.Fprintf(&b, "      #   expr: %s\n", oneLine(r.Expr))
	for _, n := range it.Notes {
		fmt.Fprintf(&b, "      # note: %s\n", oneLine(n))
	}
	for _, p := range it.Problems {
		fmt.Fprintf(&b, "      # NOT CONVERTED: %s\n", oneLine(p))
	}
	fmt.Fprintf(&b, "      - name: %s\n", quote(name))
	fmt.Fprintf(&b, "        severity: %s\n", sev)
	if s := tr.scope(); s != "" {
		fmt.Fprintf(&b, "        scope: %s\n", quote(s))
	}
	if len(segmentBy) > 0 {
		var q []string
		for _, l := range segmentBy {
			q = append(q, quote(l))
		}
		fmt.Fprintf(&b, "        segment_by: [%s]\n", strings.Join(q, ", "))
	}
	fmt.Fprintf(&b, "        window: %s\n", pmodel.Duration(window))
	fmt.Fprintf(&b, "        condition: %s\n", quote(cond.cel))
	if forD != "" {
		fmt.Fprintf(&b, "        for: %s\n", forD)
	}
	if keepD != "" {
		fmt.Fprintf(&b, "        keep_firing_for: %s\n", keepD)
	}
	writeMap(&b, "labels", labelsOut)
	writeMap(&b, "annotations", annOut)
	return it, b.String(), vr
}

func writeMap(b *strings.Builder, name string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(b, "        %s:\n", name)
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(b, "          %s: %s\n", quote(k), quote(m[k]))
	}
}

func orUnnamed(s string) string {
	if s == "" {
		return "(unnamed rule)"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// oneLine folds whitespace so text fits in a one-line comment.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

var plain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$`)

// quote writes s as a YAML scalar that reads back as s.
func quote(s string) string {
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "true", "false", "on", "off", "null":
		return "'" + s + "'"
	}
	if plain.MatchString(s) {
		return s
	}
	printable := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			printable = false
			break
		}
	}
	if printable {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return doubleQuote(s)
}

// doubleQuote is a YAML double-quoted scalar (JSON-style escapes).
func doubleQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func modelDuration(d time.Duration) string { return pmodel.Duration(d).String() }
