package notifiers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the one set of self-metrics, registered on the caller's
// Registerer (never the default one).
type metrics struct {
	sent           *prometheus.CounterVec
	failed         *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	templateErrors *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	queue          *prometheus.GaugeVec
	dropped        prometheus.Counter
	inhibited      prometheus.Gauge
	silenced       prometheus.Gauge
	unknownChannel prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_sent_total", Help: "Messages delivered, per channel.",
		}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_failed_total", Help: "Messages that failed after all retries, per channel.",
		}, []string{"channel"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notification_attempts_total", Help: "Delivery attempts including retries, per channel.",
		}, []string{"channel"}),
		templateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notification_template_errors_total", Help: "Messages sent with the fallback text because a template failed.",
		}, []string{"channel"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_notification_latency_seconds", Help: "Time to deliver one message, retries included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"channel"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_notification_queue_length", Help: "Messages waiting for delivery, per channel.",
		}, []string{"channel"}),
		// Not per channel: the channel is gone, and so are its series.
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_notifications_dropped_total", Help: "Messages not delivered because a config reload removed their channel.",
		}),
		inhibited: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerts_inhibited", Help: "Firing alerts currently held back by inhibition.",
		}),
		silenced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerts_silenced", Help: "Firing alerts currently held back by silences.",
		}),
		unknownChannel: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_notification_unknown_channel_total", Help: "Alerts naming a channel that is not configured.",
		}),
	}
	if reg == nil {
		return m
	}
	// A config reload builds a new Dispatcher on the same registry: reuse
	// the collectors already there instead of panicking.
	reuse := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
		}
		return c
	}
	m.sent = reuse(m.sent).(*prometheus.CounterVec)
	m.failed = reuse(m.failed).(*prometheus.CounterVec)
	m.attempts = reuse(m.attempts).(*prometheus.CounterVec)
	m.templateErrors = reuse(m.templateErrors).(*prometheus.CounterVec)
	m.latency = reuse(m.latency).(*prometheus.HistogramVec)
	m.queue = reuse(m.queue).(*prometheus.GaugeVec)
	m.dropped = reuse(m.dropped).(prometheus.Counter)
	m.inhibited = reuse(m.inhibited).(prometheus.Gauge)
	m.silenced = reuse(m.silenced).(prometheus.Gauge)
	m.unknownChannel = reuse(m.unknownChannel).(prometheus.Counter)
	return m
}

// init makes a channel's series exist from the start (0, not absent), so
// rate() and alerts on them work before its first message.
func (m *metrics) init(channel string) {
	m.queue.WithLabelValues(channel).Set(0)
	m.failed.WithLabelValues(channel).Add(0)
	m.sent.WithLabelValues(channel).Add(0)
}

// forget deletes every series of a channel a reload removed.
func (m *metrics) forget(channel string) {
	m.sent.DeleteLabelValues(channel)
	m.failed.DeleteLabelValues(channel)
	m.attempts.DeleteLabelValues(channel)
	m.templateErrors.DeleteLabelValues(channel)
	m.latency.DeleteLabelValues(channel)
	m.queue.DeleteLabelValues(channel)
}
