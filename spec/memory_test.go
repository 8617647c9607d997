package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-gitops/ferry/internal/safefs"
)

// memoryChildEnv names the spec directory a child test process loads under
// an address-space limit (see TestMain).
const memoryChildEnv = "FERRY_SPEC_MEMORY_CHILD"

// childAddressSpace is the child's RLIMIT_AS: enough for the Go runtime and
// any bounded load, far below what the unbounded cases reached (a 2 KB
// alias bomb grew past 4 GB).
const childAddressSpace = 2 << 30

// maxChildRSS is the peak resident memory a child may reach. The worst
// case measured is about 190 MB (four dense 1 MiB files, up to the
// directory limit); the bound is loose so the garbage collector's timing
// never decides the outcome, and tight enough that anything unbounded
// fails.
const maxChildRSS = 400 << 20

func TestMain(m *testing.M) {
	if dir := os.Getenv(memoryChildEnv); dir != "" {
		os.Exit(memoryChild(dir))
	}
	os.Exit(m.Run())
}

// memoryChild loads dir as the CLI does, under RLIMIT_AS, and exits 0 when
// the load ended in located problems.
func memoryChild(dir string) int {
	lim := &syscall.Rlimit{Cur: childAddressSpace, Max: childAddressSpace}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 4
	}
	view, err := safefs.Open(dir, safefs.Options{FollowSymlinks: true, MaxFileSize: DefaultMaxFileSize})
	if err != nil {
		fmt.Println(err)
		return 4
	}
	_, err = Load(view, DefaultLoadOptions())
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		fmt.Println("want located problems, got:", err)
		return 3
	}
	for _, p := range invalid.Problems.Errors() {
		if p.File == "" {
			fmt.Println("problem without a file:", p)
			return 3
		}
	}
	fmt.Println(invalid.Problems.Errors()[0])
	return 0
}

// TestMemoryBounds loads each amplification case in a child process under
// an address-space limit and checks that it ends in a located problem with
// bounded peak memory (the child's maximum resident set size, from the
// kernel). Nothing here measures time.
func TestMemoryBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per case")
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, dir string)
		want  string
	}{
		{"alias bomb in a Catalog", copyDir("testdata/load/alias-bomb"), "aliases expand this document"},
		{"billion laughs, ten levels", writeFile("isc.yaml", billionLaughs(10)), "aliases expand this document"},
		{"typed aliases three levels deep", writeFile("isc.yaml", typedLaughs(300)), "aliases expand this document"},
		{"1 MiB of one-character values", writeFile("m.yaml", denseFile(1<<20)), "over the 200000 limit for one document"},
		{"values just under the document limit", writeFile("m.yaml", denseNames(MaxDocumentNodes-100)), "must name its registry"},
		{"dense files up to the directory limit", manyFiles(40), "over the 4 MiB limit for a spec directory"},
		{"a sparse 3 GiB spec file", sparseFile("huge.yaml", 3<<30), "over the 1 MiB limit for a spec file"},
		{"a spec file linked to /dev/zero", linkFile("zero.yaml", "/dev/zero"), "symbolic link leads outside the directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.build(t, dir)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), memoryChildEnv+"="+dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, tail(out.String()))
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("child reported:\n%s\nwant a problem containing %q", tail(out.String()), tc.want)
			}
			ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			if !ok {
				t.Skip("no resource usage on this platform")
			}
			rss := ru.Maxrss << 10 // kilobytes on Linux
			t.Logf("peak RSS %d MiB", rss>>20)
			if rss > maxChildRSS {
				t.Errorf("peak RSS %d MiB, over the %d MiB bound", rss>>20, maxChildRSS>>20)
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

func copyDir(src string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, e.Name()), string(b))
		}
	}
}

func writeFile(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) { write(t, filepath.Join(dir, name), content) }
}

func linkFile(name, target string) func(*testing.T, string) {
	return func(t *testing.T, dir string) { symlink(t, target, filepath.Join(dir, name)) }
}

func sparseFile(name string, size int64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Skipf("no sparse files here: %v", err)
		}
	}
}

// billionLaughs nests levels lists of ten aliases each in an
// ImageSetConfiguration's free-form storageConfig: 10^levels strings.
func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("apiVersion: mirror.openshift.io/v1alpha2\nkind: ImageSetConfiguration\nstorageConfig:\n  local:\n")
	b.WriteString(`    a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "    a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	b.WriteString("mirror:\n  operators:\n    - catalog: registry.redhat.io/redhat/redhat-operator-index:v4.20\n")
	return b.String()
}

// typedLaughs multiplies operators, packages and channels, fields the
// decoder fills one by one: fanout^3 channels.
func typedLaughs(fanout int) string {
	refs := func(a string) string { return strings.TrimSuffix(strings.Repeat("*"+a+", ", fanout), ", ") }
	return fmt.Sprintf("apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators: [&o {catalog: registry.redhat.io/redhat/redhat-operator-index:v4.20, packages: [&p {name: x, channels: [&c {name: stable}, %s]}, %s]}, %s]\n",
		refs("c"), refs("p"), refs("o"))
}

// denseFile is a Mirror whose additionalImages are size/2 one-letter
// values: the most YAML nodes a file of that size can hold.
func denseFile(size int) string {
	head := mirrorDoc + "  additionalImages: ["
	n := (size - len(head) - 2) / 2
	return head + strings.TrimSuffix(strings.Repeat("a,", n), ",") + "]\n"
}

// denseNames is a Mirror with n short, distinct, invalid references, each
// decoded, checked and reported (up to MaxProblems).
func denseNames(n int) string {
	var b strings.Builder
	b.WriteString(mirrorDoc + "  additionalImages: [")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(i), 36))
	}
	b.WriteString("]\n")
	return b.String()
}

// manyFiles writes n ImageSetConfigurations of almost 1 MiB each, every
// one listing distinct valid additional images.
func manyFiles(n int) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		for i := range n {
			var b strings.Builder
			b.WriteString("apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n")
			for k := 0; b.Len() < DefaultMaxFileSize-100; k++ {
				fmt.Fprintf(&b, "    - name: quay.io/ns%d/img%d:1\n", i, k)
			}
			write(t, filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)), b.String())
		}
	}
}
