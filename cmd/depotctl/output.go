package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"depot/depot/stall"
)

// emit prints v: as indented JSON with --json, else through table.
func (a *app) emit(v any, table func(w io.Writer)) error {
	if a.json {
		return writeJSON(a.stdout, v)
	}
	t := newTable(a.stdout)
	table(t)
	return t.Flush()
}

// say prints a line for people; --json suppresses it (scripts read only
// the JSON on stdout).
func (a *app) say(format string, args ...any) {
	if !a.json {
		fmt.Fprintf(a.stdout, format+"\n", args...)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for tab-separated rows; the caller flushes
// it. Written to through row and section.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes one tab-separated row.
func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	io.WriteString(w, "\n")
}

// section writes a blank line (unless first) and a title line. Tabwriter
// aligns columns only within a block of consecutive tabbed lines, so each
// section lines up on its own.
func section(w io.Writer, first bool, title string) {
	if !first {
		io.WriteString(w, "\n")
	}
	io.WriteString(w, title+"\n")
}

// kv writes "key:<tab>value" rows, for the head of a report.
func kv(w io.Writer, pairs ...any) {
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(w, "%s:\t%v\n", pairs[i], pairs[i+1])
	}
}

// formatBytes formats n in IEC units: 0 B, 512 B, 1.5 KiB, 4.0 GiB.
func formatBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatRate formats bytes per second.
func formatRate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return formatBytes(int64(float64(bytes)/d.Seconds())) + "/s"
}

// formatTime formats t in local time to the second; "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// formatAge is how long ago t was: "3m20s ago"; "-" for the zero time.
func formatAge(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// dash returns s, or "-" when it is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens an error message for a table cell.
func oneLine(s string) string {
	return dash(strings.Join(strings.Fields(s), " "))
}

// short abbreviates a hex digest for wide tables.
func short(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress reports a transfer on stderr: a bar with bytes, rate and ETA
// on a terminal, else a plain line every plainEvery and one at the end.
// Safe for concurrent use (the HTTP transport reads the body in its own
// goroutine).
type progress struct {
	desc  string
	total int64 // -1 when unknown
	start time.Time
	bar   *progressbar.ProgressBar // nil: plain lines

	// afterSend, if set, is said once the whole body has been read: the
	// daemon still works on it before it answers.
	afterSend string

	mu    sync.Mutex
	w     io.Writer
	n     int64
	last  time.Time // of the last plain line
	sent  bool
	ended bool
}

// plainEvery is the interval between plain progress lines.
const plainEvery = 2 * time.Second

// newProgress starts reporting a transfer of total bytes (-1: unknown).
func (a *app) newProgress(desc string, total int64) *progress {
	p := &progress{desc: desc, total: total, start: time.Now(), w: a.stderr}
	p.last = p.start
	if isTerminal(a.stderr) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return p
}

// Reader returns r counted into the progress.
func (p *progress) Reader(r io.Reader) io.Reader {
	return &stall.Reader{R: r, Progress: p.add, EOF: p.eof}
}

// Writer returns w counted into the progress.
func (p *progress) Writer(w io.Writer) io.Writer { return &stall.Writer{W: w, Progress: p.add} }

func (p *progress) add(n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= plainEvery && !p.ended {
		p.last = now
		fmt.Fprintf(p.w, "%s: %s\n", p.desc, p.line(now))
	}
}

func (p *progress) line(now time.Time) string {
	el := now.Sub(p.start)
	if p.total <= 0 {
		return fmt.Sprintf("%s, %s", formatBytes(p.n), formatRate(p.n, el))
	}
	s := fmt.Sprintf("%s of %s (%d%%), %s", formatBytes(p.n), formatBytes(p.total), p.n*100/p.total, formatRate(p.n, el))
	if p.n > 0 && p.n < p.total {
		eta := time.Duration(float64(el) * float64(p.total-p.n) / float64(p.n))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s
}

// Done ends the report: the bar is finished (or cleared on error) and a
// plain report gets its last line. Call it once.
func (p *progress) Done(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	el := time.Since(p.start)
	if p.bar != nil {
		p.bar.Describe(p.desc)
		if err == nil {
			p.bar.Finish()
		} else {
			p.bar.Exit()
		}
		io.WriteString(p.w, "\n")
		return
	}
	if err != nil {
		fmt.Fprintf(p.w, "%s: failed after %s\n", p.desc, formatBytes(p.n))
		return
	}
	fmt.Fprintf(p.w, "%s: %s in %s (%s)\n", p.desc, formatBytes(p.n), el.Round(time.Millisecond), formatRate(p.n, el))
}

// eof notes that the body was read to its end.
func (p *progress) eof() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent || p.ended || p.afterSend == "" {
		return
	}
	p.sent = true
	if p.bar != nil {
		p.bar.Describe(p.desc + " (" + p.afterSend + ")")
		return
	}
	fmt.Fprintf(p.w, "%s: %s sent; %s\n", p.desc, formatBytes(p.n), p.afterSend)
}
