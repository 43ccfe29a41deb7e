// Package console prints alerts as readable lines, for the demo and for
// working on rules locally.
package console

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/template"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
)

// Config is the `console:` block of a channel.
type Config struct {
	// Output is "stdout" (default) or "stderr".
	Output string `yaml:"output,omitempty" json:"output,omitempty"`
	// Template optionally replaces the whole message (Go text/template
	// over the group; see docs/notifiers.md).
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
}

// Options are what the caller, not the config file, decides.
type Options struct {
	// Writer overrides Output (tests, embedding).
	Writer io.Writer
}

// Notifier writes to one io.Writer; writes are serialised so lines of
// concurrent groups never interleave.
type Notifier struct {
	mu   sync.Mutex
	w    io.Writer
	tmpl *template.Template
}

// New checks cfg and builds the notifier.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{w: opts.Writer}
	if n.w == nil {
		switch cfg.Output {
		case "", "stdout":
			n.w = os.Stdout
		case "stderr":
			n.w = os.Stderr
		default:
			return nil, fmt.Errorf("output: %q is neither stdout nor stderr", cfg.Output)
		}
	}
	t, err := msg.Parse("template", cfg.Template)
	if err != nil {
		return nil, err
	}
	n.tmpl = t
	return n, nil
}

// Notify writes one block per group: a title line, then a line per alert.
// A template error still prints the fallback and reports the error, not
// worth retrying.
func (n *Notifier) Notify(_ context.Context, alerts ...model.Alert) (bool, error) {
	text, terr := n.Render(alerts...)
	if terr == msg.ErrNoAlerts {
		return false, terr
	}
	n.mu.Lock()
	_, err := n.w.Write(text)
	n.mu.Unlock()
	if err != nil {
		return true, fmt.Errorf("console: %w", err)
	}
	return false, terr
}

// Render is what Notify writes for alerts, for rule tests' golden
// files; a template error comes with the fallback it rendered.
func (n *Notifier) Render(alerts ...model.Alert) ([]byte, error) {
	if len(alerts) == 0 {
		return nil, msg.ErrNoAlerts
	}
	d := msg.New(alerts)
	text, terr := msg.Execute(n.tmpl, d, Format(d))
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return []byte(text), terr
}

// Format is the default rendering: a header about the whole group (its
// counts and segments, and the summary when every alert has the same),
// then a line per alert, with its own summary when they differ.
func Format(d msg.Data) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s severity=%s", d.Title, d.Severity)
	if d.Summary != "" {
		fmt.Fprintf(&b, " summary=%q", d.Summary)
	}
	b.WriteByte('\n')
	line := func(state string, a model.Alert) {
		fmt.Fprintf(&b, "  %-8s %s", state, msg.Line(a))
		if s := a.Annotations["summary"]; d.Summary == "" && s != "" {
			fmt.Fprintf(&b, " summary=%q", s)
		}
		b.WriteByte('\n')
	}
	for _, a := range d.Firing {
		line("FIRING", a)
	}
	for _, a := range d.Resolved {
		line("RESOLVED", a)
	}
	return b.String()
}
