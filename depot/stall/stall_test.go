package stall_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"depot/depot/stall"
)

func TestWatchdog_FiresWithoutProgress(t *testing.T) {
	fired := make(chan struct{})
	w := stall.New(time.Millisecond, func() { close(fired) })
	defer w.Stop()
	select {
	case <-fired:
	case <-time.After(time.Minute):
		t.Fatal("the watchdog did not fire")
	}
}

func TestWatchdog_StopAndDisabled(t *testing.T) {
	fired := make(chan struct{}, 2)
	w := stall.New(time.Hour, func() { fired <- struct{}{} })
	w.Progress()
	w.Stop()
	off := stall.New(0, func() { fired <- struct{}{} })
	off.Progress()
	off.Stop()
	if len(fired) != 0 {
		t.Fatal("a stopped or disabled watchdog fired")
	}
}

func TestReaderWriter_ReportBytes(t *testing.T) {
	var got, eofs int
	r := &stall.Reader{R: strings.NewReader("hello, world"), Progress: func(n int) { got += n }, EOF: func() { eofs++ }}
	var buf bytes.Buffer
	var wrote int
	w := &stall.Writer{W: &buf, Progress: func(n int) { wrote += n }}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if got != 12 || wrote != 12 || buf.String() != "hello, world" || eofs != 1 {
		t.Fatalf("read %d, wrote %d (%q), EOF seen %d times; want 12, 12, once", got, wrote, buf.String(), eofs)
	}
}
