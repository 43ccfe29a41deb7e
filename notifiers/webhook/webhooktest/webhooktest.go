// Package webhooktest is a real HTTP receiver of Vigil's webhook payloads
// for tests: it records every message so a test can count deliveries.
package webhooktest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// Receiver records the payloads posted to its URL.
type Receiver struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []webhook.Payload
}

// NewReceiver starts a receiver, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p webhook.Payload
		if err := json.NewDecoder(req.Body).Decode(&p); err != nil {
			t.Errorf("webhook receiver: %v", err)
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, p)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// Count is the number of messages about rule with status (firing, resolved).
func (r *Receiver) Count(rule, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.msgs {
		if p.Rule == rule && p.Status == status {
			n++
		}
	}
	return n
}

// FiredAt is the fired_at of the first firing message about rule.
func (r *Receiver) FiredAt(rule string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.msgs {
		if p.Rule == rule && p.Status == "firing" && len(p.Alerts) > 0 && p.Alerts[0].FiredAt != nil {
			return *p.Alerts[0].FiredAt
		}
	}
	return time.Time{}
}

// Total is the number of messages received.
func (r *Receiver) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Summary lists the messages as rule/status, for failure output.
func (r *Receiver) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := make([]string, len(r.msgs))
	for i, p := range r.msgs {
		s[i] = p.Rule + "/" + p.Status
	}
	return strings.Join(s, ", ")
}
