package ruletest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/vigil-alerts/vigil/internal/yamlstrict"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/silences"
)

// Options change how tests run.
type Options struct {
	// Update rewrites every golden file whose expected notification was
	// sent with a different body (or does not exist yet), instead of
	// failing, as `vigil test --update` does.
	Update bool
}

// inlineNotifiers is a test file's own `notifiers:` section, with where
// it is written, for errors.
type inlineNotifiers struct {
	Config notifiers.Config
	Line   int
}

func (n *inlineNotifiers) UnmarshalYAML(node ast.Node) error {
	if tk := node.GetToken(); tk != nil && tk.Position != nil {
		n.Line = tk.Position.Line
	}
	return decodeNotifiers(node, &n.Config)
}

// decodeNotifiers decodes a notifiers section, every mistake at once with
// its line and column, as the config loader reports them (a strict
// decode names one unknown field, picked at random).
func decodeNotifiers(node ast.Node, cfg *notifiers.Config) error {
	var msgs []string
	for _, p := range yamlstrict.Check(node, reflect.TypeFor[notifiers.Config](), "notifiers") {
		if tk := p.Token; tk != nil && tk.Position != nil {
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", tk.Position.Line, tk.Position.Column, p.Msg))
		} else {
			msgs = append(msgs, p.Msg)
		}
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return yaml.NodeToValue(node, cfg, yaml.Strict())
}

// TestSilence is a silence given in a test, as `amtool silence add`
// takes one: matchers in Alertmanager's notation, a start and an end
// relative to the test's time 0.
type TestSilence struct {
	Matchers []rawText `yaml:"matchers"`
	Start    duration  `yaml:"start"`
	// End is when it ends; unset, it outlasts the test.
	End       *duration `yaml:"end"`
	Comment   string    `yaml:"comment"`
	CreatedBy string    `yaml:"created_by"`
}

// DeliveryExpectation is what the notifiers do at one evaluation time.
// Each list is compared only when given; an empty one expects none.
type DeliveryExpectation struct {
	At rawText `yaml:"at"`
	// Notifications are every message sent at At, on every channel.
	Notifications *[]ExpectedNotification `yaml:"notifications"`
	// Inhibited and Silenced are every firing alert held back at At by
	// inhibition and by silences.
	Inhibited *[]HeldAlert `yaml:"inhibited"`
	Silenced  *[]HeldAlert `yaml:"silenced"`
}

// ExpectedNotification is one message: its channel, its group's labels
// (alertname and the channel's group_by), the alerts in it, and the
// golden file holding its body.
type ExpectedNotification struct {
	Channel rawText           `yaml:"channel"`
	Group   map[string]string `yaml:"group"`
	// Alerts, when given, are exactly the message's alerts.
	Alerts *[]DeliveredAlert `yaml:"alerts"`
	Golden rawText           `yaml:"golden"`
}

// DeliveredAlert matches an alert of a message by status (firing, the
// default, or resolved) and labels (alertname is the rule).
type DeliveredAlert struct {
	Status string            `yaml:"status"`
	Labels map[string]string `yaml:"labels"`
}

// HeldAlert matches a held-back firing alert by its labels.
type HeldAlert struct {
	Labels map[string]string `yaml:"labels"`
}

// delivery is a file's notifiers, ready to build a dispatcher per test.
type delivery struct {
	cfg      notifiers.Config
	channels map[string]bool
	base     string // the test file's directory: golden paths are relative to it
	update   bool
	external string // the external URL messages link to
	out      func(format string, args ...any)
	// written is what each golden file holds after --update checked or
	// wrote it in this run: one file given to two messages must hold both.
	written map[string][]byte
}

// loadDelivery reads the notifiers a test file names or holds; nil when
// it has neither.
func loadDelivery(path string, f *File) (*delivery, error) {
	if f.Config.Text != "" && f.Notifiers != nil {
		return nil, &lineError{f.Config.Line, errors.New("config: give either config or notifiers, not both")}
	}
	d := &delivery{base: filepath.Dir(path), channels: map[string]bool{}, written: map[string][]byte{},
		external: cmp.Or(f.ExternalURL, DefaultExternalURL)}
	switch {
	case f.Notifiers != nil:
		d.cfg = f.Notifiers.Config
	case f.Config.Text != "":
		p := f.Config.Text
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.base, p)
		}
		cfg, err := readNotifiers(p)
		if err != nil {
			return nil, &lineError{f.Config.Line, fmt.Errorf("config: %w", err)}
		}
		d.cfg = cfg
	default:
		return nil, nil
	}
	// Build once to check it, every error at once, as `vigil check` would.
	disp, err := d.build(nil, func(notifiers.Message) {})
	if err != nil {
		line := f.Config.Line
		if f.Notifiers != nil {
			line = f.Notifiers.Line
		}
		return nil, &lineError{line, fmt.Errorf("notifiers: %w", err)}
	}
	for _, n := range disp.ChannelNames() {
		d.channels[n] = true
	}
	disp.Stop(context.Background())
	return d, nil
}

// readNotifiers decodes the notifiers section of a Vigil config, and
// nothing else of it: collectors, HA and the HTTP token are not the test's
// business, and their secrets need not be set. Errors name the config
// file, line and column.
func readNotifiers(path string) (notifiers.Config, error) {
	var cfg notifiers.Config
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return cfg, fmt.Errorf("%s: %s", path, yaml.FormatError(err, false, false))
	}
	p, err := yaml.PathString("$.notifiers")
	if err != nil {
		return cfg, err
	}
	node, err := p.FilterFile(file)
	if err != nil || node == nil {
		return cfg, fmt.Errorf("%s: no notifiers section", path)
	}
	if err := decodeNotifiers(node, &cfg); err != nil {
		return cfg, fmt.Errorf("%s:%s", path, err)
	}
	return cfg, nil
}

func (d *delivery) build(st *silences.Store, capture func(notifiers.Message)) (*notifiers.Dispatcher, error) {
	opts := []notifiers.Option{
		notifiers.WithLogger(slog.New(slog.DiscardHandler)),
		notifiers.WithCapture(capture),
		notifiers.WithExternalURL(d.external),
		// Secrets are never read: a test runs where they are not set.
		notifiers.WithLookupEnv(func(string) (string, bool) { return "", false }),
	}
	if st != nil {
		opts = append(opts, notifiers.WithSilences(st))
	}
	return notifiers.Build(d.cfg, opts...)
}

// checkTest reports mistakes in a test's delivery sections before it runs:
// each at its line.
func (d *delivery) checkTest(t *Test, every time.Duration) error {
	if d == nil && (len(t.Silences) > 0 || len(t.ExpectNotifications) > 0) {
		return errors.New("silences and expect_notifications need the notifiers: set config: (a Vigil config) or notifiers: at the top of the file")
	}
	for _, ex := range t.ExpectNotifications {
		at, err := parseAt(ex.At)
		if err != nil {
			return err
		}
		if at%every != 0 {
			return &lineError{ex.At.Line, fmt.Errorf("expect_notifications at %s: not a multiple of evaluation_interval %s", at, every)}
		}
		if ex.Notifications != nil {
			for _, n := range *ex.Notifications {
				if !d.channels[n.Channel.Text] {
					return &lineError{n.Channel.Line, fmt.Errorf("channel %q: no such channel in the notifiers (have %s)",
						n.Channel.Text, strings.Join(slices.Sorted(maps.Keys(d.channels)), ", "))}
				}
				// A golden file is read into the output (a diff) and written
				// by --update: a test file run in CI from a pull request
				// must not reach the runner's other files.
				if g := n.Golden.Text; g != "" && !filepath.IsLocal(g) {
					return &lineError{n.Golden.Line, fmt.Errorf("golden %q: want a path inside the test file's directory (relative, no ..)", g)}
				}
				if n.Alerts != nil {
					for _, a := range *n.Alerts {
						if a.Status != "" && a.Status != "firing" && a.Status != "resolved" {
							return &lineError{n.Channel.Line, fmt.Errorf("channel %s: alert status %q: want firing or resolved", n.Channel.Text, a.Status)}
						}
					}
				}
			}
		}
	}
	return nil
}

func parseAt(r rawText) (time.Duration, error) {
	var d duration
	if err := d.UnmarshalText([]byte(r.Text)); err != nil {
		return 0, &lineError{r.Line, fmt.Errorf("at: %q is not a duration", r.Text)}
	}
	return time.Duration(d), nil
}

// silenceStore holds a test's silences, with IDs in the order given.
func silenceStore(t *Test) (*silences.Store, error) {
	st := silences.NewStore()
	for i, ts := range t.Silences {
		line := 0
		if len(ts.Matchers) > 0 {
			line = ts.Matchers[0].Line
		}
		s := silences.Silence{ID: fmt.Sprintf("test-silence-%d", i+1), StartsAt: epoch.Add(time.Duration(ts.Start)),
			EndsAt: epoch.Add(100 * 365 * 24 * time.Hour), Comment: ts.Comment, CreatedBy: ts.CreatedBy, UpdatedAt: epoch}
		if ts.End != nil {
			s.EndsAt = epoch.Add(time.Duration(*ts.End))
		}
		if s.CreatedBy == "" {
			s.CreatedBy = "vigil test"
		}
		if s.Comment == "" {
			s.Comment = "silence in a rule test"
		}
		for _, m := range ts.Matchers {
			pm, err := silences.ParseMatcher(m.Text)
			if err != nil {
				return nil, &lineError{m.Line, fmt.Errorf("silences[%d]: %w", i, err)}
			}
			s.Matchers = append(s.Matchers, pm)
		}
		if err := s.Validate(); err != nil {
			return nil, &lineError{line, fmt.Errorf("silences[%d]: %w", i, err)}
		}
		if err := st.Put(s); err != nil {
			return nil, &lineError{line, fmt.Errorf("silences[%d]: %w", i, err)}
		}
	}
	return st, nil
}

// deliveryRun is one test's dispatcher and what it captured.
type deliveryRun struct {
	d    *delivery
	disp *notifiers.Dispatcher
	mu   sync.Mutex
	got  []notifiers.Message
}

func (d *delivery) start(t *Test) (*deliveryRun, error) {
	st, err := silenceStore(t)
	if err != nil {
		return nil, err
	}
	r := &deliveryRun{d: d}
	r.disp, err = d.build(st, func(m notifiers.Message) {
		r.mu.Lock()
		r.got = append(r.got, m)
		r.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *deliveryRun) stop() { r.disp.Stop(context.Background()) }

// step hands the engine's alerts at now to the dispatcher, as the daemon
// does after an evaluation, and returns the messages it sent, sorted by
// channel and group.
func (r *deliveryRun) step(now time.Time, alerts []model.Alert) []notifiers.Message {
	r.disp.Process(now, alerts)
	_ = r.disp.Settle(context.Background()) // capturing never fails nor blocks
	r.mu.Lock()
	got := r.got
	r.got = nil
	r.mu.Unlock()
	sort.Slice(got, func(i, j int) bool {
		if got[i].Channel != got[j].Channel {
			return got[i].Channel < got[j].Channel
		}
		return got[i].Group.Key < got[j].Group.Key
	})
	return got
}

// check compares one time's expectations; it returns readable problems.
func (r *deliveryRun) check(ex DeliveryExpectation, at time.Duration, sent []notifiers.Message) []string {
	var problems []string
	if ex.Notifications != nil {
		problems = append(problems, r.checkSent(*ex.Notifications, at, sent)...)
	}
	if ex.Inhibited != nil {
		var held []model.Alert
		for _, ia := range r.disp.Inhibited() {
			held = append(held, ia.Alert)
		}
		if p := compareHeld("inhibited", *ex.Inhibited, at, held); p != "" {
			problems = append(problems, p)
		}
	}
	if ex.Silenced != nil {
		var held []model.Alert
		for _, sa := range r.disp.Silenced() {
			held = append(held, sa.Alert)
		}
		if p := compareHeld("silenced", *ex.Silenced, at, held); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

func (r *deliveryRun) checkSent(want []ExpectedNotification, at time.Duration, sent []notifiers.Message) []string {
	var problems []string
	used := make([]bool, len(sent))
	match := make([]int, len(want))
	missing := false
	for i, w := range want {
		match[i] = -1
		for j, m := range sent {
			if !used[j] && notificationMatches(w, m) {
				used[j], match[i] = true, j
				break
			}
		}
		missing = missing || match[i] < 0
	}
	extra := slices.Contains(used, false)
	if missing || extra {
		var b strings.Builder
		fmt.Fprintf(&b, "at %s, notifications:\n  expected %d:\n", at, len(want))
		for i, w := range want {
			mark := "  "
			if match[i] < 0 {
				mark = "- "
			}
			fmt.Fprintf(&b, "  %s%s\n", mark, describeNotification(w))
		}
		fmt.Fprintf(&b, "  sent %d:\n", len(sent))
		for j, m := range sent {
			mark := "  "
			if !used[j] {
				mark = "+ "
			}
			fmt.Fprintf(&b, "  %s%s\n", mark, describeMessage(m))
		}
		problems = append(problems, strings.TrimRight(b.String(), "\n"))
	}
	for i, w := range want {
		if match[i] < 0 {
			continue
		}
		m := sent[match[i]]
		if w.Golden.Text != "" {
			if p := r.golden(w.Golden.Text, at, m); p != "" {
				problems = append(problems, p)
			}
		}
	}
	return problems
}

// golden compares a message's body with its golden file, or rewrites the
// file with --update.
func (r *deliveryRun) golden(rel string, at time.Duration, m notifiers.Message) string {
	path := filepath.Join(r.d.base, rel) // checkTest made sure rel is local
	where := fmt.Sprintf("at %s, channel %s, group %s", at, m.Channel, m.Group.Labels)
	if w, ok := r.d.written[path]; ok && !bytes.Equal(w, m.Body) {
		return fmt.Sprintf("%s: golden file %s holds another message's body in this run: give each message its own file", where, rel)
	}
	old, err := r.readGolden(rel, len(m.Body))
	if err == nil && bytes.Equal(old, m.Body) {
		if r.d.update {
			r.d.written[path] = m.Body
		}
		return ""
	}
	if r.d.update {
		err := r.writeGolden(rel, m.Body)
		if err != nil {
			return fmt.Sprintf("%s: cannot update golden file %s: %v", where, rel, err)
		}
		r.d.written[path] = m.Body
		r.d.out("updated %s\n", path)
		return ""
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("%s: golden file %s does not exist (vigil test --update writes it)", where, rel)
	}
	if err != nil {
		return fmt.Sprintf("%s: golden file %s: %v", where, rel, err)
	}
	return fmt.Sprintf("%s: body differs from golden file %s (vigil test --update rewrites it):\n%s",
		where, rel, lineDiff(string(old), string(m.Body), 20))
}

// readGolden reads the golden file rel inside the test's directory (a
// symlink out of it is refused, as .. is), at most what can equal a body
// of n bytes and a little more for the diff: a huge file is not read
// whole.
func (r *deliveryRun) readGolden(rel string, n int) ([]byte, error) {
	root, err := os.OpenRoot(r.d.base)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(n)+64<<10))
}

// writeGolden writes the golden file rel inside the test's directory.
func (r *deliveryRun) writeGolden(rel string, body []byte) error {
	root, err := os.OpenRoot(r.d.base)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return err
	}
	return root.WriteFile(rel, body, 0o644)
}

func notificationMatches(w ExpectedNotification, m notifiers.Message) bool {
	if w.Channel.Text != m.Channel {
		return false
	}
	if w.Group != nil && !maps.Equal(w.Group, map[string]string(m.Group.Labels)) {
		return false
	}
	if w.Alerts == nil {
		return true
	}
	want := *w.Alerts
	if len(want) != len(m.Alerts) {
		return false
	}
	used := make([]bool, len(m.Alerts))
	for _, wa := range want {
		found := false
		for j, a := range m.Alerts {
			if !used[j] && deliveredMatches(wa, a) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func deliveredMatches(w DeliveredAlert, a model.Alert) bool {
	status := w.Status
	if status == "" {
		status = "firing"
	}
	return a.State.String() == status && labelsInclude(a, w.Labels)
}

// labelsInclude reports whether a has every label of want; alertname is
// its rule.
func labelsInclude(a model.Alert, want map[string]string) bool {
	for k, v := range want {
		got, ok := a.Labels[k]
		if k == "alertname" && !ok {
			got, ok = a.Rule, true
		}
		if !ok || got != v {
			return false
		}
	}
	return true
}

func compareHeld(what string, want []HeldAlert, at time.Duration, got []model.Alert) string {
	used := make([]bool, len(got))
	missing := make([]bool, len(want))
	bad := false
	for i, w := range want {
		missing[i] = true
		for j, a := range got {
			if !used[j] && labelsInclude(a, w.Labels) {
				used[j], missing[i] = true, false
				break
			}
		}
		bad = bad || missing[i]
	}
	if !bad && !slices.Contains(used, false) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "at %s, %s:\n  expected %d alert(s):\n", at, what, len(want))
	for i, w := range want {
		mark := "  "
		if missing[i] {
			mark = "- "
		}
		fmt.Fprintf(&b, "  %s%s\n", mark, model.Labels(w.Labels))
	}
	fmt.Fprintf(&b, "  got %d alert(s):\n", len(got))
	for j, a := range got {
		mark := "  "
		if !used[j] {
			mark = "+ "
		}
		fmt.Fprintf(&b, "  %s%s\n", mark, a.Labels)
	}
	return strings.TrimRight(b.String(), "\n")
}

func describeNotification(w ExpectedNotification) string {
	s := w.Channel.Text
	if w.Group != nil {
		s += " group " + model.Labels(w.Group).String()
	}
	if w.Alerts != nil {
		var as []string
		for _, a := range *w.Alerts {
			st := a.Status
			if st == "" {
				st = "firing"
			}
			as = append(as, st+" "+model.Labels(a.Labels).String())
		}
		s += ": " + strings.Join(as, ", ")
		if len(as) == 0 {
			s += "(no alerts)"
		}
	}
	return s
}

func describeMessage(m notifiers.Message) string {
	var as []string
	for _, a := range m.Alerts {
		as = append(as, a.State.String()+" "+a.Labels.String())
	}
	return m.Channel + " group " + m.Group.Labels.String() + ": " + strings.Join(as, ", ")
}

// lineDiff is a short line diff of a and b: the lines only in a ("-")
// and only in b ("+"), in order, with a line of context, at most limit
// lines of it.
func lineDiff(a, b string, limit int) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// Lines alike at both ends are context; the rest is diffed.
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	ctx := func(l []string) []diffLine {
		var out []diffLine
		for _, t := range l {
			out = append(out, diffLine{' ', t})
		}
		return out
	}
	ops := ctx(x[:pre])
	ops = append(ops, diffMiddle(x[pre:len(x)-suf], y[pre:len(y)-suf])...)
	ops = append(ops, ctx(x[len(x)-suf:])...)
	var out []string
	shown := 0
	for k, op := range ops {
		near := op.mark != ' ' ||
			(k > 0 && ops[k-1].mark != ' ') || (k+1 < len(ops) && ops[k+1].mark != ' ')
		if !near {
			continue
		}
		if shown == limit {
			out = append(out, "  ...")
			break
		}
		out = append(out, fmt.Sprintf("  %c %s", op.mark, op.text))
		shown++
	}
	return "  --- golden\n  +++ sent\n" + strings.Join(out, "\n")
}

type diffLine struct {
	mark byte
	text string
}

// diffMiddle diffs the lines between the common ends by longest common
// subsequence, or, when that table would be large (a rewritten body of
// thousands of lines), shows them all removed then added.
func diffMiddle(x, y []string) []diffLine {
	var ops []diffLine
	if (len(x)+1)*(len(y)+1) > 1<<20 {
		for _, t := range x {
			ops = append(ops, diffLine{'-', t})
		}
		for _, t := range y {
			ops = append(ops, diffLine{'+', t})
		}
		return ops
	}
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, diffLine{' ', x[i]})
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffLine{'-', x[i]})
			i++
		default:
			ops = append(ops, diffLine{'+', y[j]})
			j++
		}
	}
	return ops
}
