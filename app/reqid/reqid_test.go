package reqid

import (
	"context"
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	a, b := New(), New()
	if a == b || len(a) != 16 || !Valid(a) {
		t.Fatalf("New() = %q, %q; want two different valid 16-digit ids", a, b)
	}
	for _, bad := range []string{"", "has space", "tab\t", "é", strings.Repeat("x", MaxLen+1)} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	if !Valid(strings.Repeat("x", MaxLen)) || !Valid("req-42/abc") {
		t.Error("a usable client id was refused")
	}
	ctx := With(context.Background(), "abc")
	if From(ctx) != "abc" || From(context.Background()) != "" {
		t.Fatal("the id does not travel in the context")
	}
}
