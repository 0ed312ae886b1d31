package publish

import (
	"slices"
	"testing"
)

func TestSubjectMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.>", "a.b", true}, {"a.>", "a.b.c", true}, {"a.>", "a", false},
		{"a.*", "a.b", true}, {"a.*", "a.b.c", false}, {"*.b", "a.b", true},
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {">", "a", true},
	} {
		if got := subjectMatch(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectMatch(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}

func TestSubjectContainsAndCollide(t *testing.T) {
	for _, tc := range []struct {
		a, b              string
		contains, collide bool // a contains b; some subject matches both
	}{
		{"a.>", "a.b", true, true},
		{"a.>", "a.*.c", true, true},
		{"a.>", "a.>", true, true},
		{"a.>", "a", false, false},
		{"a.*", "a.b", true, true},
		{"a.*", "a.*", true, true},
		{"a.*", "a.>", false, true},
		{"a.b", "a.*", false, true},
		{"a.*.c", "a.b.>", false, true},
		{"a.b.>", "a.*.c", false, true},
		{"a.b", "a.c", false, false},
		{"a.*", "a.b.c", false, false},
		{">", "x.y", true, true},
		{"*", "x", true, true},
		{"*", "x.y", false, false},
		{"orders.>", "users.>", false, false},
	} {
		if got := subjectContains(tc.a, tc.b); got != tc.contains {
			t.Errorf("subjectContains(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.contains)
		}
		if got := subjectsCollide(tc.a, tc.b); got != tc.collide {
			t.Errorf("subjectsCollide(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.collide)
		}
		if got := subjectsCollide(tc.b, tc.a); got != tc.collide {
			t.Errorf("subjectsCollide(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.collide)
		}
	}
}

func TestAddSubjects(t *testing.T) {
	for _, tc := range []struct {
		name            string
		have, want      []string
		subjects, added []string
		overlapsSomeone bool
	}{
		{"new", []string{"a.>"}, []string{"b.>"}, []string{"a.>", "b.>"}, []string{"b.>"}, false},
		{"there", []string{"a.>", "b.>"}, []string{"b.>", "a.x"}, []string{"a.>", "b.>"}, nil, false},
		{"widens in place", []string{"a.x", "m.>", "a.y"}, []string{"a.>"}, []string{"a.>", "m.>"}, []string{"a.>"}, false},
		{"overlaps", []string{"a.*.x"}, []string{"a.b.>"}, nil, nil, true},
		{"repeated", []string{"a.>"}, []string{"b.>", "b.>", "b.c"}, []string{"a.>", "b.>"}, []string{"b.>"}, false},
	} {
		subjects, added, err := addSubjects(tc.have, tc.want)
		if (err != nil) != tc.overlapsSomeone || !slices.Equal(subjects, tc.subjects) || !slices.Equal(added, tc.added) {
			t.Errorf("%s: addSubjects(%v, %v) = %v, %v, %v; want %v, %v, error %v",
				tc.name, tc.have, tc.want, subjects, added, err, tc.subjects, tc.added, tc.overlapsSomeone)
		}
	}
}
