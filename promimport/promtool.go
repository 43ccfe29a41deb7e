package promimport

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-alerts/vigil/internal/yamlstrict"
)

// OutputName is the name `vigil import` gives a converted file: rule
// files become NAME.vigil.yaml, test files NAME.vigil_test.yaml (so a
// rule directory's loader skips them, as every *_test.yaml).
func OutputName(path string, test bool) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".yml"), ".yaml")
	if test {
		return base + ".vigil_test.yaml"
	}
	return base + ".vigil.yaml"
}

// promtool's unit test file format (cmd/promtool/unittest.go).
type promTestFile struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval string          `yaml:"evaluation_interval"`
	GroupEvalOrder     []string        `yaml:"group_eval_order"`
	FuzzyCompare       bool            `yaml:"fuzzy_compare"`
	Tests              []promTestGroup `yaml:"tests"`
}

type promTestGroup struct {
	Interval        string            `yaml:"interval"`
	InputSeries     []promSeries      `yaml:"input_series"`
	AlertRuleTests  []promAlertTest   `yaml:"alert_rule_test"`
	PromqlExprTests []ast.Node        `yaml:"promql_expr_test"`
	ExternalLabels  map[string]string `yaml:"external_labels"`
	ExternalURL     string            `yaml:"external_url"`
	Name            string            `yaml:"name"`
	StartTimestamp  string            `yaml:"start_timestamp"`
}

type promSeries struct {
	Series string    `yaml:"series"`
	Values scalarStr `yaml:"values"`
}

// scalarStr keeps a scalar as written: `values: 1` is a number in YAML.
type scalarStr string

func (s *scalarStr) UnmarshalYAML(n ast.Node) error {
	switch v := n.(type) {
	case *ast.StringNode:
		*s = scalarStr(v.Value)
	case *ast.LiteralNode:
		*s = scalarStr(v.Value.Value)
	case *ast.NullNode:
		*s = ""
	case ast.ScalarNode:
		*s = scalarStr(v.GetToken().Value)
	default:
		return fmt.Errorf("values: want a string like \"1 1 0x10\"")
	}
	return nil
}

type promAlertTest struct {
	EvalTime  string      `yaml:"eval_time"`
	Alertname string      `yaml:"alertname"`
	ExpAlerts []promAlert `yaml:"exp_alerts"`
}

type promAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// ReadFile reads a file a test file names, relative to the test file.
type ReadFile func(path string) ([]byte, error)

// Tests converts one promtool test file. read loads the rule files it
// names (paths as written, joined to the test file's directory), which are
// converted too, to know which alerts exist in Vigil and under what names.
func Tests(file string, data []byte, read ReadFile, opts Options) ([]byte, *Report, error) {
	var f promTestFile
	if err := yamlstrict.Unmarshal(data, &f, yaml.Strict()); err != nil {
		if bytes.Contains(data, []byte("groups:")) {
			return nil, nil, fmt.Errorf("%s: this looks like a rule file; use vigil import prometheus", file)
		}
		return nil, nil, fmt.Errorf("%s: %s", file, yaml.FormatError(err, false, false))
	}
	if len(f.RuleFiles) == 0 {
		return nil, nil, fmt.Errorf("%s: rule_files: a promtool test file names its rule files", file)
	}
	rep := &Report{}
	item := func(test string, problem string) {
		rep.Items = append(rep.Items, Item{File: file, Test: test, Converted: true, Problems: []string{problem}})
	}
	names := map[string][]vigilRule{}
	var ruleFiles []string
	for _, rf := range f.RuleFiles {
		p := rf
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), rf)
		}
		b, err := read(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: rule_files: %v", file, err)
		}
		conv, err := convertRules(p, b, &opts)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range conv.names {
			names[k] = append(names[k], v...)
		}
		if conv.out == nil {
			item("", fmt.Sprintf("rule file %s: no rule converted, so it is left out", rf))
			continue
		}
		ruleFiles = append(ruleFiles, filepath.Join(filepath.Dir(rf), OutputName(rf, false)))
	}
	every := time.Minute
	if f.EvaluationInterval != "" {
		d, err := pmodel.ParseDuration(f.EvaluationInterval)
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("%s: evaluation_interval %q: want a duration", file, f.EvaluationInterval)
		}
		every = time.Duration(d)
	}
	if len(f.GroupEvalOrder) > 0 {
		item("", "group_eval_order: Vigil evaluates every group at each step; the order is not kept")
	}
	if f.FuzzyCompare {
		item("", "fuzzy_compare: Vigil compares values exactly")
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# Converted from %s by `vigil import promtool`.\n", baseName(file))
	b.WriteString("# Expectations compare only firing alerts (states: [firing]), as promtool does.\n")
	var q []string
	for _, rf := range ruleFiles {
		q = append(q, quote(rf))
	}
	fmt.Fprintf(&b, "rule_files: [%s]\n", strings.Join(q, ", "))
	fmt.Fprintf(&b, "evaluation_interval: %s\n", pmodel.Duration(every))
	b.WriteString("tests:\n")
	for i, tg := range f.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("test %d", i+1)
		}
		convertTestGroup(&b, rep, file, name, tg, every, names, &opts)
	}
	if len(f.Tests) == 0 {
		return nil, rep, fmt.Errorf("%s: no tests", file)
	}
	return b.Bytes(), rep, nil
}

func convertTestGroup(b *bytes.Buffer, rep *Report, file, name string, tg promTestGroup, every time.Duration, names map[string][]vigilRule, opts *Options) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	fmt.Fprintf(b, "  - name: %s\n", quote(name))
	if tg.Interval != "" {
		d, err := pmodel.ParseDuration(tg.Interval)
		if err != nil || d <= 0 {
			bad("interval %q: want a duration", tg.Interval)
		} else {
			fmt.Fprintf(b, "    interval: %s\n", d)
		}
	}
	if len(tg.ExternalLabels) > 0 || tg.ExternalURL != "" {
		bad("external_labels and external_url: Vigil has neither")
	}
	if tg.StartTimestamp != "" {
		bad("start_timestamp: Vigil's tests start at a fixed time")
	}
	if len(tg.PromqlExprTests) > 0 {
		bad("promql_expr_test (%d): Vigil has no PromQL to test; only alert tests convert", len(tg.PromqlExprTests))
	}
	outer := b
	b = &bytes.Buffer{}
	nseries := 0
	for _, s := range tg.InputSeries {
		metric, ls, vals, err := convertSeries(s, opts)
		if err != nil {
			bad("series %s: %v", oneLine(s.Series), err)
			fmt.Fprintf(b, "      # NOT CONVERTED: %s\n", oneLine(s.Series))
			continue
		}
		nseries++
		fmt.Fprintf(b, "      - metric: %s\n", quote(metric))
		if len(ls) > 0 {
			fmt.Fprintf(b, "        labels: %s\n", flowMap(ls))
		}
		fmt.Fprintf(b, "        values: %s\n", quote(vals))
	}
	// An empty list must be written [], or it reads as null.
	writeSection(outer, "input_series", nseries, b)
	b.Reset()
	nexp := 0
	for _, at := range tg.AlertRuleTests {
		d, err := pmodel.ParseDuration(at.EvalTime)
		if err != nil {
			bad("eval_time %q: %v", at.EvalTime, err)
			continue
		}
		evalAt := time.Duration(d)
		if evalAt%every != 0 {
			// promtool checks the state of the last evaluation at or
			// before eval_time.
			evalAt -= evalAt % every
		}
		rules := names[at.Alertname]
		if len(rules) == 0 {
			bad("alert %s at %s: the rule was not converted", at.Alertname, at.EvalTime)
			fmt.Fprintf(b, "      # NOT CONVERTED: alert %s at %s: the rule was not converted\n", at.Alertname, at.EvalTime)
			continue
		}
		// Prometheus checks every rule of that name; Vigil one rule per
		// expectation, so copies (renamed by severity) get one each.
		perRule := make([][]promAlert, len(rules))
		ok := true
		for _, a := range at.ExpAlerts {
			k := 0
			if len(rules) > 1 {
				k = -1
				for j, r := range rules {
					if r.severity == a.ExpLabels["severity"] {
						k = j
					}
				}
				if k < 0 {
					bad("alert %s at %s: %d rules share the name and the expected alert's severity does not tell which", at.Alertname, at.EvalTime, len(rules))
					ok = false
					break
				}
			}
			perRule[k] = append(perRule[k], a)
		}
		if !ok {
			continue
		}
		for j, r := range rules {
			nexp++
			fmt.Fprintf(b, "      - at: %s\n", pmodel.Duration(evalAt))
			fmt.Fprintf(b, "        rule: %s\n", quote(r.name))
			b.WriteString("        states: [firing]\n")
			if len(perRule[j]) == 0 {
				b.WriteString("        alerts: []\n")
				continue
			}
			b.WriteString("        alerts:\n")
			for _, a := range perRule[j] {
				ls := map[string]string{}
				for k, v := range a.ExpLabels {
					switch k {
					case "severity":
						v, _ = severity(v)
					case "alertname":
						v = r.name
					default:
						k = opts.label(k)
					}
					ls[k] = v
				}
				fmt.Fprintf(b, "          - labels: %s\n", flowMap(ls))
				if len(a.ExpAnnotations) > 0 {
					b.WriteString("            annotations:\n")
					for _, k := range sortedKeys(a.ExpAnnotations) {
						fmt.Fprintf(b, "              %s: %s\n", quote(k), quote(a.ExpAnnotations[k]))
					}
				}
			}
		}
	}
	writeSection(outer, "expect", nexp, b)
	if len(problems) > 0 {
		rep.Items = append(rep.Items, Item{File: file, Test: name, Converted: true, Problems: problems})
	}
}

func writeSection(b *bytes.Buffer, name string, n int, body *bytes.Buffer) {
	if n == 0 {
		fmt.Fprintf(b, "    %s: []\n", name)
	} else {
		fmt.Fprintf(b, "    %s:\n", name)
	}
	b.Write(body.Bytes())
}

// convertSeries turns `metric{labels}` and promtool's values into Vigil's
// metric, labels and values notation.
func convertSeries(s promSeries, opts *Options) (string, map[string]string, string, error) {
	ls, err := promParser.ParseMetric(s.Series)
	if err != nil {
		return "", nil, "", fmt.Errorf("%s", oneLine(err.Error()))
	}
	metric := ""
	out := map[string]string{}
	var lerr error
	ls.Range(func(l labels.Label) {
		if l.Name == pmodel.MetricNameLabel {
			metric = opts.metric(l.Value)
			return
		}
		n := opts.label(l.Name)
		if !vigilLabel.MatchString(n) {
			lerr = fmt.Errorf("the label %q is not a Vigil label name", n)
		}
		out[n] = l.Value
	})
	if lerr != nil {
		return "", nil, "", lerr
	}
	if metric == "" {
		return "", nil, "", fmt.Errorf("no metric name")
	}
	_, vals, err := promParser.ParseSeriesDesc("{} " + string(s.Values))
	if err != nil {
		return "", nil, "", fmt.Errorf("values: %s", oneLine(err.Error()))
	}
	steps := make([]float64, len(vals))
	for i, v := range vals {
		switch {
		case v.Histogram != nil:
			return "", nil, "", fmt.Errorf("native histograms: Vigil's samples are numbers")
		case v.Omitted, value.IsStaleNaN(v.Value):
			// A stale marker ends the series at once in Prometheus; in
			// Vigil the step has no sample (the window still holds the
			// ones before).
			steps[i] = math.NaN()
		case math.IsNaN(v.Value):
			return "", nil, "", fmt.Errorf("a NaN sample: Vigil's series notation has none (_ is no sample)")
		default:
			steps[i] = v.Value
		}
	}
	if len(steps) == 0 {
		return "", nil, "", fmt.Errorf("no values")
	}
	return metric, out, encodeValues(steps), nil
}

// encodeValues writes steps (NaN: no sample) in Vigil's notation, which is
// promtool's: `vxN` and `a+bxN` are N+1 values, `_xN` is N steps.
func encodeValues(steps []float64) string {
	var toks []string
	for i := 0; i < len(steps); {
		v := steps[i]
		if math.IsNaN(v) {
			j := i
			for j < len(steps) && math.IsNaN(steps[j]) {
				j++
			}
			toks = append(toks, repeat("_", j-i))
			i = j
			continue
		}
		// The longest run from i that Vigil's start+k*step reproduces
		// exactly.
		j := i + 1
		if j < len(steps) && !math.IsNaN(steps[j]) {
			step := steps[j] - v
			for j < len(steps) && !math.IsNaN(steps[j]) && v+float64(j-i)*step == steps[j] {
				j++
			}
			if step == 0 {
				toks = append(toks, repeat(formatNumber(v), j-i-1))
				i = j
				continue
			}
			if j-i >= 3 {
				sign := "+"
				if step < 0 {
					sign = "-"
				}
				toks = append(toks, fmt.Sprintf("%s%s%sx%d", formatNumber(v), sign, formatNumber(math.Abs(step)), j-i-1))
				i = j
				continue
			}
		}
		toks = append(toks, formatNumber(v))
		i++
	}
	return strings.Join(toks, " ")
}

// repeat writes tok then n more of it, or n steps of _ (as promtool counts).
func repeat(tok string, n int) string {
	if (tok == "_" && n == 1) || (tok != "_" && n == 0) {
		return tok
	}
	return fmt.Sprintf("%sx%d", tok, n)
}

func flowMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, quote(k)+": "+quoteFlow(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// quoteFlow quotes a value inside a flow mapping, where , { } [ ] matter.
func quoteFlow(s string) string {
	q := quote(s)
	if q == s && strings.ContainsAny(s, ",{}[]") {
		return "'" + s + "'"
	}
	return q
}
