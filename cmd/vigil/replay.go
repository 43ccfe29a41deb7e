package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/recording"
	"github.com/vigil-alerts/vigil/replay"
	"github.com/vigil-alerts/vigil/rules"
)

const replayUsage = `usage: vigil replay --rules PATH --data RECORDING
Replays a recording (a file or a directory, see docs/recordings.md) through
the rules at PATH and prints every alert state change with its time,
segment and value. Exit status 1 when the rules do not load or a rule
fails to evaluate.
`

const diffUsage = `usage: vigil diff --base REV [--head REV] --data RECORDING [--format text|markdown] [PATH]
Replays a recording through the rule files under PATH (default ".") as they
are at git revision REV and as they are at --head (default: the files on
disk), and prints, per rule, the alerts that appear, disappear, fire or
resolve earlier or later, or change labels or severity.
Exit status: 0 nothing changes, 1 something does, 2 an error.
`

func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayUsage) }
	rulesPath := fs.String("rules", "", "rule file or directory")
	data := fs.String("data", "", "recording file or directory")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *rulesPath == "" || *data == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, replayUsage)
		return 2
	}
	rs, err := rules.Load(*rulesPath)
	if err != nil {
		printRuleErrors(stderr, err)
		return 1
	}
	samples, ok := loadRecording(*data, stderr)
	if !ok {
		return 1
	}
	tl, err := replay.Run(rs, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil replay:", err)
		return 1
	}
	replay.WriteTimeline(stdout, tl)
	if len(tl.Errors) > 0 {
		return 1
	}
	return 0
}

func diffCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), diffUsage) }
	base := fs.String("base", "", "git revision of the rules before the change")
	head := fs.String("head", "", "git revision after the change (default: the files on disk)")
	data := fs.String("data", "", "recording file or directory")
	format := fs.String("format", "text", "text or markdown")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *base == "" || *data == "" || fs.NArg() > 1 || (*format != "text" && *format != "markdown") {
		fmt.Fprint(stderr, diffUsage)
		return 2
	}
	path := "."
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	}
	baseRules, baseName, err := replay.LoadRevision(path, *base)
	if err != nil {
		printRuleErrors(stderr, fmt.Errorf("base %s: %w", *base, err))
		return 2
	}
	var headRules *rules.RuleSet
	headName := "working tree"
	if *head != "" {
		headRules, headName, err = replay.LoadRevision(path, *head)
	} else {
		headRules, err = rules.Load(path)
	}
	if err != nil {
		printRuleErrors(stderr, fmt.Errorf("head %s: %w", headName, err))
		return 2
	}
	samples, ok := loadRecording(*data, stderr)
	if !ok {
		return 2
	}
	bt, err := replay.Run(baseRules, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil diff: base:", err)
		return 2
	}
	ht, err := replay.Run(headRules, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil diff: head:", err)
		return 2
	}
	for _, e := range append(bt.Errors, ht.Errors...) {
		fmt.Fprintln(stderr, "warning:", e)
	}
	changes := replay.Diff(bt, ht)
	if *format == "markdown" {
		replay.WriteMarkdown(stdout, changes, *base+" ("+baseName+")", headName, ht)
	} else {
		fmt.Fprintf(stdout, "%s (%s) -> %s\n", *base, baseName, headName)
		replay.WriteText(stdout, changes)
	}
	if len(changes) > 0 {
		return 1
	}
	return 0
}

func loadRecording(path string, stderr io.Writer) ([]model.Sample, bool) {
	samples, warnings, err := recording.Load(path)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, "recording:", err)
		return nil, false
	}
	return samples, true
}

func printRuleErrors(w io.Writer, err error) {
	fmt.Fprintln(w, err)
	var errs rules.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "%d error(s)\n", len(errs))
	}
}
