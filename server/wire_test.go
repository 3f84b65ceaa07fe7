package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"depot/depot"
	"depot/store"
)

// fill sets every field of v (a pointer) to a value that is not zero, so
// that a field a conversion forgets, or a JSON tag that differs, shows in
// the encoding.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 4 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth)
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			v.SetBytes([]byte(`{"signed":{}}`))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), depth)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth)
		fill(e, depth)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).SetUint(uint64(i + 7))
		}
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint64:
		v.SetUint(5)
	case reflect.Float64:
		v.SetFloat(1.5)
	}
}

// sameJSON checks that the wire body encodes exactly as the domain value,
// for a value with every field set and for the zero value (nil slices
// stay null).
func sameJSON[T, U any](t *testing.T, name string, conv func(T) U) {
	t.Helper()
	var full, zero T
	fill(reflect.ValueOf(&full).Elem(), 0)
	for _, v := range []T{full, zero} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(conv(v))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %s\n want %s", name, got, want)
		}
	}
}

// TestWire_SameJSON: the bodies of server/api encode byte for byte as the
// domain types they replace on the wire.
func TestWire_SameJSON(t *testing.T) {
	sameJSON(t, "Config", wireConfig)
	sameJSON(t, "CopyJob", wireCopyJob)
	sameJSON(t, "Repo", wireRepo)
	sameJSON(t, "UploadResult", wireUploadResult)
	sameJSON(t, "RepoProgress", wireRepoProgress)
	sameJSON(t, "TrustRoot", wireTrustRoot)
	sameJSON(t, "SledRecord", wireSledRecord)
	sameJSON(t, "ReplicationStatus", wireReplicationStatus)
	sameJSON(t, "MirrorStatus", wireMirror)
	sameJSON(t, "ScrubStatus", func(s store.ScrubStatus) any { return wireScrub(s) })
	sameJSON(t, "CopyCounts", func(c depot.CopyCounts) any { return wireCopyCounts(c) })
	sameJSON(t, "ReconcileStatus", func(r depot.ReconcileStatus) any { return wireReconcile(r) })
}
