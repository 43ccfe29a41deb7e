package notifiers

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// channel is one named destination with its own queue and workers, so a
// slow or dead receiver only delays itself.
type channel struct {
	name         string
	idx          int
	n            Notifier
	sendResolved bool
	workers      int

	mu     sync.Mutex
	queue  []*job
	signal chan struct{} // capacity = workers; a token means "look at the queue"
}

// job is one message: a snapshot of a group taken when Process decided to
// send it.
type job struct {
	group     *group
	alerts    []model.Alert
	firing    []string
	resolved  []string
	decidedAt time.Time
}

func (c *channel) enqueue(j *job) {
	c.mu.Lock()
	c.queue = append(c.queue, j)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default: // every worker already has a token and will drain the queue
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
	return j
}

func (c *channel) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// start launches the workers; Stop is their owner's stop and wait.
func (d *Dispatcher) start() {
	for _, c := range d.chans {
		for range c.workers {
			d.wg.Add(1)
			go d.worker(c)
		}
	}
}

// worker delivers jobs until Stop; on Stop it drains what is queued first,
// since those messages were already decided.
func (d *Dispatcher) worker(c *channel) {
	defer d.wg.Done()
	for {
		for j := c.pop(); j != nil; j = c.pop() {
			d.metrics.queue.WithLabelValues(c.name).Set(float64(c.len()))
			d.deliver(c, j)
		}
		select {
		case <-c.signal:
		case <-d.stopping:
			if j := c.pop(); j != nil {
				d.deliver(c, j)
				continue
			}
			return
		}
	}
}

// deliver tries one job until it succeeds, fails permanently, or the
// delivery timeout passes; then records the outcome on the group.
func (d *Dispatcher) deliver(c *channel, j *job) {
	log := d.log.With("channel", c.name, "group", j.group.key.key, "alerts", len(j.alerts))
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.DeliveryTimeout)
	defer cancel()
	start := time.Now()
	var err error
	attempt := 0
	for {
		attempt++
		d.metrics.attempts.WithLabelValues(c.name).Inc()
		var retry bool
		retry, err = c.n.Notify(ctx, j.alerts...)
		if err == nil || delivered(err) {
			if err != nil {
				d.metrics.templateErrors.WithLabelValues(c.name).Inc()
				log.Warn("template failed, sent fallback message", "err", err)
				err = nil
			}
			d.metrics.sent.WithLabelValues(c.name).Inc()
			d.metrics.latency.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
			log.Debug("notification sent", "attempts", attempt)
			break
		}
		if !retry || ctx.Err() != nil {
			break
		}
		wait := backoff(d.cfg.BackoffBase, d.cfg.BackoffMax, attempt)
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			wait = ra.RetryAfter()
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			err = errors.Join(err, errors.New("next attempt would be past the delivery deadline"))
			break
		}
		log.Debug("notification attempt failed, retrying", "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
			break
		}
	}
	if err != nil {
		d.metrics.failed.WithLabelValues(c.name).Inc()
		log.Error("notification failed; will retry at the next group interval", "attempts", attempt, "err", err)
	}
	d.complete(j, err)
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
