package rules

import "unicode/utf8"

// sources keeps where a rule's fields are written, so checks made after
// loading (the metric catalogue, `vigil check --config`) can point at
// file:line:col.
type sources struct {
	lines       [][]byte
	condition   str
	scope       str
	segmentBy   []str
	annotations map[string]str
}

func (r *Rule) keepSources(lines [][]byte, rn *ruleNode) {
	r.src = &sources{lines: lines, condition: rn.Condition, scope: rn.Scope, segmentBy: rn.SegmentBy,
		annotations: rn.Annotations}
}

// ConditionPos is where the byte at offset of the condition's source is
// written in the rule file.
func (r *Rule) ConditionPos(offset int) Pos {
	if r.src == nil || r.Condition == nil {
		return r.Pos
	}
	return textPos(r.src.lines, r.src.condition, r.Condition.Source, offset)
}

// ScopePos is where the byte at offset of the scope's source is written.
func (r *Rule) ScopePos(offset int) Pos {
	if r.src == nil || r.Scope == nil {
		return r.Pos
	}
	return textPos(r.src.lines, r.src.scope, r.Scope.Source, offset)
}

// SegmentByPos is where segment_by's i-th label is written.
func (r *Rule) SegmentByPos(i int) Pos {
	if r.src == nil || i >= len(r.src.segmentBy) {
		return r.Pos
	}
	return r.src.segmentBy[i].Pos
}

// AnnotationPos is where annotation name's text is written.
func (r *Rule) AnnotationPos(name string) Pos {
	if r.src == nil {
		return r.Pos
	}
	if s, ok := r.src.annotations[name]; ok {
		return s.Pos
	}
	return r.Pos
}

// textPos turns a byte offset in text into the line and column (in
// characters, from 1) CEL would report, then into the file's position.
func textPos(lines [][]byte, s str, text string, offset int) Pos {
	if offset > len(text) {
		offset = len(text)
	}
	line, col := 1, 1
	for i := 0; i < offset; {
		c, size := utf8.DecodeRuneInString(text[i:])
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return celPos(lines, s, celError{Line: line, Column: col})
}
