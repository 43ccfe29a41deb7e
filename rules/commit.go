package rules

import (
	"errors"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Commit returns the HEAD commit hash of the git repository holding dir,
// or "" when dir is not in one. Symlinks are resolved first so git-sync's
// layout (rules dir a symlink into a worktree whose .git is a file naming
// the repository's worktrees dir) finds the worktree's own HEAD.
func Commit(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	head, err := repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", nil // a repository with no commit yet
	}
	if err != nil {
		return "", err
	}
	return head.Hash().String(), nil
}
