package trail_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/trail"
)

// TestParseIDs: ids and ranges as Ranges writes them, ascending and each once, within a bound.
func TestParseIDs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []int64
		err  string
	}{
		{"", nil, ""},
		{"5-9,12", []int64{5, 6, 7, 8, 9, 12}, ""},
		{" 3 , 4-4 ", []int64{3, 4}, ""},
		{"9-3", nil, "not a range"},
		{"0", nil, "not an id"},
		{"x", nil, "not an id"},
		{"5,5", nil, "ascending"},
		{"7,3", nil, "ascending"},
		{"1-11", nil, "more than 10 ids"},
	} {
		got, err := trail.ParseIDs(c.in, 10)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, got, c.in)
		if len(got) > 0 {
			again, err := trail.ParseIDs(trail.Ranges(got), 10)
			require.NoError(t, err)
			require.Equal(t, got, again, "Ranges writes what ParseIDs reads")
		}
	}
}
