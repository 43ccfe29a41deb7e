package main

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// The status page: server-rendered HTML from the same views as the API, so
// what a person sees and what a script reads cannot disagree.

//go:embed status.html
var statusHTML string

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
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
}).Parse(statusHTML))

type statusData struct {
	alertsView
	silencesView
	Groups                 []apiGroup
	Reload                 *reloadStatus
	StateErr               string
	StateSave              *saveFailure
	HA                     *haStatus
	Rules, Firing, Pending int
	Now                    string
	Refresh                int
}

func (d *daemon) statusPage(w http.ResponseWriter, _ *http.Request) {
	rv := d.rulesView()
	data := statusData{alertsView: d.alertsView(), silencesView: d.silencesView(), Groups: rv.Groups, Reload: rv.Reload, StateErr: rv.State,
		Now: d.o.Now().UTC().Format("2006-01-02 15:04:05Z"), Refresh: 5, HA: d.haStatus(), StateSave: d.saveFail.Load()}
	for _, g := range rv.Groups {
		data.Rules += len(g.Rules)
	}
	for _, a := range data.Alerts {
		switch a.State {
		case "firing":
			data.Firing++
		case "pending":
			data.Pending++
		}
	}
	var buf bytes.Buffer
	if err := statusTmpl.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}
