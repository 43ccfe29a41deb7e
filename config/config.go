// Package config reads Vigil's config file: which collectors to run, where
// alerts go, where the rules are, and how the daemon serves and keeps its
// state. Like the rule files it is decoded strictly (an unknown field is an
// error) and every mistake is reported at once with file:line:col.
//
// Load checks collectors and channels by building them once and releasing
// them, so a config it accepts is one the daemon can start with.
package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/prometheus/alertmanager/timeinterval"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/internal/yamlstrict"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/rules"
)

// Defaults, applied in withDefaults and nowhere else.
const (
	DefaultHTTPAddress   = ":9099"
	DefaultCheckInterval = time.Minute
	DefaultDebounce      = 100 * time.Millisecond
	// Silence limits (docs/notifiers.md, "Limits").
	DefaultMaxSilences         = 1000
	DefaultMaxSilenceSizeBytes = 8 << 10
	DefaultMaxSilenceDuration  = 14 * 24 * time.Hour
	// DefaultRetentionSlack is how long past the rules' longest reach a
	// series that stopped reporting is remembered (store.retention_slack).
	DefaultRetentionSlack = engine.DefaultSeriesSlack
)

// Config is the whole file.
type Config struct {
	// RuleDirs are rule files or directories, read recursively. Relative
	// paths are taken from the config file's directory.
	RuleDirs   []string            `yaml:"rule_dirs"`
	HTTP       HTTP                `yaml:"http"`
	State      State               `yaml:"state"`
	Reload     Reload              `yaml:"reload"`
	Silences   Silences            `yaml:"silences"`
	Store      Store               `yaml:"store"`
	Collectors []collectors.Config `yaml:"collectors"`
	Notifiers  notifiers.Config    `yaml:"notifiers"`
	// HA, when set, makes this process one replica of several sharing an
	// etcd election and alert state (docs/ha.md). Without it Vigil runs
	// alone.
	HA *ha.Config `yaml:"ha"`
	// Record, when set, keeps what the collectors gather in a directory of
	// recording files for `vigil replay`, `vigil diff` and `vigil capture`
	// (docs/recordings.md).
	Record *Record `yaml:"record"`

	// File is the path the config was read from.
	File string `yaml:"-"`
	// token is the bearer token read from the env or file named in HTTP.
	token string
}

// HTTP is where the API, /metrics and the status page are served.
type HTTP struct {
	// Address is host:port (default ":9099").
	Address string `yaml:"address"`
	// BearerTokenEnv or BearerTokenFile, when set, name the token every
	// request except /healthz, /readyz and /metrics must present; a caller
	// with it may also write (silences, reload), which no one may without
	// some authentication (cmd/vigil/security.go).
	BearerTokenEnv  string `yaml:"bearer_token_env"`
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// Record bounds the recording of collected samples.
type Record struct {
	// Dir holds the recording files; relative to the config file.
	Dir string `yaml:"dir"`
	// MaxSizeBytes bounds the files together (default 256 MiB).
	MaxSizeBytes int64 `yaml:"max_size_bytes"`
	// MaxAge deletes older files (default 7 days).
	MaxAge Duration `yaml:"max_age"`
	// FileSpan starts a new file this often (default 1h).
	FileSpan Duration `yaml:"file_span"`
}

// State is where alert states are kept across restarts.
type State struct {
	// Path of the state file; empty keeps state in memory only.
	Path string `yaml:"path"`
}

// Silences bounds what POST /api/v1/silences accepts, as Alertmanager's
// --silences.max-silences and --silences.max-silence-size-bytes do, plus a
// longest duration: nobody fills memory and disk with silences or mutes a
// page for a year. They apply at reload, to new silences and changes.
type Silences struct {
	// MaxSilences bounds the active and pending silences (default 1000).
	MaxSilences int `yaml:"max_silences"`
	// MaxSilenceSizeBytes bounds one silence as stored, in JSON (default
	// 8 KiB).
	MaxSilenceSizeBytes int `yaml:"max_silence_size_bytes"`
	// MaxDuration bounds how long a silence lasts from its start, or from
	// now when it is extended (default 336h, 14 days).
	MaxDuration Duration `yaml:"max_duration"`
}

// Store bounds the window store, the samples and series the rules read.
// It applies at reload.
type Store struct {
	// RetentionSlack is how long a series that stopped reporting is
	// remembered beyond the longest window (plus for and keep_firing_for)
	// of the loaded rules (default 5m; "0s" keeps the default).
	RetentionSlack Duration `yaml:"retention_slack"`
	// MaxSeries, when above 0, bounds the series held: a sample of a new
	// series beyond it is refused, series already held keep updating.
	// 0 or absent: no bound.
	MaxSeries int `yaml:"max_series"`
}

// Reload shapes rule and config reloads.
type Reload struct {
	// Notify names channels told when a reload fails (and when it
	// recovers), as the alert VigilReloadFailed.
	Notify []string `yaml:"notify"`
	// CheckInterval is the fallback re-check of rule files, for file
	// systems whose events are lost (default 1m; "0s" keeps the default).
	CheckInterval Duration `yaml:"check_interval"`
	// Debounce is how long a burst of file events must be quiet before a
	// reload (default 100ms).
	Debounce Duration `yaml:"debounce"`
}

// Duration is a time.Duration written as "30s" or "1m30s".
type Duration = collectors.Duration

// BearerToken returns the token requests must present, or "" for none.
func (c *Config) BearerToken() string { return c.token }

// Error is one mistake in the config file.
type Error struct {
	File         string
	Line, Column int
	Msg          string
	path         string // the YAML path the validator gave
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Errors lists every mistake of one load.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Options are what the caller, not the file, decides.
type Options struct {
	// LookupEnv replaces os.LookupEnv (tests).
	LookupEnv func(string) (string, bool)
	// Logger is handed to the collectors built for validation.
	Logger *slog.Logger
}

// Load reads, decodes and validates the config at path.
func Load(path string, opts Options) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b, opts)
}

// Parse is Load on contents already read.
func Parse(path string, data []byte, opts Options) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Config{File: path}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(path, nil, err)}
	}
	// Check every field first, each mistake at its place, and prune the
	// bad ones, so one bad value neither stops the decoding nor hides the
	// mistakes after it.
	var decodeErrs Errors
	var pruned []string
	if len(file.Docs) > 0 && file.Docs[0].Body != nil {
		pruneable, err := parser.ParseBytes(data, 0)
		if err != nil {
			return nil, Errors{yamlError(path, nil, err)}
		}
		body := pruneable.Docs[0].Body
		for _, p := range yamlstrict.Check(body, reflect.TypeFor[Config](), "") {
			e := &Error{File: path, Msg: p.Msg}
			if p.Token != nil && p.Token.Position != nil {
				e.Line, e.Column = p.Token.Position.Line, p.Token.Position.Column
			}
			decodeErrs = append(decodeErrs, e)
			pruned = append(pruned, entryOf(p.Pruned))
		}
		err = yaml.NodeToValue(body, c, yaml.Strict())
		if err != nil && len(decodeErrs) == 0 {
			e := yamlError(path, file, err)
			// go-yaml picks one of several unknown fields at random: name the
			// first as written, so a file always gets the same error.
			if yamlstrict.IsUnknownField(e.Msg) {
				if tk := yamlstrict.FirstUnknown(file.Docs[0], reflect.TypeFor[Config]()); tk != nil {
					e.Msg = fmt.Sprintf("unknown field %q", tk.Value)
					e.Line, e.Column = tk.Position.Line, tk.Position.Column
				}
			}
			if e.Line == 0 {
				e.Line, e.Column, e.Msg = timeIntervalError(file, e.Msg)
			}
			return nil, Errors{e}
		}
		if err != nil || slices.Contains(pruned, "") {
			// Pruning left something undecodable: the fields' own errors
			// are all there is to say.
			sortErrors(decodeErrs)
			return nil, decodeErrs
		}
	}
	v := &validator{file: path, ast: file, lookupEnv: opts.LookupEnv, logger: opts.Logger}
	c.withDefaults()
	v.check(c)
	errs := decodeErrs
	for _, e := range v.errs {
		// A field removed for a decoding error is missing, not wrong:
		// what the checks say about its entry would mislead.
		if !slices.ContainsFunc(pruned, func(p string) bool { return under(e.path, p) }) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return c, nil
}

func sortErrors(errs Errors) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// entryOf is the list entry a field belongs to (collectors[0] for
// collectors[0].interval), or the field itself when it is in none.
func entryOf(field string) string {
	if i := strings.LastIndex(field, "]"); i >= 0 {
		return field[:i+1]
	}
	return field
}

// under reports whether the validator's YAML path ($.collectors[0].name)
// is field (collectors[0]) or inside it.
func under(path, field string) bool {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(path, "$."), field)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

// withDefaults is the one place defaults are applied; rule directories are
// made relative to the config file.
func (c *Config) withDefaults() {
	if c.HTTP.Address == "" {
		c.HTTP.Address = DefaultHTTPAddress
	}
	if c.Reload.CheckInterval == 0 {
		c.Reload.CheckInterval = Duration(DefaultCheckInterval)
	}
	if c.Reload.Debounce == 0 {
		c.Reload.Debounce = Duration(DefaultDebounce)
	}
	if c.Silences.MaxSilences == 0 {
		c.Silences.MaxSilences = DefaultMaxSilences
	}
	if c.Silences.MaxSilenceSizeBytes == 0 {
		c.Silences.MaxSilenceSizeBytes = DefaultMaxSilenceSizeBytes
	}
	if c.Silences.MaxDuration == 0 {
		c.Silences.MaxDuration = Duration(DefaultMaxSilenceDuration)
	}
	if c.Store.RetentionSlack == 0 {
		c.Store.RetentionSlack = Duration(DefaultRetentionSlack)
	}
	base := filepath.Dir(c.File)
	for i, d := range c.RuleDirs {
		if d != "" && !filepath.IsAbs(d) {
			c.RuleDirs[i] = filepath.Join(base, d)
		}
	}
	if c.State.Path != "" && !filepath.IsAbs(c.State.Path) {
		c.State.Path = filepath.Join(base, c.State.Path)
	}
	if c.Record != nil && c.Record.Dir != "" && !filepath.IsAbs(c.Record.Dir) {
		c.Record.Dir = filepath.Join(base, c.Record.Dir)
	}
}

// LoadRules loads every rule under the config's rule directories and checks
// that each `notify:` names a configured channel.
func (c *Config) LoadRules() (*rules.RuleSet, error) {
	rs, err := rules.Load(c.RuleDirs...)
	if err != nil {
		return nil, err
	}
	if err := rs.CheckChannels(c.ChannelNames()); err != nil {
		return nil, err
	}
	return rs, nil
}

// SecretFiles lists, sorted and once each, the files this config reads
// secrets from that a reload applies again: every channel's *_file
// secrets and http.bearer_token_file. A reload re-reads them to notice a
// rotation (a Kubernetes Secret volume updates files in place). The HA
// password and TLS files are left out: the etcd client keeps them until
// a restart.
func (c *Config) SecretFiles() []string {
	fs := c.Notifiers.SecretFiles()
	if c.HTTP.BearerTokenFile != "" {
		fs = append(fs, c.HTTP.BearerTokenFile)
	}
	slices.Sort(fs)
	return slices.Compact(fs)
}

// ChannelNames lists the configured channel names, sorted.
func (c *Config) ChannelNames() []string {
	var names []string
	for _, ch := range c.Notifiers.Channels {
		names = append(names, ch.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

type validator struct {
	file      string
	ast       *ast.File
	lookupEnv func(string) (string, bool)
	logger    *slog.Logger
	errs      Errors
}

// at records msg at the node the YAML path names (or the closest parent
// that exists, so a missing field points at its section).
func (v *validator) at(path, format string, args ...any) {
	e := &Error{File: v.file, Msg: fmt.Sprintf(format, args...), path: path}
	for p := path; p != ""; p = parentPath(p) {
		if line, col, ok := v.pos(p); ok {
			e.Line, e.Column = line, col
			break
		}
	}
	v.errs = append(v.errs, e)
}

func (v *validator) pos(path string) (line, col int, ok bool) {
	p, err := yaml.PathString(path)
	if err != nil {
		return 0, 0, false
	}
	n, err := p.FilterFile(v.ast)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0, 0, false
	}
	return nodePos(n)
}

// nodePos is where a node starts as a person reads it: a mapping at its
// first key, a key: value pair at its key.
func nodePos(n ast.Node) (line, col int, ok bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		if len(m.Values) > 0 {
			n = m.Values[0].Key
		}
	case *ast.MappingValueNode:
		n = m.Key
	}
	if n == nil || n.GetToken() == nil {
		return 0, 0, false
	}
	tk := n.GetToken()
	return tk.Position.Line, tk.Position.Column, true
}

// parentPath strips the last .key or [i] of a YAML path; "$" has none.
func parentPath(p string) string {
	if p == "$" {
		return ""
	}
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return "$"
	}
	return p[:i]
}

func (v *validator) check(c *Config) {
	if len(c.RuleDirs) == 0 {
		v.at("$.rule_dirs", "rule_dirs: at least one rule file or directory is required")
	}
	for i, d := range c.RuleDirs {
		if _, err := os.Stat(d); err != nil {
			v.at(fmt.Sprintf("$.rule_dirs[%d]", i), "rule_dirs: %v", err)
		}
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Address); err != nil {
		v.at("$.http.address", "http.address: %v", err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.at("$.http.address", "http.address: port %q is not a number from 0 to 65535", port)
	}
	v.token(c)
	if c.State.Path != "" {
		if st, err := os.Stat(filepath.Dir(c.State.Path)); err != nil || !st.IsDir() {
			v.at("$.state.path", "state.path: directory %s does not exist", filepath.Dir(c.State.Path))
		}
	}
	if r := c.Record; r != nil {
		if r.Dir == "" {
			v.at("$.record.dir", "record.dir: name the directory for the recording files")
		}
		if r.MaxSizeBytes < 0 {
			v.at("$.record.max_size_bytes", "record.max_size_bytes: %d is negative", r.MaxSizeBytes)
		}
		if r.MaxAge < 0 || r.FileSpan < 0 {
			v.at("$.record", "record: max_age and file_span must be positive durations")
		}
	}
	if n := c.Silences.MaxSilences; n < 0 {
		v.at("$.silences.max_silences", "silences.max_silences: %d is negative (0 or absent keeps the default, %d)", n, DefaultMaxSilences)
	}
	if n := c.Silences.MaxSilenceSizeBytes; n < 0 {
		v.at("$.silences.max_silence_size_bytes", "silences.max_silence_size_bytes: %d is negative (0 or absent keeps the default, %d)", n, DefaultMaxSilenceSizeBytes)
	}
	if n := c.Store.MaxSeries; n < 0 {
		v.at("$.store.max_series", "store.max_series: %d is negative (0 or absent: no bound)", n)
	}
	channels := c.ChannelNames()
	for i, n := range c.Reload.Notify {
		if !slices.Contains(channels, n) {
			v.at(fmt.Sprintf("$.reload.notify[%d]", i), "reload.notify: no channel named %q (configured: %s)", n, strings.Join(channels, ", "))
		}
	}
	v.collectors(c.Collectors)
	v.notifiers(c.Notifiers)
	v.ha(c.HA)
}

// haWhere maps the field an ha.Config.Validate error starts with to its
// YAML path under $.ha.
var haWhere = regexp.MustCompile(`^(endpoints\[\d+\]|endpoints|session_ttl|password_env and password_file|username|tls)\b`)

// ha checks the `ha:` section; each error points at its field.
func (v *validator) ha(c *ha.Config) {
	if c == nil {
		return
	}
	for _, e := range flatten(c.Validate()) {
		path := "$.ha"
		if m := haWhere.FindString(e.Error()); m != "" {
			switch {
			case strings.HasPrefix(m, "password_env and"):
				path = "$.ha.password_file"
			default:
				path = "$.ha." + m
			}
		}
		v.at(path, "ha.%v", e)
	}
	// Open the PEM files now, as collectors' are, so that `vigil check`
	// finds what `vigil run` would refuse.
	if t := c.TLS; t != nil && (t.CertFile == "") == (t.KeyFile == "") {
		if _, err := t.Load(); err != nil {
			path := "$.ha.tls.cert_file"
			if t.CAFile != "" && strings.Contains(err.Error(), t.CAFile) {
				path = "$.ha.tls.ca_file"
			}
			v.at(path, "ha.%v", err)
		}
	}
	switch {
	case c.PasswordEnv != "" && c.PasswordFile == "":
		if pw, ok := v.lookupEnv(c.PasswordEnv); !ok || strings.TrimSpace(pw) == "" {
			v.at("$.ha.password_env", "ha.password_env: environment variable %s is not set or empty", c.PasswordEnv)
		}
	case c.PasswordFile != "" && c.PasswordEnv == "":
		b, err := os.ReadFile(c.PasswordFile)
		if err == nil && strings.TrimSpace(string(b)) == "" {
			err = errors.New("file is empty")
		}
		if err != nil {
			v.at("$.ha.password_file", "ha.password_file: %v", err)
		}
	}
}

func (v *validator) token(c *Config) {
	h := c.HTTP
	switch {
	case h.BearerTokenEnv != "" && h.BearerTokenFile != "":
		v.at("$.http.bearer_token_file", "http: bearer_token_env and bearer_token_file are mutually exclusive")
	case h.BearerTokenEnv != "":
		t, ok := v.lookupEnv(h.BearerTokenEnv)
		if c.token = strings.TrimSpace(t); !ok || c.token == "" {
			v.at("$.http.bearer_token_env", "http.bearer_token_env: environment variable %s is not set or empty", h.BearerTokenEnv)
		}
	case h.BearerTokenFile != "":
		b, err := os.ReadFile(h.BearerTokenFile)
		if c.token = strings.TrimSpace(string(b)); err != nil || c.token == "" {
			if err == nil {
				err = errors.New("file is empty")
			}
			v.at("$.http.bearer_token_file", "http.bearer_token_file: %v", err)
		}
	}
}

// collectors builds each collector on its own, so each error points at its
// entry, then releases it.
func (v *validator) collectors(cfgs []collectors.Config) {
	seen := map[string]int{}
	for i, cc := range cfgs {
		path := fmt.Sprintf("$.collectors[%d]", i)
		if j, dup := seen[cc.Name]; dup && cc.Name != "" {
			v.at(path+".name", "collectors: name %q used twice (first at collectors[%d])", cc.Name, j)
		}
		seen[cc.Name] = i
		built, err := collectors.Build([]collectors.Config{cc}, v.logger, collectors.WithLookupEnv(v.lookupEnv))
		for _, e := range flatten(err) {
			at := path
			if m := collectorField.FindStringSubmatch(e.Error()); m != nil {
				at = path + "." + m[1]
			}
			v.at(at, "collectors[%d]: %v", i, e)
		}
		for _, b := range built {
			if cl, ok := b.(io.Closer); ok {
				cl.Close()
			}
		}
	}
}

// collectorField is the field of a collector an error names, when it
// names one ("prometheus.basic_auth.password: ..."): the error then
// points at it, not at the collector.
var collectorField = regexp.MustCompile(`^collector "[^"]*": (prometheus(?:\.[a-z_0-9]+)*): `)

var notifierWhere = regexp.MustCompile(`^(channel "([^"]*)"|channels\[(\d+)\]|(routes\[\d+\](?:\.(?:mute|active)_time_intervals\[\d+\])?)|inhibit_rules\[(\d+)\]|default_channels|(group_wait|group_interval|repeat_interval|group_by(?:\[\d+\])?|time_intervals\[\d+\]):)`)

// groupingField is the grouping setting a channel's error is about, when
// it is one: the error then points at that field, not at the channel.
var groupingField = regexp.MustCompile(`^: (group_wait|group_interval|repeat_interval|group_by(?:\[\d+\])?|(?:mute|active)_time_intervals\[\d+\]): `)

// notifiers builds the dispatcher once (every channel, route and inhibit
// rule) and maps each error to the entry it names.
func (v *validator) notifiers(cfg notifiers.Config) {
	d, err := notifiers.Build(cfg, notifiers.WithLookupEnv(v.lookupEnv), notifiers.WithLogger(v.logger))
	if d != nil {
		d.Stop(context.Background()) // nothing is queued: returns at once
	}
	for _, e := range flatten(err) {
		path := "$.notifiers"
		if m := notifierWhere.FindStringSubmatch(e.Error()); m != nil {
			switch {
			case m[2] != "":
				for i, ch := range cfg.Channels {
					if ch.Name == m[2] {
						path = fmt.Sprintf("$.notifiers.channels[%d]", i)
						break
					}
				}
				if f := groupingField.FindStringSubmatch(e.Error()[len(m[0]):]); f != nil && path != "$.notifiers" {
					path += "." + f[1]
				}
			case m[3] != "":
				path = "$.notifiers.channels[" + m[3] + "]"
			case m[4] != "":
				path = "$.notifiers." + m[4]
			case m[5] != "":
				path = "$.notifiers.inhibit_rules[" + m[5] + "]"
			case m[6] != "":
				path = "$.notifiers." + m[6]
			default:
				path = "$.notifiers.default_channels"
			}
		}
		v.at(path, "notifiers: %v", e)
	}
}

// flatten splits joined errors into their parts.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

var quoted = regexp.MustCompile(`"([^"]+)"`)

// yamlError gives a decoding error its position. Errors of a value's own
// UnmarshalText (a bad duration) carry none: they quote the value, which
// is then looked up in the file.
func yamlError(file string, f *ast.File, err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		e := &Error{File: file, Msg: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	e := &Error{File: file, Msg: err.Error()}
	if m := quoted.FindStringSubmatch(e.Msg); m != nil && f != nil {
		for _, doc := range f.Docs {
			ast.Walk(visitFunc(func(n ast.Node) bool {
				if s, ok := n.(*ast.StringNode); ok && s.Value == m[1] && e.Line == 0 {
					e.Line, e.Column = s.Token.Position.Line, s.Token.Position.Column
				}
				return e.Line == 0
			}), doc)
		}
	}
	return e
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

// timeIntervalFields are the fields of an Alertmanager time interval, each
// decoded on its own by timeIntervalError.
var timeIntervalFields = map[string]func() any{
	"times":         func() any { return new(timeinterval.TimeRange) },
	"weekdays":      func() any { return new(timeinterval.WeekdayRange) },
	"days_of_month": func() any { return new(timeinterval.DayOfMonthRange) },
	"months":        func() any { return new(timeinterval.MonthRange) },
	"years":         func() any { return new(timeinterval.YearRange) },
	"location":      func() any { return new(timeinterval.Location) },
}

// timeIntervalError finds where a decoding error without a position
// comes from when it is a time interval's (Alertmanager's parsers report
// "moonday is not a valid weekday" and nothing else): it decodes every
// value under notifiers.time_intervals on its own, and the first that
// fails gives the position and the YAML path. Otherwise it returns msg
// unchanged, at no position.
func timeIntervalError(f *ast.File, msg string) (line, col int, _ string) {
	p, err := yaml.PathString("$.notifiers.time_intervals")
	if err != nil || f == nil {
		return 0, 0, msg
	}
	n, err := p.FilterFile(f)
	named, ok := n.(*ast.SequenceNode)
	if err != nil || !ok {
		return 0, 0, msg
	}
	for i, entry := range named.Values {
		m, ok := entry.(*ast.MappingNode)
		if !ok {
			continue
		}
		for _, kv := range m.Values {
			list, ok := kv.Value.(*ast.SequenceNode)
			if kv.Key.String() != "time_intervals" || !ok {
				continue
			}
			for j, ti := range list.Values {
				tm, ok := ti.(*ast.MappingNode)
				if !ok {
					continue
				}
				for _, field := range tm.Values {
					newT, known := timeIntervalFields[field.Key.String()]
					if !known {
						continue
					}
					vals := []ast.Node{field.Value}
					if seq, ok := field.Value.(*ast.SequenceNode); ok {
						vals = seq.Values
					}
					for _, v := range vals {
						if err := yaml.NodeToValue(v, newT()); err != nil {
							tk := v.GetToken()
							return tk.Position.Line, tk.Position.Column,
								fmt.Sprintf("notifiers.time_intervals[%d].time_intervals[%d].%s: %v", i, j, field.Key.String(), err)
						}
					}
				}
			}
		}
	}
	return 0, 0, msg
}
