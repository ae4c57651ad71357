package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/corpintel/corpintel/"

// rule forbids files under dir (relative to the module root) to import paths with
// one of the prefixes, except files under one of allow.
type rule struct {
	why    string
	dir    string
	banned []string
	allow  []string
}

var rules = []rule{
	{why: "only internal/docker may use the Docker SDK", dir: "", banned: []string{"github.com/docker/", "github.com/moby/"}, allow: []string{"internal/docker/"}},
	{why: "internal/ imports nothing above it", dir: "internal/", banned: []string{module + "supervisor", module + "api", module + "jobs", module + "console", module + "bundles", module + "cmd"}},
	{why: "the API is the workload, not the appliance", dir: "api/", banned: []string{module + "supervisor", module + "console", module + "jobs", module + "bundles"}},
	{why: "jobs/ declares what it needs from the supervisor as interfaces", dir: "jobs/", banned: []string{module + "supervisor", module + "console"}},
	{why: "the console declares the operations it needs as an interface", dir: "console/", banned: []string{module + "supervisor"}},
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

func TestImportRules(t *testing.T) {
	root := moduleRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range rules {
				if !strings.HasPrefix(rel, r.dir) || hasPrefix(rel, r.allow) || !hasPrefix(p, r.banned) {
					continue
				}
				t.Errorf("%s imports %s: %s", rel, p, r.why)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files found under %s", files, root)
	}
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// The rules themselves must be able to fail: a file that breaks each is caught.
func TestRulesCatchViolations(t *testing.T) {
	cases := map[string]string{"supervisor/x.go": "github.com/docker/docker/client", "internal/x/x.go": module + "supervisor/state", "api/x.go": module + "supervisor"}
	for file, imp := range cases {
		caught := false
		for _, r := range rules {
			if strings.HasPrefix(file, r.dir) && !hasPrefix(file, r.allow) && hasPrefix(imp, r.banned) {
				caught = true
			}
		}
		if !caught {
			t.Errorf("%s importing %s not caught", file, imp)
		}
	}
}
