package ruletest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Rules kept in git: a golden file shows the rule's file and line, not the
// commit, so it does not change with every commit of the repository.
func TestGoldenFilesOmitTheCommit(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(deliveryRules), 0o644)
	path := filepath.Join(dir, "rules_test.yaml")
	os.WriteFile(path, []byte("rule_files: [rules.yaml]\n"+deliveryNotifiers+"tests:\n  - name: t\n"+oneDown+`    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: page.json}]
`), 0o644)
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	c, err := wt.Commit("rules", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@x", When: time.Unix(0, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := RunWith(&bytes.Buffer{}, Options{Update: true}, path); err != nil || res.Failed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "page.json"))
	if !strings.Contains(string(b), `"file": "rules.yaml"`) || strings.Contains(string(b), c.String()[:8]) {
		t.Errorf("golden file, want the source without commit %s:\n%s", c, b)
	}
}
