package trigger_test

import (
	"testing"

	"depot/store/trigger"
)

func TestTrigger_Fire_FoldsIntoOneRun(t *testing.T) {
	tr := trigger.New()
	select {
	case <-tr.C():
		t.Fatal("a new trigger has a run queued")
	default:
	}
	for range 5 {
		tr.Fire()
	}
	<-tr.C()
	select {
	case <-tr.C():
		t.Fatal("five fires queued more than one run")
	default:
	}
	tr.Fire()
	select {
	case <-tr.C():
	default:
		t.Fatal("a fire after the run was taken queued nothing")
	}
}
