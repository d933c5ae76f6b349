package format_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/event"
)

// mappingDoc renders docs/ocsf-mapping.md from the catalog, so the page cannot drift from the
// YAML (go test ./internal/destination/format -update rewrites it).
func mappingDoc(cat *event.Catalog) string {
	var b strings.Builder
	b.WriteString("# OCSF mapping of the event types\n\n")
	b.WriteString("Generated from the `ocsf` key of each type in `internal/event/types/` by\n")
	b.WriteString("`go test ./internal/destination/format -update`; a test fails when it is stale. How the\n")
	b.WriteString("fields are filled is in `destinations.md` (*Output formats*). OCSF version " + event.OCSFVersion + ".\n\n")
	fmt.Fprintf(&b, "%d event types.\n\n", cat.Len())
	b.WriteString("| event type | OCSF class (class_uid) | activity (activity_id) | status |\n| --- | --- | --- | --- |\n")
	for _, typ := range cat.Types() {
		c := event.LookupOCSFClass(typ.OCSF.Class)
		id := c.Activities[typ.OCSF.Activity]
		status := "success"
		if typ.OCSF.Status != "" {
			status = typ.OCSF.Status
		}
		fmt.Fprintf(&b, "| `%s` | %s (%d) | %s (%d) | %s |\n", typ.Name, c.Caption, c.UID, c.ActivityCaptions[id], id, status)
	}
	return b.String()
}

func TestMappingDocInSync(t *testing.T) {
	t.Parallel()
	_, cat := setup(t)
	p := filepath.Join("..", "..", "..", "docs", "ocsf-mapping.md")
	want := mappingDoc(cat)
	if *update {
		require.NoError(t, os.WriteFile(p, []byte(want), 0o644))
	}
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "docs/ocsf-mapping.md is stale: go test ./internal/destination/format -update")
}
