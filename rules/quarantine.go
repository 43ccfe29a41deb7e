package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"
)

// Per-file quarantine: a running Vigil reloads its rules one file at a
// time, so that one team's syntax error does not hold back every other
// team's fix. LoadEach compiles every file that changed on its own; a file
// that does not load keeps the version the previous set had (its last good
// version) and is reported, while every other file's edits apply.
//
// Cross-file mistakes (a group or rule name used twice, an inhibits: naming
// a rule that is gone) are blamed on the newer file, which is decided
// thus: a file whose contents are the ones already in use is older than
// any file that changed since; among the changed files (new ones
// included), the one modified earlier (mtime) is older, and on equal
// mtimes the one whose path sorts first. The newer file is quarantined
// and falls back to its last good version when that still fits.

// Quarantined is a rule file that does not load.
type Quarantined struct {
	File string
	// Errors say why, each with file:line:col where there is a place.
	Errors Errors
	// Running is true when the file's last good version is in the set;
	// false for a file that never loaded, or whose last good version no
	// longer fits with the others.
	Running bool
}

// Loaded is what LoadEach produced.
type Loaded struct {
	// Set is every file's newest version that loads, and the last good
	// version of the files that do not.
	Set *RuleSet
	// Quarantined lists the files that do not load, by path.
	Quarantined []Quarantined
	// Warnings are cross-file problems that quarantine nothing: a file in
	// use whose inhibits: names a rule that went with a deleted file.
	Warnings []string
	// CommitErrors say why a rules path's git commit could not be read;
	// its rules load all the same, their Source without a commit.
	CommitErrors []error
}

// fileVersion is one file's compiled groups.
type fileVersion struct {
	file   string
	sum    string
	groups []*Group
	fresh  bool // compiled by this load, not the previous set's
	mtime  time.Time
}

// LoadEach loads the rule files under paths one by one. prev is the set in
// use (nil at start): a file whose contents are unchanged keeps prev's
// compiled version, and a file that does not load keeps prev's version of
// it, if any. check, when not nil, validates each changed file on its own
// (the config checks that its notify: channels exist); its errors
// quarantine the file. The error is for what stops the whole load: a rule
// directory that cannot be listed.
func LoadEach(prev *RuleSet, check func(*RuleSet) error, paths ...string) (*Loaded, error) {
	files, err := Files(paths...)
	if err != nil {
		return nil, err
	}
	c, err := newCompiler()
	if err != nil {
		return nil, err
	}
	src := newSourcer(paths)
	running := map[string]*fileVersion{}
	if prev != nil {
		for _, g := range prev.Groups {
			v := running[g.File]
			if v == nil {
				v = &fileVersion{file: g.File, sum: prev.Sums[g.File]}
				running[g.File] = v
			}
			v.groups = append(v.groups, g)
		}
	}
	bad := map[string]Errors{} // files that do not load alone
	var base, fresh []*fileVersion
	for _, f := range files {
		old := running[f]
		b, err := os.ReadFile(f)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			bad[f] = Errors{{File: f, Msg: "cannot read: " + err.Error()}}
		} else {
			sum := checksum(b)
			if old != nil && old.sum == sum {
				base = append(base, old)
				continue
			}
			v, errs := c.compileFile(f, b, check)
			if len(errs) == 0 {
				// Stamped here, not per load: an unchanged file keeps the
				// commit it was loaded at, a quarantined one its last good
				// version's.
				src.stamp(f, v.groups)
				v.sum = sum
				if st, err := os.Stat(f); err == nil {
					v.mtime = st.ModTime()
				}
				fresh = append(fresh, v)
				continue
			}
			bad[f] = errs
		}
		if old != nil {
			base = append(base, old)
		}
	}
	// Older first: files is sorted by path, and a stable sort keeps that
	// order among equal mtimes.
	sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].mtime.Before(fresh[j].mtime) })

	// Assemble, then check inhibits: across files; a changed file that a
	// dangling inhibits: is blamed on is demoted to its last good version
	// and the set assembled again. Each round demotes one more file.
	demoted := map[string]Errors{}
	var (
		in       []*fileVersion
		clashes  map[string]Errors
		warnings []string
	)
	for {
		in, clashes = assemble(base, fresh, running, demoted)
		var culprit string
		var why Errors
		culprit, why, warnings = checkInhibits(in, running)
		if culprit == "" {
			break
		}
		demoted[culprit] = why
	}

	out := &Loaded{Set: &RuleSet{Sums: map[string]string{}}, Warnings: warnings, CommitErrors: src.errs}
	sort.Slice(in, func(i, j int) bool { return in[i].file < in[j].file })
	inSet := map[string]bool{}
	for _, v := range in {
		inSet[v.file] = true
		out.Set.Files = append(out.Set.Files, v.file)
		out.Set.Sums[v.file] = v.sum
		out.Set.Groups = append(out.Set.Groups, v.groups...)
	}
	for _, r := range out.Set.Rules() {
		out.Set.MaxWindow = max(out.Set.MaxWindow, r.Window)
	}
	why := map[string]Errors{}
	for _, m := range []map[string]Errors{bad, clashes, demoted} {
		for f, errs := range m {
			why[f] = append(why[f], errs...)
		}
	}
	for f, errs := range why {
		sortErrors(errs, files)
		out.Quarantined = append(out.Quarantined, Quarantined{File: f, Errors: errs, Running: inSet[f]})
	}
	sort.Slice(out.Quarantined, func(i, j int) bool { return out.Quarantined[i].File < out.Quarantined[j].File })
	return out, nil
}

// compileFile compiles one file alone: its groups, its own names and check.
func (c *compiler) compileFile(file string, data []byte, check func(*RuleSet) error) (*fileVersion, Errors) {
	groups, errs := c.parseFile(file, data)
	errs = append(errs, validateNames(groups)...)
	if len(errs) == 0 && check != nil {
		if err := check(&RuleSet{Groups: groups, Files: []string{file}}); err != nil {
			var es Errors
			if errors.As(err, &es) {
				errs = append(errs, es...)
			} else {
				errs = append(errs, &Error{File: file, Msg: err.Error()})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &fileVersion{file: file, groups: groups, fresh: true}, nil
}

// assemble takes the versions in use first (they loaded together before),
// then the changed files, older first. A changed file whose names clash
// with what was taken, or that is in demoted, falls back to its last good
// version if that fits, or is left out. clashes says why, per file.
func assemble(base, fresh []*fileVersion, running map[string]*fileVersion, demoted map[string]Errors) (in []*fileVersion, clashes map[string]Errors) {
	groups := map[string]*Group{}
	rules := map[string]*Rule{}
	clashes = map[string]Errors{}
	fits := func(v *fileVersion) Errors {
		var errs Errors
		for _, g := range v.groups {
			if prev, ok := groups[g.Name]; ok {
				errs = append(errs, &Error{File: g.File, Pos: g.Pos,
					Msg: fmt.Sprintf("group %q: duplicate group name, first defined at %s:%d:%d", g.Name, prev.File, prev.Pos.Line, prev.Pos.Column)})
			}
			for _, r := range g.Rules {
				if prev, ok := rules[r.Name]; ok {
					errs = append(errs, &Error{File: r.File, Pos: r.Pos, Rule: r.Name,
						Msg: fmt.Sprintf("duplicate rule name, first defined at %s:%d:%d", prev.File, prev.Pos.Line, prev.Pos.Column)})
				}
			}
		}
		return errs
	}
	take := func(v *fileVersion) {
		for _, g := range v.groups {
			groups[g.Name] = g
			for _, r := range g.Rules {
				rules[r.Name] = r
			}
		}
		in = append(in, v)
	}
	for _, v := range base {
		// Versions that were in one set together do not clash; a
		// caller's prev from elsewhere might.
		if errs := fits(v); len(errs) > 0 {
			clashes[v.file] = errs
			continue
		}
		take(v)
	}
	for _, v := range fresh {
		if _, ok := demoted[v.file]; !ok {
			errs := fits(v)
			if len(errs) == 0 {
				take(v)
				continue
			}
			clashes[v.file] = errs
		}
		if old := running[v.file]; old != nil && len(fits(old)) == 0 {
			take(old)
		}
	}
	return in, clashes
}

// checkInhibits finds an inhibits: naming a rule not in the set and says
// which changed file is to blame: the inhibiting file if it changed, else
// the changed file whose last good version had the rule. A rule that went
// with a deleted file blames nobody: it is a warning.
func checkInhibits(in []*fileVersion, running map[string]*fileVersion) (culprit string, why Errors, warnings []string) {
	names := map[string]bool{}
	fresh := map[string]bool{}
	for _, v := range in {
		fresh[v.file] = v.fresh
		for _, g := range v.groups {
			for _, r := range g.Rules {
				names[r.Name] = true
			}
		}
	}
	owner := map[string]string{} // rule name -> file, in the previous set
	for f, v := range running {
		for _, g := range v.groups {
			for _, r := range g.Rules {
				owner[r.Name] = f
			}
		}
	}
	sorted := append([]*fileVersion(nil), in...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].file < sorted[j].file })
	for _, v := range sorted {
		for _, g := range v.groups {
			for _, r := range g.Rules {
				if r.Inhibit == nil {
					continue
				}
				for _, t := range r.Inhibit.Rules {
					if names[t] {
						continue
					}
					if v.fresh {
						return v.file, Errors{{File: r.File, Pos: r.Pos, Rule: r.Name,
							Msg: fmt.Sprintf("inhibits: no rule named %q", t)}}, nil
					}
					if f, ok := owner[t]; ok && fresh[f] {
						return f, Errors{{File: f, Msg: fmt.Sprintf("rule %q is gone, but %s:%d:%d rule %q inhibits it: change that inhibits: first, or keep the rule",
							t, r.File, r.Pos.Line, r.Pos.Column, r.Name)}}, nil
					}
					warnings = append(warnings, fmt.Sprintf("%s:%d:%d: rule %q: inhibits: no rule named %q (it went with a deleted or quarantined file); it inhibits nothing until that rule is back",
						r.File, r.Pos.Line, r.Pos.Column, r.Name, t))
				}
			}
		}
	}
	return "", nil, warnings
}

func checksum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
