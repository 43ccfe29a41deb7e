// Package prom scrapes any Prometheus /metrics endpoint, text or
// OpenMetrics, into samples named exactly as exposed, so rules can be
// written in the style of etcd's own alerting rules. Histograms stay
// cumulative _bucket series with an "le" label for the percentile
// aggregate, and counters stay raw for rate.
package prom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/vigil-alerts/vigil/internal/httpconf"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
)

// DefaultMaxBodyBytes bounds a page when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 32 << 20

// acceptHeader prefers OpenMetrics, as Prometheus does, and takes text.
const acceptHeader = `application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

// Config configures a Scraper.
type Config struct {
	URLs []string // one per target
	// HTTP is Prometheus' own scrape client config: basic_auth,
	// authorization, oauth2, tls_config, proxy, http_headers. Secrets come
	// from *_file fields or from *_ref fields, which name environment
	// variables; an inline secret is refused. The zero value is
	// promconfig.DefaultHTTPClientConfig.
	HTTP promconfig.HTTPClientConfig
	// LookupEnv resolves *_ref fields (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Learn, when set, is told the credentials in use again after a
	// failed scrape (a redact.Redactor's Add): a file rotated since New
	// holds a value nobody has learnt yet.
	Learn        func(...string)
	MaxBodyBytes int64 // a longer page is an error; 0 means DefaultMaxBodyBytes
	// SampleLimit fails a scrape whose page has more samples, counted
	// after the selection, before they are all parsed; 0 means none.
	SampleLimit int
}

// Scraper scrapes one URL per target index, reusing connections.
type Scraper struct {
	urls    []string
	max     int64
	http    *http.Client
	secrets []string
	// What is read again when a scrape fails: the client reads files at
	// every request, so a rotated value is in use before any reload, and
	// learn (Config.Learn) must hear of it before the error is shown.
	httpCfg   promconfig.HTTPClientConfig
	lookupEnv func(string) (string, bool)
	learn     func(...string)
	limit     int
	// sel is what pages are read for (SetSelection); nil reads everything.
	sel atomic.Pointer[Selection]
}

// SetSelection makes the next scrapes keep only the samples sel keeps; a
// nil sel keeps everything. Safe while scraping.
func (s *Scraper) SetSelection(sel *Selection) { s.sel.Store(sel) }

// New validates cfg and builds the client with
// promconfig.NewClientFromConfig. Errors name a target by its index and
// never quote a URL: it may hold a credential.
func New(cfg Config) (*Scraper, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("no URLs")
	}
	if cfg.SampleLimit < 0 {
		return nil, errors.New("sample_limit must not be negative")
	}
	s := &Scraper{urls: cfg.URLs, max: cfg.MaxBodyBytes, limit: cfg.SampleLimit,
		httpCfg: cfg.HTTP, lookupEnv: cfg.LookupEnv, learn: cfg.Learn}
	if s.max <= 0 {
		s.max = DefaultMaxBodyBytes
	}
	var errs []error
	for i, u := range cfg.URLs {
		pu, err := url.Parse(u)
		switch {
		case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			errs = append(errs, fmt.Errorf("target %d: address %s: want http(s)://host[:port]/path", i, redact.ShowURL(u)))
		case pu.User != nil:
			errs = append(errs, fmt.Errorf("target %d: address %s: %w; set prometheus.basic_auth (username and password_file or password_ref) instead", i, redact.ShowURL(u), redact.ErrUserInfo))
		}
		s.secrets = append(s.secrets, redact.SecretParams(u)...)
	}
	client, creds, err := httpconf.Client(cfg.HTTP, "prometheus", cfg.LookupEnv)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	s.http, s.secrets = client, append(s.secrets, creds...)
	return s, nil
}

// Secrets lists the credential values the scraper sends and those in its
// URLs' query strings, for a redact.Redactor. Never logged or shown.
func (s *Scraper) Secrets() []string { return s.secrets }

// Close drops idle connections.
func (s *Scraper) Close() error {
	s.http.CloseIdleConnections()
	return nil
}

// Scrape fetches and parses target i's page. A page that fails to parse
// yields no samples and an error naming the line, never a partial page.
func (s *Scraper) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	samples, err := s.scrape(ctx, i, now)
	if err != nil && s.learn != nil && httpconf.HasCredentials(s.httpCfg) {
		creds, _ := httpconf.Credentials(s.httpCfg, "prometheus", s.lookupEnv)
		s.learn(creds...)
	}
	return samples, err
}

func (s *Scraper) scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[i], nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptHeader)
	resp, err := s.http.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which may carry a token: keep the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: s.max}
	samples, err := Read(body, resp.Header, s.sel.Load(), s.limit, now)
	if body.exceeded {
		return nil, fmt.Errorf("page larger than %d bytes", s.max)
	}
	return samples, err
}

// Read parses a page in the format its Content-Type header names (text
// when it names none) into the samples sel keeps (nil: all). Text and
// OpenMetrics lines of families sel does not keep are skipped before
// parsing. More than limit samples (0: no limit) is ErrSampleLimit, found
// before the rest of the page is parsed; nothing is returned with an
// error.
func Read(r io.Reader, h http.Header, sel *Selection, limit int, now time.Time) ([]model.Sample, error) {
	format := expfmt.ResponseFormat(h)
	var fr *filterReader
	if format.FormatType() != expfmt.TypeProtoDelim {
		fr = newFilterReader(r, sel, limit)
		r = fr
	}
	fams, err := parse(r, format, sel)
	if fr != nil && fr.exceeded {
		return nil, sampleLimitErr(limit)
	}
	if err != nil {
		return nil, err
	}
	out := samples(fams, now, sel)
	if limit > 0 && len(out) > limit {
		return nil, sampleLimitErr(limit)
	}
	return out, nil
}

func sampleLimitErr(limit int) error {
	return fmt.Errorf("%w: the page has more than %d samples (sample_limit), none stored", ErrSampleLimit, limit)
}

// Parse decodes a page in the format its Content-Type header names; text
// is assumed when it names none.
func Parse(r io.Reader, h http.Header) ([]*dto.MetricFamily, error) {
	return parse(r, expfmt.ResponseFormat(h), nil)
}

// parse decodes a page; families decoded one by one (OpenMetrics,
// protobuf) that sel does not keep are dropped as they come.
func parse(r io.Reader, format expfmt.Format, sel *Selection) ([]*dto.MetricFamily, error) {
	switch format.FormatType() {
	case expfmt.TypeOpenMetrics, expfmt.TypeProtoDelim:
		dec := expfmt.NewDecoder(r, format.WithEscapingScheme(pmodel.NoEscaping))
		var fams []*dto.MetricFamily
		for {
			f := &dto.MetricFamily{}
			if err := dec.Decode(f); err != nil {
				if errors.Is(err, io.EOF) {
					return fams, nil
				}
				return nil, fmt.Errorf("parse page (%s): %w", format, err)
			}
			if !sel.All() && !sel.keepsLine([]byte(f.GetName())) {
				continue
			}
			fams = append(fams, f)
		}
	default:
		p := expfmt.NewTextParser(pmodel.UTF8Validation)
		m, err := p.TextToMetricFamilies(r)
		if err != nil {
			return nil, fmt.Errorf("parse text page: %w", err)
		}
		fams := make([]*dto.MetricFamily, 0, len(m))
		for _, f := range m {
			fams = append(fams, f)
		}
		return fams, nil
	}
}

// Samples flattens families into samples as Prometheus would store them:
// summaries as name{quantile}, name_sum, name_count; histograms as
// name_bucket{le} (cumulative, +Inf included), name_sum, name_count.
// Exposed timestamps are ignored: a sample's time is the collection's.
func Samples(fams []*dto.MetricFamily, now time.Time) []model.Sample {
	return samples(fams, now, nil)
}

func samples(fams []*dto.MetricFamily, now time.Time, sel *Selection) []model.Sample {
	var out []model.Sample
	add := func(name string, base model.Labels, v float64, extraName, extraValue string) {
		if !sel.Keeps(name) {
			return
		}
		ls := base
		if extraName != "" {
			ls = make(model.Labels, len(base)+1)
			for k, val := range base {
				ls[k] = val
			}
			ls[extraName] = extraValue
		}
		out = append(out, model.Sample{Metric: name, Labels: ls, Value: v, Time: now})
	}
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			ls := make(model.Labels, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add(name, ls, m.GetCounter().GetValue(), "", "")
			case dto.MetricType_GAUGE:
				add(name, ls, m.GetGauge().GetValue(), "", "")
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add(name, ls, q.GetValue(), "quantile", formatFloat(q.GetQuantile()))
				}
				add(name+"_sum", ls, sm.GetSampleSum(), "", "")
				add(name+"_count", ls, float64(sm.GetSampleCount()), "", "")
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				sawInf := false
				for _, b := range h.GetBucket() {
					sawInf = sawInf || math.IsInf(b.GetUpperBound(), 1)
					add(name+"_bucket", ls, float64(b.GetCumulativeCount()), "le", formatFloat(b.GetUpperBound()))
				}
				count := float64(h.GetSampleCount())
				if h.SampleCountFloat != nil {
					count = h.GetSampleCountFloat()
				}
				if !sawInf {
					add(name+"_bucket", ls, count, "le", "+Inf")
				}
				add(name+"_sum", ls, h.GetSampleSum(), "", "")
				add(name+"_count", ls, count, "", "")
			default:
				add(name, ls, m.GetUntyped().GetValue(), "", "")
			}
		}
	}
	return out
}

// formatFloat prints bounds and quantiles as Prometheus does ("0.5", "+Inf").
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// limitedReader is io.LimitReader that remembers hitting the limit, so an
// oversized page is reported as such rather than as a parse error.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: a page of exactly n bytes is fine.
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			l.exceeded = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}
