package engine

import (
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// activation binds a condition's aggregate variables (_a0, _a1...) and
// `labels`. One is reused for every segment of a rule: a fresh map per
// segment costs about three times as much.
type activation struct {
	vals   []ref.Val
	labels ref.Val
}

func (a *activation) ResolveName(name string) (any, bool) {
	if len(name) > 2 && name[0] == '_' && name[1] == 'a' {
		i := 0
		for _, c := range name[2:] {
			i = i*10 + int(c-'0')
		}
		if i < len(a.vals) {
			return a.vals[i], true
		}
		return nil, false
	}
	if name == "labels" && a.labels != nil {
		return a.labels, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// scopeActivation binds a series' labels and metric name for a scope.
type scopeActivation struct {
	labels ref.Val
	metric ref.Val
}

func (a *scopeActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "labels":
		return a.labels, true
	case "metric":
		return a.metric, true
	}
	return nil, false
}

func (a *scopeActivation) Parent() interpreter.Activation { return nil }
