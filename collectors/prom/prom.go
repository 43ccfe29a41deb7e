// Package prom scrapes any Prometheus /metrics endpoint, text or
// OpenMetrics, into samples named exactly as exposed, so rules can be
// written in the style of etcd's own alerting rules. Histograms stay
// cumulative _bucket series with an "le" label for the percentile
// aggregate, and counters stay raw for rate.
package prom

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/vigil-alerts/vigil/model"
)

// DefaultMaxBodyBytes bounds a page when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 32 << 20

// acceptHeader prefers OpenMetrics, as Prometheus does, and takes text.
const acceptHeader = `application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

// Config configures a Scraper.
type Config struct {
	URLs         []string // one per target
	TLS          *tls.Config
	MaxBodyBytes int64 // a longer page is an error; 0 means DefaultMaxBodyBytes
}

// Scraper scrapes one URL per target index, reusing connections.
type Scraper struct {
	urls []string
	max  int64
	http *http.Client
}

// New validates cfg.
func New(cfg Config) (*Scraper, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("no URLs")
	}
	var errs []error
	for _, u := range cfg.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			errs = append(errs, fmt.Errorf("url %q: want http(s)://host[:port]/path", u))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	max := cfg.MaxBodyBytes
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	return &Scraper{urls: cfg.URLs, max: max, http: &http.Client{Transport: tr}}, nil
}

// Close drops idle connections.
func (s *Scraper) Close() error {
	s.http.CloseIdleConnections()
	return nil
}

// Scrape fetches and parses target i's page. A page that fails to parse
// yields no samples and an error naming the line, never a partial page.
func (s *Scraper) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[i], nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptHeader)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: s.max}
	fams, err := Parse(body, resp.Header)
	if body.exceeded {
		return nil, fmt.Errorf("page larger than %d bytes", s.max)
	}
	if err != nil {
		return nil, err
	}
	return Samples(fams, now), nil
}

// Parse decodes a page in the format its Content-Type header names; text
// is assumed when it names none.
func Parse(r io.Reader, h http.Header) ([]*dto.MetricFamily, error) {
	format := expfmt.ResponseFormat(h)
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
	var out []model.Sample
	add := func(name string, base model.Labels, v float64, extraName, extraValue string) {
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
