package notifiers

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/notifiers/email"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// Message is one notification as its channel would send it (WithCapture).
type Message struct {
	Channel string
	Group   Group
	// At is when the dispatcher decided to send it: the Process time.
	At time.Time
	// Alerts are the group's alerts in the message, by fingerprint.
	Alerts []model.Alert
	// Body is the channel's rendering (see each package's Render).
	Body []byte
	// Err is a rendering failure; with a template error, Body holds the
	// fallback the channel sends.
	Err error
}

// captureNotifier renders a channel's messages with its own code and
// hands them to f instead of sending them.
type captureNotifier struct {
	name string
	n    Notifier
	f    func(Message)
}

// Secrets are the wrapped channel's, for the redactor: a value written in
// the config (a URL's token) must stay out of errors in tests too.
func (c *captureNotifier) Secrets() []string {
	if s, ok := c.n.(interface{ Secrets() []string }); ok {
		return s.Secrets()
	}
	return nil
}

// Notify renders a message about alerts without a group or a time.
func (c *captureNotifier) Notify(_ context.Context, alerts ...model.Alert) (bool, error) {
	c.capture(Group{}, time.Time{}, alerts)
	return false, nil
}

// capture renders the message and returns the thread the channel would
// keep for the group (Slack's first post).
func (c *captureNotifier) capture(g Group, at time.Time, alerts []model.Alert) string {
	m := Message{Channel: c.name, Group: g, At: at, Alerts: alerts}
	var thread string
	switch n := c.n.(type) {
	case *slack.Notifier:
		m.Body, thread, m.Err = n.Render(g, at, alerts...)
	case *email.Notifier:
		m.Body, m.Err = n.Render(at, alerts...)
	case *webhook.Notifier:
		m.Body, m.Err = n.Render(g, alerts...)
	case *alertmanager.Notifier:
		m.Body, m.Err = n.Render(at, alerts...)
	case *console.Notifier:
		m.Body, m.Err = n.Render(alerts...)
	default:
		m.Err = fmt.Errorf("channel %q: %T cannot render its messages", c.name, c.n)
	}
	c.f(m)
	return thread
}

// Settle waits until every message decided so far has been delivered,
// or has failed for good, or ctx ends. With WithCapture that is as soon
// as the workers have rendered them: a rule test steps its clock to the
// next evaluation only once the last one's messages are all captured,
// and what the receiver was sent is recorded for dedup.
func (d *Dispatcher) Settle(ctx context.Context) error {
	for {
		d.mu.Lock()
		busy := false
		for _, g := range d.groups {
			if g.inflight > 0 {
				busy = true
				break
			}
		}
		if !busy {
			d.mu.Unlock()
			return nil
		}
		if d.settled == nil {
			d.settled = make(chan struct{})
		}
		ch := d.settled
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
