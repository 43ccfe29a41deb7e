package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-alerts/vigil/model"
)

// sourcer stamps freshly compiled rules with their model.Source. It reads
// each rules path's git commit once per load, when a file under it is
// first compiled: a load that recompiles nothing reads no git.
type sourcer struct {
	paths   []string
	commits map[string]string
	errs    []error
}

func newSourcer(paths []string) *sourcer {
	return &sourcer{paths: paths, commits: map[string]string{}}
}

// stamp sets Source on every rule of groups, all compiled from file.
func (s *sourcer) stamp(file string, groups []*Group) {
	root, rel := s.locate(file)
	commit, ok := s.commits[root]
	if !ok {
		dir := root
		if st, err := os.Stat(root); err == nil && !st.IsDir() {
			dir = filepath.Dir(root)
		}
		c, err := Commit(dir)
		if err != nil {
			// Alerts still name file and line; the caller logs why the
			// commit is missing.
			s.errs = append(s.errs, fmt.Errorf("%s: reading the git commit: %w", root, err))
		}
		commit = c
		s.commits[root] = commit
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			r.Source = &model.Source{File: rel, Line: r.Pos.Line, Commit: commit}
		}
	}
}

// locate returns the rules path file was found under and file relative to
// it (a path naming the file itself gives its base name), so a source
// never shows the host's absolute paths.
func (s *sourcer) locate(file string) (root, rel string) {
	for _, p := range s.paths {
		if file == p {
			return p, filepath.Base(file)
		}
		if r, err := filepath.Rel(p, file); err == nil && r != "." && !strings.HasPrefix(r, "..") {
			return p, filepath.ToSlash(r)
		}
	}
	return filepath.Dir(file), filepath.Base(file)
}
