package layout

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/vigil-alerts/vigil/"

// rank of each package tree: a package may import only trees of a lower
// rank, or its own tree. The longest matching prefix wins.
var rank = map[string]int{
	"internal":         0,
	"model":            1,
	"internal/testkit": 2,
	"rules":            2,
	"silences":         2,
	"recording":        2,
	"engine":           3,
	"collectors":       3,
	"notifiers":        3,
	"ruletest":         4,
	"ha":               4,
	"replay":           4,
	"promimport":       2, // reads Prometheus rules, writes Vigil YAML
	"deploy":           6, // manifests and their tests only
	"config":           5,
	"cmd":              6,
}

func rankOf(pkg string) (string, int, bool) {
	best := ""
	for tree := range rank {
		if (pkg == tree || strings.HasPrefix(pkg, tree+"/")) && len(tree) > len(best) {
			best = tree
		}
	}
	if best == "" {
		return "", 0, false
	}
	return best, rank[best], true
}

// TestImportsGoOneWay reads every package's non-test imports and fails on
// one that points up the layers (engine importing config, rules importing
// engine...), or a package in a tree the table does not place.
func TestImportsGoOneWay(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		name := d.Name()
		if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bench" && rel == "bench") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		pkg := filepath.ToSlash(rel)
		tree, r, ok := rankOf(pkg)
		if !ok {
			t.Errorf("%s: not placed in the layers; add its tree to rank", pkg)
			return nil
		}
		checked++
		for _, imp := range p.Imports {
			dep, found := strings.CutPrefix(imp, module)
			if !found {
				continue
			}
			depTree, dr, ok := rankOf(dep)
			if !ok {
				t.Errorf("%s imports %s, which is not placed in the layers", pkg, dep)
				continue
			}
			if depTree != tree && dr >= r && !strings.HasPrefix(dep, tree+"/") {
				t.Errorf("%s (%s, layer %d) imports %s (%s, layer %d): imports must go down the layers", pkg, tree, r, dep, depTree, dr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages; is the walk reading the module?", checked)
	}
}
