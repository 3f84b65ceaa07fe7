package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestStore_WriteMeta_EveryMirror(t *testing.T) {
	s, mirrors := testStore(t, nil)
	n, err := s.WriteMeta(context.Background(), "ledger.json", []byte(`{"generation":1}`))
	if err != nil || n != 2 {
		t.Fatalf("WriteMeta = %d, %v", n, err)
	}
	os.WriteFile(filepath.Join(mirrors[1], "meta", "ledger.json"), []byte(`{"gen`), 0o644)
	copies := s.ReadMeta("ledger.json")
	if len(copies) != 2 || string(copies[0].Data) != `{"generation":1}` || string(copies[1].Data) != `{"gen` {
		t.Fatalf("ReadMeta = %+v", copies)
	}
	if _, err := s.WriteMeta(context.Background(), "../escape", nil); err == nil {
		t.Fatal("WriteMeta accepted a path")
	}
	for _, m := range mirrors {
		if f := filesUnder(t, filepath.Join(m, "tmp")); len(f) != 0 {
			t.Fatalf("temp files left: %v", f)
		}
	}
}
