package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The admin 401 tells a person what to send; JSON's HTML escaping would
// turn its angle brackets into \u003c and \u003e.
func TestAdminUnauthorizedMessageIsNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.serve(http.MethodGet, "/api/v1/admin/items/1/stats", nil)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if strings.Contains(body, `\u003c`) || !strings.Contains(body, "Bearer <SECKILL_ADMIN_TOKEN>") {
		t.Errorf("body %s: want the literal text Bearer <SECKILL_ADMIN_TOKEN>", body)
	}
	// Still valid JSON that decodes to the same text.
	var got errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !strings.Contains(got.Message, "<SECKILL_ADMIN_TOKEN>") {
		t.Errorf("body %s decodes to %+v (%v)", body, got, err)
	}
}

// A well-formed object with a field the request does not take is a bad
// request naming the field (invalid_request), not broken JSON; broken JSON
// stays invalid_json even when an unknown field comes first.
func TestUnknownFieldIsInvalidRequestNamingIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name, body, code string
		mention          []string
	}{
		{"unknown field", `{"user_id":"bob","admin":true}`, "invalid_request", []string{`admin`, "unknown field", "user_id"}},
		{"unknown field then broken JSON", `{"admin":true,`, "invalid_json", nil},
		{"unknown field then trailing data", `{"admin":true} {}`, "invalid_json", nil},
		{"known field, broken JSON", `{"user_id":`, "invalid_json", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.serve(http.MethodPost, "/api/v1/login", strings.NewReader(tc.body), "Content-Type", "application/json")
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			var got errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Error != tc.code {
				t.Errorf("code %q, want %q (message %q)", got.Error, tc.code, got.Message)
			}
			for _, m := range tc.mention {
				if !strings.Contains(got.Message, m) {
					t.Errorf("message %q does not mention %q", got.Message, m)
				}
			}
		})
	}
}
