package outbox

import (
	"errors"
	"strings"
	"testing"
)

// badSubjects has examples of every rule, with the error and the CHECK
// constraint that refuse them.
var badSubjects = []struct {
	subject    string
	err        error
	constraint string
}{
	{"", ErrEmptySubject, "outbox_subject_not_empty"},
	{strings.Repeat("a", 256), ErrSubjectTooLong, "outbox_subject_too_long"},
	{strings.Repeat("é", 128), ErrSubjectTooLong, "outbox_subject_too_long"}, // 256 bytes, 128 characters
	{".orders", ErrSubjectBadDots, "outbox_subject_bad_dots"},
	{"orders.", ErrSubjectBadDots, "outbox_subject_bad_dots"},
	{"orders..created", ErrSubjectBadDots, "outbox_subject_bad_dots"},
	{".", ErrSubjectBadDots, "outbox_subject_bad_dots"},
	{"orders created", ErrSubjectWhitespace, "outbox_subject_no_whitespace"},
	{"orders.\tcreated", ErrSubjectWhitespace, "outbox_subject_no_whitespace"},
	{"orders\n", ErrSubjectWhitespace, "outbox_subject_no_whitespace"},
	{"orders\x7f", ErrSubjectWhitespace, "outbox_subject_no_whitespace"},
	{"orders\x01", ErrSubjectWhitespace, "outbox_subject_no_whitespace"},
	{"orders.*", ErrSubjectWildcard, "outbox_subject_no_wildcards"},
	{"orders.>", ErrSubjectWildcard, "outbox_subject_no_wildcards"},
	{"orders.cre*ted", ErrSubjectWildcard, "outbox_subject_no_wildcards"},
	{">", ErrSubjectWildcard, "outbox_subject_no_wildcards"},
}

var goodSubjects = []string{
	"orders",
	"orders.created",
	"a.b.c.d.e",
	"orders.créé",                // non-ASCII is fine
	"orders.\u00a0",              // so is a non-ASCII space: NATS accepts it
	"orders-1_2~3!@#$%^&()+=,;:", // punctuation other than * and >
	strings.Repeat("a", 255),
}

func TestValidateSubject(t *testing.T) {
	for _, tc := range badSubjects {
		err := ValidateSubject(tc.subject)
		if !errors.Is(err, tc.err) {
			t.Errorf("ValidateSubject(%q) = %v, want %v", tc.subject, err, tc.err)
		}
	}
	for _, s := range goodSubjects {
		if err := ValidateSubject(s); err != nil {
			t.Errorf("ValidateSubject(%q) = %v, want nil", s, err)
		}
	}
	// The message names the subject.
	if err := ValidateSubject("orders.*"); !strings.Contains(err.Error(), `"orders.*"`) {
		t.Errorf("error %q does not quote the subject", err)
	}
}

var badHeaderNames = []struct {
	name       string
	err        error
	constraint string
}{
	{"", ErrHeaderName, "outbox_headers_bad_name"},
	{"Trace Id", ErrHeaderName, "outbox_headers_bad_name"},
	{"Trace:Id", ErrHeaderName, "outbox_headers_bad_name"},
	{"Trace-Id\r\n", ErrHeaderName, "outbox_headers_bad_name"},
	{"Grüße", ErrHeaderName, "outbox_headers_bad_name"},
	{"Nats-Msg-Id", ErrReservedHeader, "outbox_headers_reserved_name"},
	{"nats-expected-stream", ErrReservedHeader, "outbox_headers_reserved_name"},
	{"NATS-", ErrReservedHeader, "outbox_headers_reserved_name"},
}

func TestValidateHeaderName(t *testing.T) {
	for _, tc := range badHeaderNames {
		if err := ValidateHeaderName(tc.name); !errors.Is(err, tc.err) {
			t.Errorf("ValidateHeaderName(%q) = %v, want %v", tc.name, err, tc.err)
		}
	}
	for _, name := range []string{"Trace-Id", "Content-Type", "Nats", "NatsFoo", "x", "Cdcrelay-Outbox-Id", "a!#$%&'*+.^_`|~"} {
		if err := ValidateHeaderName(name); err != nil {
			t.Errorf("ValidateHeaderName(%q) = %v, want nil", name, err)
		}
	}
}
