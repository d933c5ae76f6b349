package model

import (
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/auditstream/auditstream/internal/event"
)

// MarshalTime writes the Time scalar: RFC 3339 with nanoseconds, as gqlgen's Time does.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// UnmarshalTime reads the Time scalar as the REST API reads its time parameters
// (event.ParseTimeParam: GitLab's ISO 8601 forms; without an offset, UTC).
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("Time: %v is not a string", v)
	}
	t, err := event.ParseTimeParam(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("Time: %q is %w; use such as 2025-01-31T12:00:00Z (no offset: UTC) or 2025-01-31", s, err)
	}
	return t, nil
}
