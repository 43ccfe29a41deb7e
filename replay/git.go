package replay

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/vigil-alerts/vigil/rules"
)

// MaxRuleFile bounds one rule file read from git, as the loader bounds
// files on disk.
const MaxRuleFile = 4 << 20

// LoadRevision loads the rule files under path (a file or directory
// inside a git working tree) as they were at revision rev (a commit, tag,
// branch, "HEAD~1"...). It returns the rules and the commit's short hash.
// File names in errors read "path@hash", so a bad old file is not taken
// for the one on disk.
func LoadRevision(path, rev string) (*rules.RuleSet, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, "", fmt.Errorf("%s: not in a git repository: %w", path, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	root := wt.Filesystem.Root()
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if a, err := filepath.EvalSymlinks(abs); err == nil {
		abs = a
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, "", fmt.Errorf("%s: outside the repository at %s", path, root)
	}
	rel = filepath.ToSlash(rel)
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, "", fmt.Errorf("revision %q: %w", rev, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return nil, "", fmt.Errorf("revision %q: %w", rev, err)
	}
	short := h.String()[:12]
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", err
	}
	var files []string
	contents := map[string][]byte{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if rel != "." && f.Name != rel && !strings.HasPrefix(f.Name, rel+"/") {
			return nil
		}
		if !rules.IsRuleFile(f.Name) || hiddenDir(f.Name, rel) {
			return nil
		}
		if f.Size > MaxRuleFile {
			return fmt.Errorf("%s@%s: %d bytes, more than a rule file may have (%d)", f.Name, short, f.Size, MaxRuleFile)
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, MaxRuleFile+1))
		if err != nil {
			return err
		}
		name := f.Name + "@" + short
		files = append(files, name)
		contents[name] = b
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("%s: no rule files at revision %s", rel, rev)
	}
	rs, err := rules.Parse(files, contents)
	return rs, short, err
}

// hiddenDir says whether name sits in a dot-directory below the root
// path, which the loader skips on disk too.
func hiddenDir(name, root string) bool {
	rest := strings.TrimPrefix(name, root+"/")
	parts := strings.Split(rest, "/")
	for _, p := range parts[:len(parts)-1] {
		if strings.HasPrefix(p, ".") {
			return true
		}
	}
	return false
}
