package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// explainView is GET /api/v1/alerts/{fingerprint}/explain: why an alert
// is in its state, the aggregates of its condition per segment.
type explainView struct {
	Rule        string           `json:"rule"`
	Condition   string           `json:"condition"`
	Window      string           `json:"window"`
	For         string           `json:"for"`
	Across      string           `json:"across"`
	Fingerprint string           `json:"fingerprint"`
	State       string           `json:"state"`
	Labels      model.Labels     `json:"labels"`
	Evaluated   time.Time        `json:"last_evaluation,omitzero"`
	Source      *model.Source    `json:"source,omitempty"`
	Segments    []explainSegment `json:"segments"`
}

type explainSegment struct {
	Labels model.Labels   `json:"labels"`
	Values []explainValue `json:"values"`
}

type explainValue struct {
	Aggregate string   `json:"aggregate"`
	Value     *float64 `json:"value"` // null: no data in the window
}

func (d *daemon) apiExplain(w http.ResponseWriter, r *http.Request) {
	// With ha:, the alerts are the leader's engine's, not d.eng.
	eng, _, ok := d.lead()
	if !ok {
		http.Error(w, "this replica follows "+d.following()+": ask the leader", http.StatusNotFound)
		return
	}
	x, err := eng.Explain(r.PathValue("fingerprint"))
	if errors.Is(err, engine.ErrNoAlert) {
		http.Error(w, "no such alert", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, d.redact.Error(err).Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, explainOf(x))
}

func explainOf(x engine.Explanation) explainView {
	v := explainView{Rule: x.Rule, Condition: x.Condition, Window: x.Window.String(), For: x.For.String(),
		Across: x.Across, Fingerprint: x.Alert.Fingerprint, State: x.Alert.State.String(), Labels: x.Alert.Labels,
		Evaluated: x.At, Source: x.Alert.Source, Segments: []explainSegment{}}
	for _, s := range x.Segments {
		es := explainSegment{Labels: s.Labels}
		for _, a := range s.Values {
			ev := explainValue{Aggregate: a.Aggregate}
			if !a.NoData {
				ev.Value = &a.Value
			}
			es.Values = append(es.Values, ev)
		}
		v.Segments = append(v.Segments, es)
	}
	return v
}

const explainUsage = `usage: vigil explain [--url URL] [credentials] ALERT [LABEL=VALUE...]
  explains alerts of a running Vigil: for each alert named ALERT (or with
  fingerprint ALERT) whose labels match every LABEL=VALUE, its rule's
  condition and the value of each aggregate for its segment at the last
  evaluation (every segment, for an across: every rule)
  credentials and TLS as for vigil silence: --token-file, --user/--password-file,
  --cert-file/--key-file, --ca-file, --insecure-skip-verify
exit status: 0 explained, 1 no such alert, 2 usage or error
`

func explainCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), explainUsage) }
	client := apiFlags(fs)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() < 1 {
		fmt.Fprint(stderr, explainUsage)
		return 2
	}
	name, matchers := fs.Arg(0), map[string]string{}
	for _, m := range fs.Args()[1:] {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "vigil explain: %q is not LABEL=VALUE\n", m)
			return 2
		}
		matchers[k] = v
	}
	api, err := client("/api/v1/alerts")
	var all alertsView
	if err == nil {
		err = api.call("GET", "", nil, &all)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil explain: %v\n", err)
		return 2
	}
	if all.Following != "" {
		fmt.Fprintf(stderr, "vigil explain: this replica follows %s: ask the leader\n", all.Following)
		return 2
	}
	var fps []string
	for _, a := range all.Alerts {
		if a.Fingerprint != name && a.Rule != name {
			continue
		}
		match := true
		for k, v := range matchers {
			match = match && a.Labels[k] == v
		}
		if match {
			fps = append(fps, a.Fingerprint)
		}
	}
	if len(fps) == 0 {
		fmt.Fprintf(stderr, "vigil explain: no alert %s%s (vigil alerts --state all lists them)\n", name, formatMatchers(matchers))
		return 1
	}
	for i, fp := range fps {
		api, err := client("/api/v1/alerts/" + url.PathEscape(fp) + "/explain")
		var x explainView
		if err == nil {
			err = api.call("GET", "", nil, &x)
		}
		if err != nil {
			fmt.Fprintf(stderr, "vigil explain: %s: %v\n", fp, err)
			return 2
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printExplanation(stdout, x)
	}
	return 0
}

func formatMatchers(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+strconv.Quote(v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

func printExplanation(w io.Writer, x explainView) {
	fmt.Fprintf(w, "%s %s %s\n", x.Rule, x.Labels, x.State)
	if x.Source != nil {
		fmt.Fprintf(w, "  rule: %s\n", x.Source)
	}
	fmt.Fprintf(w, "  condition: %s\n", x.Condition)
	fmt.Fprintf(w, "  window %s, for %s, across %s", x.Window, x.For, x.Across)
	if !x.Evaluated.IsZero() {
		fmt.Fprintf(w, ", last evaluated %s", x.Evaluated.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, s := range x.Segments {
		fmt.Fprintf(w, "  segment %s\n", s.Labels)
		for _, v := range s.Values {
			val := "no data"
			if v.Value != nil {
				val = strconv.FormatFloat(*v.Value, 'g', -1, 64)
			}
			fmt.Fprintf(w, "    %s = %s\n", v.Aggregate, val)
		}
	}
}
