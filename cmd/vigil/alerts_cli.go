package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// `vigil alerts` lists a running Vigil's alerts in a terminal, from the
// same API the status page is built from.

const alertsUsage = `usage: vigil alerts [--url URL] [--state firing|pending|resolved|all] [credentials]
  lists the alerts of a running Vigil (default: firing and pending)
  credentials and TLS as for vigil silence: --token-file, --user/--password-file,
  --cert-file/--key-file, --ca-file, --insecure-skip-verify
`

func alertsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil alerts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), alertsUsage) }
	client := apiFlags(fs)
	state := fs.String("state", "", "only alerts in this state; all for every state")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	api, err := client("/api/v1/alerts")
	if err == nil {
		var v alertsView
		if err = api.call("GET", "", nil, &v); err == nil {
			printAlerts(stdout, v, *state)
			return 0
		}
	}
	fmt.Fprintln(stderr, "vigil alerts:", err)
	return 1
}

func printAlerts(w io.Writer, v alertsView, state string) {
	if v.Following != "" {
		fmt.Fprintf(w, "this replica follows %s: ask the leader\n", v.Following)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tRULE\tSEVERITY\tSEGMENT\tVALUE\tSINCE\tSUMMARY")
	for _, a := range v.Alerts {
		switch {
		case state == "all":
		case state == "" && (a.State == "firing" || a.State == "pending"):
		case state != "" && a.State == state:
		default:
			continue
		}
		st := a.State
		if len(a.SilencedBy) > 0 {
			st += " (silenced)"
		}
		if len(a.InhibitedBy) > 0 {
			st += " (inhibited)"
		}
		since := a.ActiveAt
		if !a.FiredAt.IsZero() {
			since = a.FiredAt
		}
		seg := a.Segment.String()
		if len(a.Segments) > 0 {
			seg = fmt.Sprintf("%d segments", len(a.Segments))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%s\t%s\n", st, a.Rule, a.Severity, seg, a.Value,
			since.UTC().Format(time.RFC3339), strings.ReplaceAll(a.Annotations["summary"], "\n", " "))
	}
	tw.Flush()
}
