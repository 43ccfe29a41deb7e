package collectors

import (
	"fmt"
	"slices"
)

// Selection is the metrics a collector keeps. Rules read a handful of
// what targets expose: `vigil run` gives each collector the metrics its
// rules read (Select), so the rest is neither parsed nor stored. The
// self-metrics (vigil.collector.*) are always kept.
type Selection struct {
	all   bool
	names map[string]bool
	list  []string // sorted
}

// Everything keeps every metric: what a collector does until Select is
// called, and what a recorder of whole pages asks for.
func Everything() Selection { return Selection{all: true} }

// Only keeps the named metrics.
func Only(names ...string) Selection {
	s := Selection{names: make(map[string]bool, len(names))}
	for _, n := range names {
		if !s.names[n] {
			s.names[n] = true
			s.list = append(s.list, n)
		}
	}
	slices.Sort(s.list)
	return s
}

// Keeps reports whether metric is kept.
func (s Selection) Keeps(metric string) bool { return s.all || s.names[metric] }

// All reports whether every metric is kept.
func (s Selection) All() bool { return s.all }

// Names lists the metrics kept, sorted; nil when all are.
func (s Selection) Names() []string { return s.list }

func (s Selection) String() string {
	if s.all {
		return "everything"
	}
	return fmt.Sprint(s.list)
}

// metricsSetter is a scraper that can skip work for metrics not kept.
type metricsSetter interface {
	SetMetrics(all bool, metrics []string)
}

// Select makes the next collections keep only what sel keeps. A source
// that can (etcd, prometheus) stops fetching or parsing the rest; the
// others' samples are dropped before they are stored. Safe while
// collecting.
func (c *TargetCollector) Select(sel Selection) {
	c.sel.Store(&sel)
	if ms, ok := c.scraper.(metricsSetter); ok {
		ms.SetMetrics(sel.all, sel.list)
	}
}

// Selection returns what the collector keeps.
func (c *TargetCollector) Selection() Selection {
	if p := c.sel.Load(); p != nil {
		return *p
	}
	return Everything()
}
