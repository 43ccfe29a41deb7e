package collectors

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	promconfig "github.com/prometheus/common/config"

	"github.com/vigil-alerts/vigil/collectors/etcd"
	"github.com/vigil-alerts/vigil/collectors/exec"
	"github.com/vigil-alerts/vigil/collectors/probe"
	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
)

// Collector types.
const (
	TypeEtcd       = "etcd"
	TypePrometheus = "prometheus"
	TypeProbe      = "probe"
	TypeExec       = "exec"
)

// Defaults applied by Build when a field is zero.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// Duration is a time.Duration written in YAML as "30s", "1m30s".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText prints the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Config is one named collector in Vigil's config file.
type Config struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"` // etcd, prometheus, probe or exec
	Interval Duration `yaml:"interval"`
	// Timeout bounds one whole collection of every target.
	Timeout Duration `yaml:"timeout"`
	// MaxConcurrency bounds the targets collected at once; 0 means all.
	MaxConcurrency int `yaml:"max_concurrency"`
	// SampleLimit and LabelLimit are Prometheus' scrape_config limits,
	// per target: a collection with more samples (of the metrics rules
	// read), or a sample with more labels, fails whole. 0: no limit.
	SampleLimit int        `yaml:"sample_limit"`
	LabelLimit  int        `yaml:"label_limit"`
	TLS         *TLSConfig `yaml:"tls"` // etcd, prometheus and https probes
	Targets     []Target   `yaml:"targets"`

	// Per-type sections; only the one matching Type may be set.
	Etcd       *EtcdConfig       `yaml:"etcd"`
	Prometheus *PrometheusConfig `yaml:"prometheus"`
	Probe      *ProbeConfig      `yaml:"probe"`
	Exec       *ExecConfig       `yaml:"exec"`

	// Metrics declares what a prometheus or exec collector's targets
	// expose, for `vigil check --config` (docs/metrics.md).
	Metrics []MetricDecl `yaml:"metrics"`
}

// Target is one thing a collector collects from.
type Target struct {
	// Name is the value of the "target" label; it defaults to the address
	// (for exec, to the command line).
	Name string `yaml:"name"`
	// Address: an etcd client URL, a /metrics URL, or a probe's host:port
	// or http(s) URL. Not used by exec.
	Address string `yaml:"address"`
	// MetricsURL overrides an etcd member's Address + "/metrics".
	MetricsURL string `yaml:"metrics_url"`
	// Command, Shell, Format and Metric are for exec targets only.
	Command []string `yaml:"command"`
	Shell   bool     `yaml:"shell"`
	Format  string   `yaml:"format"`
	Metric  string   `yaml:"metric"`
	// Tags are added to every sample of this target.
	Tags map[string]string `yaml:"tags"`
}

// TLSConfig names PEM files; empty fields mean the system default.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// EtcdConfig is the `etcd:` section.
type EtcdConfig struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile is read at load, so the secret stays out of the config.
	PasswordFile    string `yaml:"password_file"`
	SkipMetricsPage bool   `yaml:"skip_metrics_page"`
	// ReconnectMaxDelay caps the client's wait between attempts to reach a
	// member that is down (default 2s).
	ReconnectMaxDelay Duration `yaml:"reconnect_max_delay"`
}

// PrometheusConfig is the `prometheus:` section.
type PrometheusConfig struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// HTTP is Prometheus' own scrape client config, written inline as in
	// a Prometheus scrape_config: basic_auth, authorization, oauth2,
	// tls_config, proxy_url, http_headers, follow_redirects,
	// enable_http2. Secrets come from *_file fields, or *_ref fields
	// naming environment variables; inline ones are refused.
	HTTP promconfig.HTTPClientConfig `yaml:",inline"`
}

// UnmarshalYAML decodes the section strictly. http_headers is decoded on
// its own: go-yaml cannot decode its inline map strictly.
func (p *PrometheusConfig) UnmarshalYAML(n ast.Node) error {
	type plain PrometheusConfig
	var headers ast.Node
	if m, ok := n.(*ast.MappingNode); ok {
		rest := *m
		rest.Values = nil
		for _, kv := range m.Values {
			if kv.Key.String() == "http_headers" {
				headers = kv.Value
				continue
			}
			rest.Values = append(rest.Values, kv)
		}
		n = &rest
	}
	if err := yaml.NodeToValue(n, (*plain)(p), yaml.Strict()); err != nil {
		return err
	}
	if headers == nil {
		return nil
	}
	var hs map[string]promconfig.Header
	if err := yaml.NodeToValue(headers, &hs, yaml.Strict()); err != nil {
		return err
	}
	p.HTTP.HTTPHeaders = &promconfig.Headers{Headers: hs}
	if err := p.HTTP.HTTPHeaders.Validate(); err != nil {
		return &yaml.SyntaxError{Message: "http_headers: " + err.Error(), Token: headers.GetToken()}
	}
	return nil
}

// ProbeConfig is the `probe:` section: where the probes run from.
type ProbeConfig struct {
	// VantagePoint names where Vigil probes from ("prod-pods"); it becomes
	// the probe.vantage_point label.
	VantagePoint string `yaml:"vantage_point"`
	// VantageTags describe the vantage point and are added to every probe
	// sample; they may not repeat a target tag.
	VantageTags map[string]string `yaml:"vantage_tags"`
}

// ExecConfig is the `exec:` section.
type ExecConfig struct {
	MaxOutputBytes int64 `yaml:"max_output_bytes"`
}

// LabelVantagePoint carries ProbeConfig.VantagePoint.
const LabelVantagePoint = "probe.vantage_point"

// Option adjusts Build with things that are not config.
type Option func(*options)

type options struct {
	redactor  *redact.Redactor
	lookupEnv func(string) (string, bool)
}

// WithRedactor makes r learn the credentials of every collector built and
// passes every collection error through r before it is logged or
// returned: a target may echo what it was sent, a command may print a
// secret on stderr.
func WithRedactor(r *redact.Redactor) Option { return func(o *options) { o.redactor = r } }

// WithLookupEnv replaces os.LookupEnv for the *_ref fields of scrape
// credentials.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = f }
}

// Build validates every config and builds its collector. It reports every
// problem at once, each naming its collector, and builds nothing unless
// all are valid. Collectors hold connections: release them with Close
// (every returned collector implements io.Closer).
func Build(cfgs []Config, logger *slog.Logger, opts ...Option) ([]Collector, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var (
		out   []Collector
		errs  []error
		names = map[string]bool{}
	)
	for i, cfg := range cfgs {
		id := fmt.Sprintf("collector %d", i)
		if cfg.Name != "" {
			id = fmt.Sprintf("collector %q", cfg.Name)
		}
		if names[cfg.Name] && cfg.Name != "" {
			errs = append(errs, fmt.Errorf("%s: name used twice", id))
		}
		names[cfg.Name] = true
		c, err := build(cfg, logger, o)
		if err != nil {
			// The sources quote addresses in their errors; a refused one
			// may hold a password.
			hide := addressSecrets(cfg)
			for _, e := range prefixed(id, err) {
				errs = append(errs, hide.Error(e))
			}
			continue
		}
		out = append(out, c)
	}
	if err := errors.Join(errs...); err != nil {
		for _, c := range out {
			c.(*TargetCollector).Close()
		}
		return nil, err
	}
	return out, nil
}

// addressSecrets knows the credentials written into cfg's target
// addresses (user info, token query values), which are refused or hidden
// but may still be quoted by an error about the address.
func addressSecrets(cfg Config) *redact.Redactor {
	r := redact.New()
	for _, t := range cfg.Targets {
		if u, err := url.Parse(t.Address); err == nil && u.User != nil {
			if p, _ := u.User.Password(); p != "" {
				r.Add(p, redact.BasicAuth(u.User.Username(), p))
			}
			r.Add(u.User.String())
		}
		r.Add(redact.SecretParams(t.Address)...)
	}
	return r
}

// prefixed names the collector on every line of a joined error.
func prefixed(id string, err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefixed(id, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s: %w", id, err)}
}

func build(cfg Config, logger *slog.Logger, o options) (*TargetCollector, error) {
	s := Settings{
		Name:           cfg.Name,
		Interval:       time.Duration(cfg.Interval),
		Timeout:        time.Duration(cfg.Timeout),
		MaxConcurrency: cfg.MaxConcurrency,
		SampleLimit:    cfg.SampleLimit,
		LabelLimit:     cfg.LabelLimit,
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
	}
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if s.Timeout > s.Interval {
		errs = append(errs, fmt.Errorf("timeout %v is longer than interval %v", s.Timeout, s.Interval))
	}
	if cfg.MaxConcurrency < 0 {
		errs = append(errs, errors.New("max_concurrency must not be negative"))
	}
	if cfg.SampleLimit < 0 {
		errs = append(errs, errors.New("sample_limit must not be negative"))
	}
	if cfg.LabelLimit < 0 {
		errs = append(errs, errors.New("label_limit must not be negative"))
	}
	if len(cfg.Targets) == 0 {
		errs = append(errs, errors.New("no targets"))
	}
	sections := map[string]bool{TypeEtcd: cfg.Etcd != nil, TypePrometheus: cfg.Prometheus != nil, TypeProbe: cfg.Probe != nil, TypeExec: cfg.Exec != nil}
	if _, known := sections[cfg.Type]; !known {
		errs = append(errs, fmt.Errorf("unknown type %q (want etcd, prometheus, probe or exec)", cfg.Type))
	}
	for typ, set := range sections {
		if set && typ != cfg.Type {
			errs = append(errs, fmt.Errorf("section %q does not apply to type %q", typ, cfg.Type))
		}
	}
	if len(cfg.Metrics) > 0 && cfg.Type != TypePrometheus && cfg.Type != TypeExec {
		errs = append(errs, fmt.Errorf("metrics: only prometheus and exec collectors declare their metrics; %s's are built in", cfg.Type))
	}
	for i, m := range cfg.Metrics {
		if m.Name == "" {
			errs = append(errs, fmt.Errorf("metrics[%d]: name is required", i))
		}
		if m.Kind != "" && m.Kind != model.Gauge && m.Kind != model.Counter {
			errs = append(errs, fmt.Errorf("metrics[%d] %q: kind %q: want gauge or counter", i, m.Name, m.Kind))
		}
	}
	var tlsCfg *tls.Config
	var err error
	if cfg.Type != TypePrometheus { // the scrape client reads its own files
		if tlsCfg, err = cfg.TLS.Load(); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.TLS != nil && cfg.Type == TypeExec {
		errs = append(errs, errors.New("tls does not apply to exec"))
	}
	infos, err := targetInfos(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	// The source validates its own part even when the above failed, so
	// the operator sees every problem in one go.
	var scraper Scraper
	switch cfg.Type {
	case TypeEtcd:
		scraper, err = buildEtcd(cfg, s.Timeout, tlsCfg, logger, o)
	case TypePrometheus:
		scraper, err = buildProm(cfg, o)
	case TypeProbe:
		pc := probe.Config{TLS: tlsCfg}
		for _, t := range cfg.Targets {
			pc.Addresses = append(pc.Addresses, t.Address)
		}
		scraper, err = probe.New(pc)
	case TypeExec:
		ec := exec.Config{}
		if cfg.Exec != nil {
			ec.MaxOutputBytes = cfg.Exec.MaxOutputBytes
		}
		for _, t := range cfg.Targets {
			ec.Commands = append(ec.Commands, exec.Command{Argv: t.Command, Shell: t.Shell, Format: t.Format, Metric: t.Metric})
		}
		scraper, err = exec.New(ec)
	}
	if err != nil {
		// Typed nil pointers inside: nothing to close.
		return nil, errors.Join(append(errs, err)...)
	}
	if err := errors.Join(errs...); err != nil {
		if c, ok := scraper.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	if sc, ok := scraper.(interface{ Secrets() []string }); ok {
		o.redactor.Add(sc.Secrets()...)
	}
	c := NewTargetCollector(s, infos, scraper, logger)
	c.redactor = o.redactor
	return c, nil
}

// buildProm builds the scrape client from the section's HTTP client
// config. The collector's `tls:` is the same as `prometheus.tls_config`,
// kept so that one block serves every type.
func buildProm(cfg Config, o options) (*prom.Scraper, error) {
	pc := prom.Config{LookupEnv: o.lookupEnv, SampleLimit: max(cfg.SampleLimit, 0)}
	if o.redactor != nil {
		pc.Learn = o.redactor.Add
	}
	if p := cfg.Prometheus; p != nil {
		pc.MaxBodyBytes, pc.HTTP = p.MaxBodyBytes, p.HTTP
	} else {
		pc.HTTP = promconfig.DefaultHTTPClientConfig
	}
	if t := cfg.TLS; t != nil {
		if pc.HTTP.TLSConfig != (promconfig.TLSConfig{}) {
			return nil, errors.New("tls and prometheus.tls_config: set one of them")
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			return nil, errors.New("tls: cert_file and key_file go together")
		}
		pc.HTTP.TLSConfig = promconfig.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	for _, t := range cfg.Targets {
		pc.URLs = append(pc.URLs, t.Address)
	}
	return prom.New(pc)
}

func buildEtcd(cfg Config, timeout time.Duration, tlsCfg *tls.Config, logger *slog.Logger, o options) (*etcd.Scraper, error) {
	ec := etcd.Config{Timeout: timeout, TLS: tlsCfg}
	if logger != nil {
		ec.Logger = logger.With("collector", cfg.Name)
	}
	if e := cfg.Etcd; e != nil {
		ec.Username, ec.Password, ec.SkipMetricsPage = e.Username, e.Password, e.SkipMetricsPage
		ec.ReconnectMaxDelay = time.Duration(e.ReconnectMaxDelay)
		if e.PasswordFile != "" {
			if e.Password != "" {
				return nil, errors.New("etcd: password and password_file are exclusive")
			}
			b, err := os.ReadFile(e.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("etcd: %w", err)
			}
			ec.Password = strings.TrimSpace(string(b))
		}
	}
	for _, t := range cfg.Targets {
		ec.Members = append(ec.Members, etcd.Member{Endpoint: t.Address, MetricsURL: t.MetricsURL})
	}
	if ec.Password != "" {
		o.redactor.Add(ec.Password, redact.BasicAuth(ec.Username, ec.Password))
	}
	return etcd.New(ec)
}

// targetInfos names the targets, merges vantage tags, and checks the
// fields that only some types use.
func targetInfos(cfg Config) ([]TargetInfo, error) {
	var errs []error
	seen := map[string]bool{}
	infos := make([]TargetInfo, 0, len(cfg.Targets))
	for i, t := range cfg.Targets {
		name := t.Name
		if name == "" {
			// The address is the label: shown without user info or a
			// query token (redact.ShowURL).
			name = t.Address
			if strings.Contains(name, "://") {
				name = redact.ShowURL(name)
			}
			if cfg.Type == TypeExec {
				name = strings.Join(t.Command, " ")
			}
		}
		id := fmt.Sprintf("target %d (%s)", i, name)
		if u, err := url.Parse(t.Address); err == nil && u.User != nil && cfg.Type != TypePrometheus {
			// prom.New says the same for scrapes, pointing at basic_auth.
			errs = append(errs, fmt.Errorf("%s: address: %w; credentials are read from files (etcd: username and password_file)", id, redact.ErrUserInfo))
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("%s: name used twice; set distinct names", id))
		}
		seen[name] = true
		if cfg.Type == TypeExec {
			if t.Address != "" {
				errs = append(errs, fmt.Errorf("%s: exec targets take command, not address", id))
			}
		} else {
			if t.Address == "" {
				errs = append(errs, fmt.Errorf("%s: address is required", id))
			}
			if len(t.Command) > 0 || t.Shell || t.Format != "" || t.Metric != "" {
				errs = append(errs, fmt.Errorf("%s: command, shell, format and metric are for exec targets", id))
			}
		}
		if t.MetricsURL != "" && cfg.Type != TypeEtcd {
			errs = append(errs, fmt.Errorf("%s: metrics_url is for etcd targets", id))
		}
		tags := make(map[string]string, len(t.Tags)+3)
		for k, v := range t.Tags {
			if err := checkTag(k); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
			}
			tags[k] = v
		}
		if cfg.Type == TypeProbe && cfg.Probe != nil {
			for k, v := range cfg.Probe.VantageTags {
				if err := checkTag(k); err != nil {
					errs = append(errs, fmt.Errorf("vantage tag: %w", err))
				}
				if _, dup := tags[k]; dup {
					errs = append(errs, fmt.Errorf("%s: tag %q is also a vantage tag", id, k))
				}
				tags[k] = v
			}
			if cfg.Probe.VantagePoint != "" {
				tags[LabelVantagePoint] = cfg.Probe.VantagePoint
			}
		}
		infos = append(infos, TargetInfo{Name: name, Tags: tags})
	}
	return infos, errors.Join(errs...)
}

func checkTag(k string) error {
	switch k {
	case "":
		return errors.New("empty tag name")
	case LabelCollector, LabelTarget, LabelVantagePoint:
		return fmt.Errorf("tag %q is set by Vigil", k)
	}
	return nil
}

// Load builds a tls.Config from the PEM files; a nil TLSConfig means plain
// connections. The HA client uses it too.
func (c *TLSConfig) Load() (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	out := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no certificates in ca_file %s", c.CAFile)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}
