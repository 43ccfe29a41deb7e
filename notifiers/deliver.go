package notifiers

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
)

// channel is one named destination with its own queue and workers, so a
// slow or dead receiver only delays itself. Its sender and settings never
// change: a reload that changes them makes a new channel of the same name
// and retires this one (Apply).
type channel struct {
	name string
	// conf is what the channel was built from, to tell whether a reload
	// changes it; nil for a channel added with WithNotifier.
	conf *ChannelConfig
	// secrets is a hash of the secrets n was built with (see
	// secretDigest): a reload whose config is unchanged but whose secret
	// files were rotated replaces the channel.
	secrets      [32]byte
	n            Notifier
	sendResolved bool
	workers      int

	// Set by launch. ctx is the parent of every delivery; a reload that
	// removes the channel cancels it with errChannelRemoved. quit is
	// closed when a reload retires the channel: its workers return after
	// the message they are delivering.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	quit    chan struct{}
	signal  chan struct{} // capacity = workers; a token means "look at the queue"
	running atomic.Int32  // workers not yet returned
	// removed is set, under Dispatcher.mu, when a reload removes the
	// channel; successor when a reload replaces it by one of the same name
	// with new settings.
	removed   bool
	successor *channel

	// mu guards queue, and the gauge of its length, which a channel shares
	// with the channels of the same name that replace it. It is written
	// only with the queue, under mu, and never once retire took the
	// queue: after that the gauge is the successor's.
	mu      sync.Mutex
	queue   []*job
	gauge   prometheus.Gauge // vigil_notification_queue_length{channel=name}; set by launch
	retired bool
}

// errChannelRemoved cancels the deliveries of a channel a reload removed.
var errChannelRemoved = errors.New("channel removed by a config reload")

func newChannel(name string, conf *ChannelConfig, n Notifier, sendResolved bool, workers int) *channel {
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	return &channel{name: name, conf: conf, n: n, secrets: secretDigest(n), sendResolved: sendResolved, workers: workers}
}

// secretDigester is a Notifier that can tell which secrets it resolved
// (slack, email, webhook), as a hash.
type secretDigester interface {
	SecretDigest() [32]byte
}

// secretDigest is n's SecretDigest, or zero for a Notifier without
// secrets (console, WithNotifier).
func secretDigest(n Notifier) [32]byte {
	if s, ok := n.(secretDigester); ok {
		return s.SecretDigest()
	}
	return [32]byte{}
}

// sameChannel reports whether running channel c can stay as it is for
// config b, whose sender, built again, is n: same config and the same
// secrets (a secret file may have been rotated since c was built; env
// variables cannot change in a running process). Channels added with
// WithNotifier (nil) come from the options given to Build, which Apply
// reuses. The grouping overrides do not count: the dispatcher reads them
// from its parts, not from the channel.
func sameChannel(c *channel, b *ChannelConfig, n Notifier) bool {
	a := c.conf
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.DeepEqual(a.sender(), b.sender()) && c.secrets == secretDigest(n)
}

// job is one message: a snapshot of a group taken when Process decided to
// send it.
type job struct {
	group     *group
	labels    model.Labels // the group's labels (groupLabels), for logs
	key       string       // the group's key, for logs: the payload's groupKey
	info      Group        // the group as the receiver sees it (GroupNotifier)
	alerts    []model.Alert
	firing    []string
	resolved  []string
	decidedAt time.Time
	// notBefore is when a receiver's Retry-After allows the next attempt,
	// zero if it asked for none. A hand-over carries it to the new sender.
	notBefore time.Time
}

func (c *channel) enqueue(js ...*job) {
	c.mu.Lock()
	c.queue = append(c.queue, js...)
	c.publish()
	c.mu.Unlock()
	for range min(len(js), cap(c.signal)) {
		select {
		case c.signal <- struct{}{}:
		default: // every worker already has a token and will drain the queue
		}
	}
}

func (c *channel) pop() *job {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	j := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	c.publish()
	return j
}

// publish sets the queue gauge, under c.mu, unless c is retired.
func (c *channel) publish() {
	if !c.retired && c.gauge != nil {
		c.gauge.Set(float64(len(c.queue)))
	}
}

// launched reports whether launch ran for c: a channel Apply kept.
func (c *channel) launched() bool { return c.quit != nil }

// take empties the queue for good (retire) and returns what was in it.
// The gauge reads 0 until a successor, if any, moves the messages in.
func (c *channel) take() []*job {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue = nil
	c.publish()
	c.retired = true
	return q
}

// launch starts c's workers (Build, or Apply under d.mu before Stop); Stop
// is their owner's stop and wait.
func (d *Dispatcher) launch(c *channel) {
	c.ctx, c.cancel = context.WithCancelCause(d.ctx)
	c.quit = make(chan struct{})
	c.signal = make(chan struct{}, c.workers)
	d.metrics.init(c.name)
	c.gauge = d.metrics.queue.WithLabelValues(c.name)
	c.running.Store(int32(c.workers))
	for range c.workers {
		d.wg.Add(1)
		go d.worker(c)
	}
}

// retire stops c taking work, under d.mu: its workers return after the
// message each is delivering, and the messages still queued are returned
// to the caller, to move or drop. When the name is removed, every
// delivery to it is cancelled: c's, and those of the channels of the same
// name that earlier reloads replaced and that are still finishing an
// attempt with their old settings.
func (d *Dispatcher) retire(c *channel, removed bool) []*job {
	q := c.take()
	close(c.quit)
	d.retired[c.name] = append(d.retired[c.name], c)
	if removed {
		for _, r := range d.retired[c.name] {
			if !r.removed {
				r.removed = true
				r.cancel(errChannelRemoved)
			}
		}
	}
	return q
}

// worker delivers jobs until Stop, or until a reload retires its channel;
// on Stop it drains what is queued first, since those messages were
// already decided.
func (d *Dispatcher) worker(c *channel) {
	defer d.wg.Done()
	defer d.workerDone(c)
	for {
		for j := c.pop(); j != nil; j = c.pop() {
			d.deliver(c, j)
		}
		select {
		case <-c.signal:
		case <-c.quit:
			return
		case <-d.stopping:
			if j := c.pop(); j != nil {
				d.deliver(c, j)
				continue
			}
			return
		}
	}
}

// workerDone runs as each worker returns. The last one of a channel a
// reload removed deletes the channel's metric series, unless a later
// reload brought the name back or another retired channel of the name is
// still finishing: no stale series for a channel that is gone. They go
// only now, so that the message that was in flight is still counted
// somewhere until then.
func (d *Dispatcher) workerDone(c *channel) {
	if c.running.Add(-1) > 0 {
		return
	}
	c.cancel(context.Canceled) // releases the context; a no-op after a removal
	d.mu.Lock()
	defer d.mu.Unlock()
	rest := slices.DeleteFunc(d.retired[c.name], func(r *channel) bool { return r == c })
	if len(rest) == 0 {
		delete(d.retired, c.name)
	} else {
		d.retired[c.name] = rest
	}
	if _, live := d.byName[c.name]; c.removed && !live && len(rest) == 0 {
		d.metrics.forget(c.name)
	}
}

// deliver tries one job until it succeeds, fails permanently, or the
// delivery timeout passes; then records the outcome on the group.
func (d *Dispatcher) deliver(c *channel, j *job) {
	// The keys are the webhook payload's (Alertmanager's) names; the group
	// is printed as labels, never as the internal key with its separators.
	log := d.log.With("channel", c.name, "groupKey", j.key, "groupLabels", j.labels.String(),
		"alerts", len(j.alerts))
	d.mu.Lock()
	timeout, backoffBase, backoffMax := d.cfg.DeliveryTimeout, d.cfg.BackoffBase, d.cfg.BackoffMax
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	start := time.Now()
	var err error
	var thread string
	attempt := 0
	quit := c.quit
	// wait is the pause before the next attempt: a backoff, or a
	// Retry-After, first of all one that a hand-over brought with j.
	wait := time.Until(j.notBefore)
	for {
		if wait > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				err = errors.Join(err, errors.New("next attempt would be past the delivery deadline"))
				break
			}
			log.Debug("waiting for the next attempt", "attempts", attempt, "wait", wait, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
			case <-quit:
			}
			t.Stop()
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
				break
			}
			wait = 0
		}
		if (attempt > 0 || !j.notBefore.IsZero()) && quit != nil && closed(quit) {
			// A reload changed the channel's settings (a fixed URL, a
			// new token) while this message waited to be tried again:
			// the retry is the new sender's, with its own deadline, but
			// not before the time a Retry-After asked for: the receiver
			// limits its callers, not their settings.
			if d.handOver(c, j) {
				log.Info("notification handed to the channel's new settings for its retry", "attempts", attempt,
					"wait", max(0, time.Until(j.notBefore)), "err", err)
				return
			}
			if ctx.Err() != nil { // removed: no attempt with settings that are gone
				err = errors.Join(err, ctx.Err())
				break
			}
			quit = nil // stopping: the delivery carries on until Stop's deadline
			if wait = time.Until(j.notBefore); wait > 0 {
				continue
			}
		}
		attempt++
		d.metrics.attempts.WithLabelValues(c.name).Inc()
		var retry bool
		if cn, ok := c.n.(*captureNotifier); ok {
			thread, err = cn.capture(j.info, j.decidedAt, j.alerts), nil
		} else if gn, ok := c.n.(GroupNotifier); ok {
			var th string
			th, retry, err = gn.NotifyGroup(ctx, j.info, j.alerts...)
			if err == nil || delivered(err) {
				thread = th
			}
		} else {
			retry, err = c.n.Notify(ctx, j.alerts...)
		}
		// Before redaction, which keeps the error's text, not its type.
		tmplErr := errors.As(err, new(*msg.TemplateError))
		err = d.redactErr(err)
		if err == nil || delivered(err) {
			if err != nil {
				if tmplErr {
					d.metrics.templateErrors.WithLabelValues(c.name).Inc()
					log.Warn("template failed, sent fallback message", "err", err)
				} else {
					log.Warn("notification sent, but a step after it failed", "err", err)
				}
				err = nil
			}
			d.metrics.sent.WithLabelValues(c.name).Inc()
			d.metrics.latency.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
			log.Debug("notification sent", "attempts", attempt)
			break
		}
		again := retry && ctx.Err() == nil
		if again {
			wait, j.notBefore = backoff(backoffBase, backoffMax, attempt), time.Time{}
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) && ra.RetryAfter() > 0 {
				wait = ra.RetryAfter()
				j.notBefore = time.Now().Add(wait)
			}
		}
		log.Warn("delivery attempt failed", "attempt", attempt, "status", deliveryStatus(err),
			"next_attempt", d.nextAttempt(ctx, j, again, wait), "err", err)
		if !again {
			break
		}
	}
	switch {
	case err == nil:
	case errors.Is(context.Cause(c.ctx), errChannelRemoved):
		d.metrics.dropped.Inc()
		log.Warn("notification abandoned: its channel was removed", "attempts", attempt, "err", err)
	default:
		d.metrics.failed.WithLabelValues(c.name).Inc()
		log.Error("notification failed; will retry at the next group interval", "attempts", attempt, "err", err)
	}
	d.complete(j, err, thread)
}

// nextAttempt is when the message is tried again after a failed attempt:
// after wait within this delivery, else at the group's next flush (the
// next group interval), when the dispatcher decides again.
func (d *Dispatcher) nextAttempt(ctx context.Context, j *job, again bool, wait time.Duration) time.Time {
	next := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); again && (!ok || !next.After(dl)) {
		return next.UTC()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return j.group.nextFlush.UTC()
}

// deliveryStatus is the receiver's HTTP status when it answered one,
// else "error" (no answer: refused, timed out, a TLS failure...).
func deliveryStatus(err error) any {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && sc.StatusCode() > 0 {
		return sc.StatusCode()
	}
	return "error"
}

// handOver queues j on the channel that now has c's name and settings,
// under d.mu, so that it cannot race with another reload moving queues.
// It returns false when c was removed (or its successor was) or the
// dispatcher is stopping.
func (d *Dispatcher) handOver(c *channel, j *job) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := c.successor
	for s != nil && s.successor != nil {
		s = s.successor
	}
	if s == nil || s.removed || d.stopped {
		return false
	}
	s.enqueue(j)
	return true
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// redactErr passes a delivery error through the redactor (WithRedactor),
// keeping what the pipeline reads from it: Delivered and RetryAfter.
func (d *Dispatcher) redactErr(err error) error {
	red := d.o.redactor.Error(err)
	if red == err {
		return err
	}
	status, _ := deliveryStatus(err).(int)
	return &redactedErr{msg: red.Error(), delivered: delivered(err), retryAfter: retryAfter(err), status: status}
}

// redactedErr is a delivery error whose text held a secret: the text
// without it, and the answers the pipeline needs, but not the original.
type redactedErr struct {
	msg        string
	delivered  bool
	retryAfter time.Duration
	status     int // HTTP status, 0 if none
}

func (e *redactedErr) Error() string             { return e.msg }
func (e *redactedErr) Delivered() bool           { return e.delivered }
func (e *redactedErr) RetryAfter() time.Duration { return e.retryAfter }
func (e *redactedErr) StatusCode() int           { return e.status }

func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

func delivered(err error) bool {
	var dv interface{ Delivered() bool }
	return errors.As(err, &dv) && dv.Delivered()
}

// backoff is exponential with jitter in [d/2, d), capped at max.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Stop lets queued and in-flight deliveries finish within ctx, then
// cancels what is left and waits for every worker. Process is a no-op
// afterwards. Safe to call more than once.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		close(d.stopping)
		go func() { d.wg.Wait(); close(d.done) }()
	})
	select {
	case <-d.done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel() // attempts and backoff waits return at once
		<-d.done
		return ctx.Err()
	}
}
