package gateway

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listedCode is one error code as errorcodes.go or docs/api.md lists it.
type listedCode struct {
	ident    string // the Go name; "" in the docs
	statuses []string
}

var httpStatus = regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)

// codesInGo reads the codes declared in errorcodes.go, with the statuses
// their doc comments name.
func codesInGo(t *testing.T) map[string]listedCode {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errorcodes.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]listedCode{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || len(vs.Values) != 1 {
				t.Fatalf("errorcodes.go: declare one code per line, as name = errorCode{\"code\"}")
			}
			name := codeLiteral(vs.Values[0])
			if name == "" {
				t.Fatalf("errorcodes.go: %s is not errorCode{\"code\"}", vs.Names[0].Name)
			}
			if vs.Doc == nil {
				t.Errorf("errorcodes.go: %s has no doc comment saying when a client gets it", vs.Names[0].Name)
				continue
			}
			statuses := httpStatus.FindAllString(vs.Doc.Text(), -1)
			slices.Sort(statuses)
			if _, dup := codes[name]; dup {
				t.Errorf("errorcodes.go: %q is declared twice", name)
			}
			codes[name] = listedCode{ident: vs.Names[0].Name, statuses: slices.Compact(statuses)}
		}
	}
	return codes
}

// codeLiteral is the code of errorCode{"code"}, or "" for any other
// expression.
func codeLiteral(e ast.Expr) string {
	cl, ok := e.(*ast.CompositeLit)
	if !ok || len(cl.Elts) != 1 {
		return ""
	}
	if id, ok := cl.Type.(*ast.Ident); !ok || id.Name != "errorCode" {
		return ""
	}
	lit, ok := cl.Elts[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// codesInDocs reads the table under "### Error codes" in docs/api.md:
// | `code` | status[, status] | when |.
func codesInDocs(t *testing.T) map[string]listedCode {
	t.Helper()
	path := filepath.Join("..", "docs", "api.md")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	codes := map[string]listedCode{}
	inSection, inTable := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#"):
			inSection = line == "### Error codes"
			continue
		case !inSection:
			continue
		case !strings.HasPrefix(line, "|"):
			if inTable {
				inSection = false
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !inTable {
			inTable = true // the header row
			continue
		}
		if len(cells) != 3 {
			t.Fatalf("%s: row %q: want | code | status | when |", path, line)
		}
		code := strings.TrimSpace(cells[0])
		if code == "---" {
			continue
		}
		name, ok := strings.CutPrefix(code, "`")
		name, ok2 := strings.CutSuffix(name, "`")
		if !ok || !ok2 {
			t.Fatalf("%s: row %q: the code is not in backquotes", path, line)
		}
		statuses := httpStatus.FindAllString(cells[1], -1)
		slices.Sort(statuses)
		if _, dup := codes[name]; dup {
			t.Errorf("%s: %q is listed twice", path, name)
		}
		codes[name] = listedCode{statuses: statuses}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(codes) == 0 {
		t.Fatalf("%s has no table under \"### Error codes\"", path)
	}
	return codes
}

func TestErrorCodes_DocsTableListsExactlyTheCodesWithTheirStatuses(t *testing.T) {
	inGo, inDocs := codesInGo(t), codesInDocs(t)
	for name, c := range inGo {
		d, ok := inDocs[name]
		switch {
		case !ok:
			t.Errorf("%s (%q) is missing from the error codes table of docs/api.md", c.ident, name)
		case !slices.Equal(c.statuses, d.statuses):
			t.Errorf("%q: errorcodes.go says status %v, docs/api.md says %v", name, c.statuses, d.statuses)
		}
	}
	for name := range inDocs {
		if _, ok := inGo[name]; !ok {
			t.Errorf("docs/api.md lists %q, which errorcodes.go does not declare", name)
		}
	}
}

func TestErrorCodes_MadeOnlyInErrorcodesGoAndEachOneAnswered(t *testing.T) {
	declared := codesInGo(t)
	used := map[string]bool{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "errorcodes.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if code := codeLiteral(n); code != "" {
					t.Errorf("%s: errorCode{%q} made outside errorcodes.go: declare it there", fset.Position(n.Pos()), code)
				}
			case *ast.Ident:
				used[n.Name] = true
			}
			return true
		})
	}
	for name, c := range declared {
		if !used[c.ident] {
			t.Errorf("%s (%q) is declared but no answer uses it", c.ident, name)
		}
	}
}

// A code reaches the client as a plain JSON string, alone or beside other
// fields.
func TestErrorCodes_AnswerCarriesTheCodeAsAString(t *testing.T) {
	w := httptest.NewRecorder()
	jsonError(w, http.StatusNotFound, codeNotFound)
	if got, want := w.Body.String(), `{"error":"not_found"}`+"\n"; got != want {
		t.Errorf("jsonError wrote %q, want %q", got, want)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	w = httptest.NewRecorder()
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": codeLocked, "retry_after": 3})
	if got, want := w.Body.String(), `{"error":"locked","retry_after":3}`+"\n"; got != want {
		t.Errorf("writeJSON wrote %q, want %q", got, want)
	}
}
