package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a Problem stops a run.
type Severity string

const (
	// SeverityError makes the whole input invalid: nothing is applied.
	SeverityError Severity = "error"
	// SeverityWarning is reported but does not stop a run; it marks input
	// that is accepted but ignored or surprising (an oc-mirror section
	// Ferry does not handle, for example).
	SeverityWarning Severity = "warning"
)

// Problem is one finding about the input, located as precisely as the
// input allows.
type Problem struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`  // slash path relative to the loaded root
	Line     int      `json:"line,omitempty"`  // 1-based; 0 when unknown
	Kind     string   `json:"kind,omitempty"`  // object kind, when the problem is inside an object
	Name     string   `json:"name,omitempty"`  // object metadata.name
	Field    string   `json:"field,omitempty"` // field path, e.g. spec.packages[0].channels[1].minVersion
	Message  string   `json:"message"`
}

// String renders the problem as "file:line: Kind/name: field: message",
// leaving out the parts that are unknown, so editors and CI annotate it.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.Kind != "" {
		b.WriteString(p.Kind)
		if p.Name != "" {
			b.WriteString("/" + p.Name)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of findings in a stable order: by file, line, then text.
type Problems []Problem

// Errors returns the problems of error severity.
func (ps Problems) Errors() Problems { return ps.filter(SeverityError) }

// Warnings returns the problems of warning severity.
func (ps Problems) Warnings() Problems { return ps.filter(SeverityWarning) }

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		// The order String gives, without building strings per
		// comparison.
		for _, c := range [...][2]string{
			{warningRank(a.Severity), warningRank(b.Severity)},
			{a.Kind, b.Kind}, {a.Name, b.Name}, {a.Field, b.Field}, {a.Message, b.Message},
		} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		return false
	})
}

func warningRank(s Severity) string {
	if s == SeverityWarning {
		return "1"
	}
	return "0"
}

// problemList collects problems up to MaxProblems and counts the rest.
type problemList struct {
	list    Problems
	dropped int
	// firstDropped is where the first problem not listed was, so the
	// summary line points at a file.
	firstDropped string
}

func (pl *problemList) add(p Problem) {
	if p.Severity == "" {
		p.Severity = SeverityError
	}
	if len(pl.list) >= MaxProblems {
		if pl.dropped == 0 {
			pl.firstDropped = p.File
		}
		pl.dropped++
		return
	}
	pl.list = append(pl.list, p)
}

// done returns the problems sorted, redacted, with a last line counting
// those not listed.
func (pl *problemList) done() Problems {
	ps := pl.list
	ps.sort()
	if pl.dropped > 0 {
		ps = append(ps, Problem{Severity: SeverityError, File: pl.firstDropped,
			Message: fmt.Sprintf("%d more problem(s) not listed: Ferry lists at most %d; fix these first", pl.dropped, MaxProblems)})
	}
	for i := range ps {
		ps[i].Message = Redact(ps[i].Message)
		ps[i].Field = Redact(ps[i].Field)
	}
	return ps
}

// InvalidError is returned when the input has at least one error-severity
// problem. It carries every problem found (warnings included) so the caller
// can print them all; the CLI maps it to exit code 2.
type InvalidError struct {
	Problems Problems
}

func (e *InvalidError) Error() string {
	errs := e.Problems.Errors()
	lines := make([]string, 0, len(errs)+1)
	lines = append(lines, fmt.Sprintf("invalid input: %d problem(s)", len(errs)))
	for _, p := range errs {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}
