package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/bootstrap"
	"seckill/app/httpapi"
)

// The docs test checks README.md, DEVELOPERS.md and docs/*.md against the
// code: every `make` target they name exists, every --flag is a flag of
// some seckill command, every Redis key is one the code builds (and
// docs/ARCHITECTURE.md names every one the code builds), and the
// README's error-code table lists exactly the codes of app/httpapi's error
// table. The facts come from the code itself (the Makefile, main's command
// tree, the adapters' key builders, httpapi.ErrorCodes), never from a copy.

const repoRoot = "../../.."

// foreignFlags are flags of other programs that the docs quote, with their
// owner; they are not checked against seckill's.
var foreignFlags = map[string]string{
	"appendonly": "redis-server", "appendfsync": "redis-server", "save": "redis-server",
	"port": "redis-server", "cluster-enabled": "redis-server", "cluster-config-file": "redis-server", "cluster-node-timeout": "redis-server",
	"cluster": "redis-cli --cluster create", "cluster-replicas": "redis-cli --cluster create", "cluster-yes": "redis-cli --cluster create",
	"cluster-from": "redis-cli --cluster reshard", "cluster-to": "redis-cli --cluster reshard", "cluster-slots": "redis-cli --cluster reshard",
	"build": "docker compose up", "profile": "docker compose", "rm": "docker compose run",
	"describe": "kafka-consumer-groups.sh", "group": "kafka-consumer-groups.sh",
	"bootstrap-server": "kafka-console-consumer.sh", "topic": "kafka-console-consumer.sh",
	"from-beginning": "kafka-console-consumer.sh", "property": "kafka-console-consumer.sh",
	"latency": "wrk",
	"name":    "the placeholder in docs/CONFIG.md's `--name=value`",
}

// Placeholders the docs use in key patterns, and what the code is asked to
// build them with.
const (
	keyPrefix   = "<p>"
	keyItem     = 4242 // stands for <id>
	keyUser     = "<user>"
	docsItem    = "<id>"
	docsPrefix2 = "<prefix>" // also written for the prefix
)

// docFacts is what the code says exists.
type docFacts struct {
	targets map[string]bool
	flags   map[string]bool
	keys    map[string]bool // normalised to <p> and <id>
	codes   map[string]bool
}

func codeFacts(t *testing.T) docFacts {
	t.Helper()
	f := docFacts{targets: map[string]bool{}, flags: map[string]bool{}, keys: map[string]bool{}, codes: map[string]bool{}}
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^([a-z0-9][a-z0-9_-]*):`).FindAllStringSubmatch(string(mk), -1) {
		f.targets[m[1]] = true
	}
	// Every command's flags, found by walking the tree main builds, plus
	// --help, which the flag package answers for every command.
	f.flags["help"] = true
	// Subcommands of subcommands too (seckill lab run --scale).
	var walk func(c *ffcli.Command)
	walk = func(c *ffcli.Command) {
		c.FlagSet.VisitAll(func(fl *flag.Flag) { f.flags[fl.Name] = true })
		for _, sub := range c.Subcommands {
			walk(sub)
		}
	}
	walk(newRoot(io.Discard, io.Discard))
	for _, k := range bootstrap.RedisKeyPatterns(keyPrefix, keyItem, keyUser) {
		f.keys[strings.ReplaceAll(k, fmt.Sprint(keyItem), docsItem)] = true
	}
	for _, c := range httpapi.ErrorCodes() {
		f.codes[c] = true
	}
	return f
}

// readDocs returns the docs by path relative to the repository root.
func readDocs(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, filepath.Join(repoRoot, "README.md"), filepath.Join(repoRoot, "DEVELOPERS.md"))
	docs := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, p)
		docs[rel] = string(b)
	}
	return docs
}

var (
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	flagRef  = regexp.MustCompile(`(?:^|[^\w-])--([a-z][a-z0-9-]*)`)
)

// codeSegments returns the code of a Markdown text: each `span`, and each
// line of a fenced block.
func codeSegments(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			out = append(out, line)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// makeTargets returns the targets named after `make` in a code segment,
// skipping options and VAR=value; a name ending in * is a prefix.
func makeTargets(seg string) []string {
	var out []string
	words := strings.Fields(seg)
	for i, w := range words {
		if w != "make" {
			continue
		}
		for _, next := range words[i+1:] {
			if strings.HasPrefix(next, "-") || strings.Contains(next, "=") {
				continue
			}
			if name := strings.TrimRight(next, ");,.:"); !strings.ContainsAny(name, "<$") && name != "" {
				out = append(out, name)
			}
			break
		}
	}
	return out
}

// readmeErrorCodes returns the codes in the README's error table, the one
// whose header is | Code | Status | Code | Status |, and whether it was found.
func readmeErrorCodes(readme string) (map[string]bool, bool) {
	lines := strings.Split(readme, "\n")
	for i, line := range lines {
		if strings.ReplaceAll(line, " ", "") != "|Code|Status|Code|Status|" {
			continue
		}
		codes := map[string]bool{}
		for _, row := range lines[i+2:] {
			if !strings.HasPrefix(row, "|") {
				break
			}
			cells := strings.Split(row, "|")
			for _, col := range []int{1, 3} { // the Code columns
				if col < len(cells) {
					for _, m := range codeSpan.FindAllStringSubmatch(cells[col], -1) {
						codes[m[1]] = true
					}
				}
			}
		}
		return codes, true
	}
	return nil, false
}

// checkDocs returns one line per name the docs get wrong.
func checkDocs(docs map[string]string, f docFacts) []string {
	var problems []string
	for _, p := range sortedKeys(docsSet(docs)) {
		text := docs[p]
		for _, seg := range codeSegments(text) {
			for _, tg := range makeTargets(seg) {
				if !hasName(f.targets, tg) {
					problems = append(problems, fmt.Sprintf("%s: `make %s`: no such target in the Makefile", p, tg))
				}
			}
			k := strings.ReplaceAll(strings.TrimSpace(seg), docsPrefix2, keyPrefix)
			if strings.HasPrefix(k, keyPrefix+":") || strings.HasPrefix(k, "rate:"+keyPrefix+":") {
				if !f.keys[k] {
					problems = append(problems, fmt.Sprintf("%s: Redis key `%s`: the code builds no such key", p, seg))
				}
			}
		}
		for _, m := range flagRef.FindAllStringSubmatch(text, -1) {
			name := m[1]
			if _, ok := foreignFlags[name]; ok {
				continue
			}
			// "--kafka-*" names a family: some flag must start with "kafka-".
			want := name
			if strings.HasSuffix(name, "-") {
				want = name + "*"
			}
			if !hasName(f.flags, want) {
				problems = append(problems, fmt.Sprintf("%s: --%s: no seckill command has this flag", p, name))
			}
		}
	}
	// The other way round for keys: the key table in ARCHITECTURE names
	// every key the code builds.
	if arch, ok := docs["docs/ARCHITECTURE.md"]; ok {
		named := map[string]bool{}
		for _, seg := range codeSegments(arch) {
			named[strings.ReplaceAll(strings.TrimSpace(seg), docsPrefix2, keyPrefix)] = true
		}
		for _, k := range sortedKeys(f.keys) {
			if !named[k] {
				problems = append(problems, fmt.Sprintf("docs/ARCHITECTURE.md: the code builds Redis key `%s`, which the key table does not name", k))
			}
		}
	}
	table, ok := readmeErrorCodes(docs["README.md"])
	if !ok {
		return append(problems, "README.md: no error-code table (| Code | Status | Code | Status |)")
	}
	for _, c := range sortedKeys(table) {
		if !f.codes[c] {
			problems = append(problems, fmt.Sprintf("README.md: error code `%s` is not in app/httpapi/errors.go", c))
		}
	}
	for _, c := range sortedKeys(f.codes) {
		if !table[c] {
			problems = append(problems, fmt.Sprintf("README.md: error code `%s` from app/httpapi/errors.go is missing from the table", c))
		}
	}
	return problems
}

func docsSet(docs map[string]string) map[string]bool {
	set := map[string]bool{}
	for p := range docs {
		set[p] = true
	}
	return set
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hasName reports whether name is in set; "x*" asks whether some name
// starts with "x".
func hasName(set map[string]bool, name string) bool {
	prefix, ok := strings.CutSuffix(name, "*")
	if !ok {
		return set[name]
	}
	for n := range set {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

func TestDocsMatchTheCode(t *testing.T) {
	t.Parallel()
	for _, p := range checkDocs(readDocs(t), codeFacts(t)) {
		t.Error(p)
	}
}

// Each kind of wrong name, planted in otherwise real docs, is reported, and
// nothing else is.
func TestDocsCheckCatchesPlantedNames(t *testing.T) {
	t.Parallel()
	facts := codeFacts(t)
	for _, tc := range []struct {
		name, file, text, want string
	}{
		{"missing make target", "docs/PLANTED.md", "Run `make no-such-target` first.", "`make no-such-target`: no such target"},
		{"missing target after options", "docs/PLANTED.md", "```sh\nK6=/opt/k6 make -n no-such-target\n```", "`make no-such-target`: no such target"},
		{"missing flag", "docs/PLANTED.md", "Pass --no-such-flag to seckill.", "--no-such-flag: no seckill command"},
		{"missing flag family", "docs/PLANTED.md", "Every `--nosuch-*` flag.", "--nosuch-: no seckill command"},
		{"missing key", "docs/PLANTED.md", "| `<p>:{item:<id>}:no-such-key` | hash |", "Redis key `<p>:{item:<id>}:no-such-key`"},
		{"missing key, other prefix spelling", "docs/PLANTED.md", "`<prefix>:no-such-channel`", "Redis key `<prefix>:no-such-channel`"},
		{"code not in errors.go", "README.md", "| `no_such_code` | 418 | | |", "error code `no_such_code` is not in app/httpapi/errors.go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := readDocs(t)
			if tc.file == "README.md" {
				// Add the row to the error table itself.
				docs[tc.file] = strings.Replace(docs[tc.file], "| `headers_too_large` |", tc.text+"\n| `headers_too_large` |", 1)
			} else {
				docs[tc.file] = tc.text
			}
			got := checkDocs(docs, facts)
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Errorf("problems %q, want exactly one containing %q", got, tc.want)
			}
		})
	}
	t.Run("key missing from the key table", func(t *testing.T) {
		docs := readDocs(t)
		docs["docs/ARCHITECTURE.md"] = strings.ReplaceAll(docs["docs/ARCHITECTURE.md"], "`<p>:items:list`", "the list key")
		got := checkDocs(docs, facts)
		if len(got) != 1 || !strings.Contains(got[0], "`<p>:items:list`, which the key table does not name") {
			t.Errorf("problems %q, want exactly the unnamed <p>:items:list", got)
		}
	})
	t.Run("code missing from the README", func(t *testing.T) {
		docs := readDocs(t)
		docs["README.md"] = regexp.MustCompile("(?m)^\\| `headers_too_large` \\|.*\\n").ReplaceAllString(docs["README.md"], "")
		got := checkDocs(docs, facts)
		if len(got) != 1 || !strings.Contains(got[0], "`headers_too_large` from app/httpapi/errors.go is missing") {
			t.Errorf("problems %q, want exactly the missing headers_too_large", got)
		}
	})
}

// unclosedFences names each fence in text that CommonMark would not close
// where its writer meant: an opening fence whose info string holds more
// than a language name (a closing fence with text glued after it, which
// CommonMark reads as an opening one), and a last fence left open, which
// turns the rest of the page into one code block.
func unclosedFences(text string) []string {
	var bad []string
	open := 0 // line number of the open fence, 0 when none
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		info := strings.TrimSpace(strings.TrimLeft(trimmed, "`"))
		if open == 0 {
			if strings.ContainsAny(info, " `") {
				bad = append(bad, fmt.Sprintf("line %d: a fence with text after it (%q) opens a block instead of closing one", i+1, trimmed))
			}
			open = i + 1
			continue
		}
		if info != "" {
			bad = append(bad, fmt.Sprintf("line %d: a closing fence with text after it (%q) is not closed", i+1, trimmed))
			continue
		}
		open = 0
	}
	if open != 0 {
		bad = append(bad, fmt.Sprintf("line %d: fence never closed", open))
	}
	return bad
}

// Every code fence in the docs is closed where it was meant to be, so no
// page turns into one code block halfway down.
func TestDocsFencesClose(t *testing.T) {
	t.Parallel()
	for name, text := range readDocs(t) {
		for _, p := range unclosedFences(text) {
			t.Errorf("%s: %s", name, p)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"```json\n{}\n``` An **Order** is\n", "closing fence with text"},
		{"```sh\nmake run\n", "never closed"},
	} {
		if got := unclosedFences(tc.text); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("unclosedFences(%q) = %q, want one mentioning %q", tc.text, got, tc.want)
		}
	}
}

// TestEveryFlagIsInConfigDocs: docs/CONFIG.md is the flag reference, so
// every flag of every subcommand appears there as `--name`; the docs check
// above only goes the other way (a flag the docs name must exist).
func TestEveryFlagIsInConfigDocs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var walk func(c *ffcli.Command)
	walk = func(c *ffcli.Command) {
		if c.FlagSet != nil {
			c.FlagSet.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(text, "--"+f.Name) {
					t.Errorf("seckill %s --%s is missing from docs/CONFIG.md", c.Name, f.Name)
				}
			})
		}
		for _, s := range c.Subcommands {
			walk(s)
		}
	}
	walk(newRoot(io.Discard, io.Discard))
}

// TestDocsStayReadable holds the docs to the budget a reader can finish
// (issue 23): README.md at most 350 lines, and README.md plus every page
// under docs/ at most 35,000 words, counted as wc -w counts them.
func TestDocsStayReadable(t *testing.T) {
	t.Parallel()
	pages := []string{filepath.Join(repoRoot, "README.md")}
	for _, glob := range []string{"docs/*.md", "docs/*/*.md"} {
		more, err := filepath.Glob(filepath.Join(repoRoot, glob))
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, more...)
	}
	words := 0
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		words += len(strings.Fields(string(b)))
		if filepath.Base(p) == "README.md" && filepath.Dir(p) == repoRoot {
			if lines := strings.Count(string(b), "\n"); lines > 350 {
				t.Errorf("README.md has %d lines, more than 350", lines)
			}
		}
	}
	if words > 35000 {
		t.Errorf("README.md and docs/ hold %d words, more than 35,000: cut before adding", words)
	}
}
