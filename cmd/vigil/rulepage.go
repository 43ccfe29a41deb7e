package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// /rules/NAME is where a notification's generatorURL points: one rule's
// file, its YAML as loaded, its health and its current alerts.

var rulePageTmpl = template.Must(template.New("rule").Funcs(template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"labels": func(ls model.Labels) string {
		if len(ls) == 0 {
			return "—"
		}
		return ls.String()
	},
	"value": func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) },
	"aggValue": func(v *float64) string {
		if v == nil {
			return "no data"
		}
		return strconv.FormatFloat(*v, 'g', 6, 64)
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Vigil rule {{.Rule.Name}}</title>
<style>body{font-family:sans-serif;margin:1.5em}pre{background:#f4f4f4;padding:.8em;overflow:auto}td,th{padding:.2em .8em;text-align:left}</style></head>
<body><p><a href="../">← status</a></p>
<h1 id="rule">{{.Rule.Name}}</h1>
<p>Group <b>{{.Group}}</b>, file <code id="file">{{.Rule.File}}:{{.Rule.Line}}</code>{{with .Rule.Source}}{{if .Commit}} at commit <code id="commit">{{.Commit}}</code>{{end}}{{end}}, severity {{.Rule.Severity}}</p>
<p id="health">Health: <b>{{.Rule.Health}}</b>{{if .Rule.LastError}} — {{.Rule.LastError}}{{end}}; last evaluation {{if .Rule.LastEval.IsZero}}never{{else}}{{.Rule.LastEval.UTC.Format "2006-01-02 15:04:05Z"}}{{end}}; {{.Rule.Segments}} segment(s)</p>
<h2>Definition</h2>
{{if .YAML}}<pre id="yaml">{{.YAML}}</pre>{{else}}<p id="yaml-missing">{{.YAMLMissing}}</p><pre id="condition">condition: {{.Rule.Condition}}</pre>{{end}}
<h2>Alerts ({{len .Alerts}})</h2>
{{if .Alerts}}<table id="alerts"><tr><th>State</th><th>Segment</th><th>Value</th><th>Why: the condition's aggregates at the last evaluation</th><th>Active since</th><th>Held by</th></tr>
{{range .Alerts}}<tr><td>{{.State}}</td><td>{{labels .Segment}}</td><td>{{value .Value}}</td><td class="why">{{$many := gt (len .Why) 1}}{{range .Why}}{{if $many}}{{labels .Labels}}: {{end}}{{range .Values}}<code>{{.Aggregate}}</code> = {{aggValue .Value}} {{end}}<br>{{end}}</td><td>{{fmtTime .ActiveAt}}</td><td>{{range .InhibitedBy}}inhibited by {{.}} {{end}}{{range .SilencedBy}}silenced by {{.}} {{end}}</td></tr>
{{end}}</table>{{else}}<p>No pending or firing alert.</p>{{end}}
</body></html>
`))

type rulePageData struct {
	Rule        apiRule
	Group       string
	YAML        string
	YAMLMissing string
	Alerts      []pageAlert
}

// pageAlert is an alert with its explanation.
type pageAlert struct {
	apiAlert
	Why []explainSegment
}

func (d *daemon) rulePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	data := rulePageData{}
	found := false
	for _, g := range d.rulesView().Groups {
		for _, ar := range g.Rules {
			if ar.Name == name {
				data.Rule, data.Group, found = ar, g.Name, true
			}
		}
	}
	if !found {
		http.Error(w, "no rule named "+template.HTMLEscapeString(name)+"\n", http.StatusNotFound)
		return
	}
	data.YAML, data.YAMLMissing = d.ruleYAML(data.Rule)
	data.YAML = d.redact.String(data.YAML)
	var why map[string]engine.Explanation
	if eng, _, ok := d.lead(); ok { // with ha:, the leader's engine
		why = eng.ExplainRule(name)
	}
	for _, a := range d.alertsView().Alerts {
		if a.Rule == name {
			pa := pageAlert{apiAlert: a}
			if x, ok := why[a.Fingerprint]; ok {
				pa.Why = explainOf(x).Segments
			}
			data.Alerts = append(data.Alerts, pa)
		}
	}
	var buf bytes.Buffer
	if err := rulePageTmpl.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// ruleYAML is the rule's entry in its file as loaded, or why it is not
// shown: the file is read again, and shown only when it is still the
// version in use (its checksum matches), never a newer one that failed
// to load.
func (d *daemon) ruleYAML(r apiRule) (string, string) {
	sum := d.eng.Rules().Sums[r.File]
	b, err := os.ReadFile(r.File)
	if err != nil {
		return "", "The rule file cannot be read: " + err.Error()
	}
	h := sha256.Sum256(b)
	if sum == "" || hex.EncodeToString(h[:]) != sum {
		return "", "The file has changed since this rule was loaded; the loaded version is in use."
	}
	return ruleBlock(string(b), r.Line), ""
}

// ruleBlock cuts the list item that holds line (a rule's `name:`) out of
// a block-style YAML file: from the item's dash to the last line indented
// deeper than it, without the trailing blank and comment lines (they
// introduce the next rule).
func ruleBlock(text string, line int) string {
	lines := strings.Split(text, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	blank := func(s string) bool { t := strings.TrimSpace(s); return t == "" || strings.HasPrefix(t, "#") }
	start := line - 1
	for start >= 0 && !strings.HasPrefix(strings.TrimLeft(lines[start], " "), "-") {
		start--
	}
	if start < 0 {
		return ""
	}
	dash := indent(lines[start])
	end := line
	for end < len(lines) && (blank(lines[end]) || indent(lines[end]) > dash) {
		end++
	}
	for end > line && blank(lines[end-1]) {
		end--
	}
	return strings.Join(lines[start:end], "\n")
}
