package streamconfig_test

import (
	"testing"

	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// TestSelfAuditTypesAreInTheCatalog: every event type a change may record is one the
// embedded catalog has, so a self-audit event is never refused by validation.
func TestSelfAuditTypesAreInTheCatalog(t *testing.T) {
	cat, err := event.Load("")
	if err != nil {
		t.Fatal(err)
	}
	types := streamconfig.EventTypes()
	if len(types) < 30 {
		t.Fatalf("only %d types", len(types))
	}
	for _, name := range types {
		if cat.Lookup(name) == nil {
			t.Errorf("%s is not in the catalog", name)
		}
	}
}
