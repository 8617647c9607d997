package mirror

import (
	"strings"
	"testing"
)

func TestImageErrorRedacts(t *testing.T) {
	cause := &testErr{`Get "http://u:SECRET@h/x?sig=SECRET": EOF`}
	e := newImageError(Pair{Source: "a/b@sha256:1", Destination: "c/d"}, cause)
	if strings.Contains(e.Error(), "SECRET") || strings.Contains(e.Reason, "SECRET") {
		t.Errorf("secret in %q", e.Error())
	}
	if !e.Is(cause) {
		t.Error("errors.Is lost the cause")
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }
