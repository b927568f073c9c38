package reconcile

import (
	"fmt"
	"io"
	"strings"
)

// ANSI colours for a terminal; Format uses none unless asked.
const (
	colReset  = "\x1b[0m"
	colGreen  = "\x1b[32m"
	colYellow = "\x1b[33m"
	colRed    = "\x1b[31m"
	colDim    = "\x1b[2m"
)

// Format prints a changeset for people: one line per object that changes
// (unchanged ones only with verbose), the fields that differ under it, the
// problems, and a summary line.
func Format(w io.Writer, cs Changeset, color, verbose bool) error {
	paint := func(c, s string) string {
		if !color {
			return s
		}
		return c + s + colReset
	}
	var b strings.Builder
	for _, p := range cs.Problems {
		fmt.Fprintf(&b, "%s %s\n", paint(colRed, "problem:"), p)
	}
	for _, s := range cs.Steps {
		if s.Action == Unchanged && !verbose && !s.Drift {
			continue
		}
		mark, col := " ", colDim
		switch s.Action {
		case Create:
			mark, col = "+", colGreen
		case Update:
			mark, col = "~", colYellow
		case Delete:
			mark, col = "-", colRed
		}
		line := fmt.Sprintf("%s %-7s %s (%s)", mark, s.Kind, s.Name, s.Action)
		if s.Drift {
			line += " drift: changed outside Git"
		}
		fmt.Fprintln(&b, paint(col, line))
		for _, c := range s.Changes {
			switch {
			case c.From == "":
				fmt.Fprintf(&b, "      %s: %s\n", c.Path, paint(colGreen, c.To))
			case c.To == "":
				fmt.Fprintf(&b, "      %s: %s\n", c.Path, paint(colRed, c.From+" (removed)"))
			default:
				fmt.Fprintf(&b, "      %s: %s -> %s\n", c.Path, paint(colRed, c.From), paint(colGreen, c.To))
			}
		}
	}
	n := cs.Counts()
	fmt.Fprintf(&b, "%d to create, %d to update, %d to delete, %d unchanged", n[Create], n[Update], n[Delete], n[Unchanged])
	if len(cs.Problems) > 0 {
		fmt.Fprintf(&b, ", %d problem(s)", len(cs.Problems))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ShortCommit abbreviates a commit hash as git log --oneline does.
func ShortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	if c == "" {
		return "-"
	}
	return c
}
