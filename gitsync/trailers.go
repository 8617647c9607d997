package gitsync

import (
	"fmt"
	"regexp"
	"strings"
)

// Trailer is one "Key: value" line at the end of a commit message, as git
// interpret-trailers reads them. Ferry records where a render came from in
// trailers so `git log --format=%(trailers)` and the daemon can read it
// back without parsing prose.
type Trailer struct {
	Key, Value string
}

// SourceRevisionTrailer names the spec commit a render was computed from.
const SourceRevisionTrailer = "Ferry-Source-Revision"

var (
	trailerKey  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	trailerLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$`)
)

// AppendTrailers returns message with trailers added the way git
// interpret-trailers adds them: to the message's trailer block when its
// last paragraph already is one, else as a new paragraph after a blank
// line. A trailer identical to one already in the block is not repeated.
// Keys must be tokens (letters, digits, "-"); line breaks in a value become
// spaces, so one trailer stays one line. The result ends with a newline.
func AppendTrailers(message string, trailers ...Trailer) (string, error) {
	for _, t := range trailers {
		if !trailerKey.MatchString(t.Key) {
			return "", fmt.Errorf("trailer key %q: use letters, digits and '-' only", t.Key)
		}
	}
	body := strings.TrimRight(message, " \t\r\n")
	existing, inBlock := trailerBlock(body)
	var b strings.Builder
	b.WriteString(body)
	added := 0
	for _, t := range trailers {
		v := strings.Join(strings.Fields(t.Value), " ")
		dup := false
		for _, e := range existing {
			if strings.EqualFold(e.Key, t.Key) && e.Value == v {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		switch {
		case added > 0 || inBlock:
			b.WriteString("\n")
		case body != "":
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "%s: %s", t.Key, v)
		existing = append(existing, Trailer{t.Key, v})
		added++
	}
	b.WriteString("\n")
	return b.String(), nil
}

// ParseTrailers returns the trailers of message's trailer block: its last
// paragraph, when that paragraph follows a blank line and every line of it
// is a trailer or a continuation of one.
func ParseTrailers(message string) []Trailer {
	t, _ := trailerBlock(strings.TrimRight(message, " \t\r\n"))
	return t
}

// trailerBlock parses the last paragraph of body as trailers; ok is false
// when it is not a trailer block (then no trailers are returned).
func trailerBlock(body string) (trailers []Trailer, ok bool) {
	i := strings.LastIndex(body, "\n\n")
	if i < 0 {
		return nil, false // a subject alone is never a trailer block
	}
	for _, line := range strings.Split(body[i+2:], "\n") {
		line = strings.TrimRight(line, "\r")
		if m := trailerLine.FindStringSubmatch(line); m != nil {
			trailers = append(trailers, Trailer{Key: m[1], Value: strings.TrimSpace(m[2])})
			continue
		}
		if len(trailers) > 0 && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			last := &trailers[len(trailers)-1]
			last.Value = strings.TrimSpace(last.Value + " " + strings.TrimSpace(line))
			continue
		}
		return nil, false
	}
	return trailers, len(trailers) > 0
}
