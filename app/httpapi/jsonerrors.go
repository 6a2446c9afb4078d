package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// timeFormat is how every date-time field is described to a client: the
// API's format, not Go's reference layout.
const timeFormat = "a date-time in RFC 3339 format, like 2026-12-24T10:00:00Z"

var timeType = reflect.TypeOf(time.Time{})

// decodeError turns a decoding failure of raw into v into an answer in the
// API's words: valid JSON with a value of the wrong type is invalid_request
// naming the field and the type it takes; broken JSON is invalid_json with
// the byte where it broke. Go's own texts (type names, struct fields, time
// layouts) never reach the client.
func decodeError(err error, raw []byte, v any) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) || !json.Valid(raw) {
		if syn != nil {
			return jsonError("the body is not valid JSON (it breaks at byte " + strconv.FormatInt(syn.Offset, 10) + ")")
		}
		return jsonError("the body is not valid JSON")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return &sale.ValidationError{Field: "body", Reason: "must be a JSON object"}
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		name := strings.TrimPrefix(ute.Field, ".")
		if f, ok := structField(v, name); ok {
			return &sale.ValidationError{Field: name, Reason: "must be " + describeType(f.Type)}
		}
		return &sale.ValidationError{Field: name, Reason: "has a value of the wrong type"}
	}
	// A value a type of its own refused (a date-time): find which field by
	// decoding each on its own.
	if name, t, ok := failingField(obj, v); ok {
		return &sale.ValidationError{Field: name, Reason: "must be " + describeType(t)}
	}
	return &sale.ValidationError{Field: "body", Reason: "does not match this request; see /openapi.yaml"}
}

// structField finds the field of the struct v points to whose JSON name is
// name.
func structField(v any, name string) (reflect.StructField, bool) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// failingField decodes each member of obj into its field's type alone and
// returns the first that fails.
func failingField(obj map[string]json.RawMessage, v any) (string, reflect.Type, bool) {
	for _, name := range jsonFields(v) {
		val, ok := obj[name]
		if !ok {
			continue
		}
		f, ok := structField(v, name)
		if !ok {
			continue
		}
		if json.Unmarshal(val, reflect.New(f.Type).Interface()) != nil {
			return name, f.Type, true
		}
	}
	return "", nil, false
}

// describeType names a Go type as the API's JSON sees it.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return timeFormat
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
