package delivery

import (
	"slices"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/store"
)

// checkpointRule is how a destination takes the trail's checkpoint events
// (event.TypeTrailCheckpoint).
type checkpointRule uint8

const (
	checkpointsSkipped  checkpointRule = iota // not delivered
	checkpointsFiltered                       // delivered when the filters take it
	checkpointsAlways                         // delivered whatever the filters say
)

// checkpointsOf says how d takes checkpoint events: object stores (S3, GCS) always, since they
// write each checkpoint next to their batches; other destinations only when their event-type
// filter names the type (opt-in), and then subject to their other filters. A filter that
// allows every type, or a category, does not opt in.
func checkpointsOf(d store.Destination) checkpointRule {
	switch {
	case d.Category == destination.CategoryAWS || d.Category == destination.CategoryGCS:
		return checkpointsAlways
	case slices.Contains(d.EventTypes, event.TypeTrailCheckpoint):
		return checkpointsFiltered
	}
	return checkpointsSkipped
}
