package fbc

import (
	"bufio"
	"io/fs"
	"path"
	"strings"
)

// indexIgnore is the file whose gitignore-style patterns exclude paths from
// a catalog, as in opm.
const indexIgnore = ".indexignore"

// ignoreMatcher applies the patterns of every .indexignore file in a
// catalog. It follows opm (github.com/joelanford/ignore over go-git's
// gitignore): patterns are collected from all .indexignore files in walk
// order, each scoped to the directory holding it; the last pattern that
// matches a path decides, a "!" pattern re-including it. Patterns are
// matched against file paths only, never against directories, so a
// directory pattern excludes the files below it.
type ignoreMatcher struct {
	patterns []ignorePattern
}

type ignorePattern struct {
	domain  []string // directory of the .indexignore, split
	parts   []string // pattern split at "/"
	include bool     // "!" pattern
	dirOnly bool     // trailing "/"
	glob    bool     // contains "/": anchored to the domain
}

// addFile reads the patterns of the .indexignore at name.
func (m *ignoreMatcher) addFile(fsys fs.FS, name string) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var domain []string
	if dir := path.Dir(name); dir != "." {
		domain = strings.Split(dir, "/")
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m.patterns = append(m.patterns, parseIgnorePattern(line, domain))
	}
	return sc.Err()
}

func parseIgnorePattern(p string, domain []string) ignorePattern {
	pat := ignorePattern{domain: domain}
	if strings.HasPrefix(p, "!") {
		pat.include = true
		p = p[1:]
	}
	if !strings.HasSuffix(p, `\ `) {
		p = strings.TrimRight(p, " ")
	}
	if strings.HasSuffix(p, "/") {
		pat.dirOnly = true
		p = p[:len(p)-1]
	}
	pat.glob = strings.Contains(p, "/")
	pat.parts = strings.Split(p, "/")
	return pat
}

// ignored reports whether the file at name (slash-separated, relative to the
// catalog root) is excluded.
func (m *ignoreMatcher) ignored(name string) bool {
	if len(m.patterns) == 0 {
		return false
	}
	parts := strings.Split(name, "/")
	for i := len(m.patterns) - 1; i >= 0; i-- {
		if matched, include := m.patterns[i].match(parts); matched {
			return !include
		}
	}
	return false
}

func (p *ignorePattern) match(pth []string) (matched, include bool) {
	if len(pth) <= len(p.domain) {
		return false, false
	}
	for i, d := range p.domain {
		if pth[i] != d {
			return false, false
		}
	}
	pth = pth[len(p.domain):]
	var ok bool
	if p.glob {
		ok = p.globMatch(pth)
	} else {
		ok = p.nameMatch(pth)
	}
	return ok, p.include
}

// nameMatch: a pattern without "/" matches any path element; a directory
// pattern matches any element but the last (the file itself).
func (p *ignorePattern) nameMatch(pth []string) bool {
	for i, name := range pth {
		match, err := path.Match(p.parts[0], name)
		if err != nil {
			return false
		}
		if !match {
			continue
		}
		return !(p.dirOnly && i == len(pth)-1)
	}
	return false
}

// globMatch: a pattern with "/" matches elements from the start of the
// path, "**" standing for any number of directories; a match may stop
// before the end of the path (the rest lies inside a matched directory).
func (p *ignorePattern) globMatch(pth []string) bool {
	matched := false
	traverse := false
	for i, pat := range p.parts {
		if pat == "" {
			traverse = false
			continue
		}
		if pat == "**" {
			if i == len(p.parts)-1 {
				break
			}
			traverse = true
			continue
		}
		if strings.Contains(pat, "**") || len(pth) == 0 {
			return false
		}
		if traverse {
			traverse = false
			for len(pth) > 0 {
				e := pth[0]
				pth = pth[1:]
				match, err := path.Match(pat, e)
				if err != nil {
					return false
				}
				if match {
					matched = true
					break
				}
				if len(pth) == 0 {
					matched = false
				}
			}
		} else {
			match, err := path.Match(pat, pth[0])
			if err != nil || !match {
				return false
			}
			matched = true
			pth = pth[1:]
		}
	}
	if matched && p.dirOnly && len(pth) == 0 {
		matched = false
	}
	return matched
}
