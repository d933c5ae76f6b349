package delivery

import (
	"slices"

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

// checkpointsOf says how d takes checkpoint events: always when its category keeps them
// (Config.CheckpointKeepers: the object stores, which write each checkpoint next to their
// batches); otherwise only when its event-type filter names the type (opt-in), and then subject
// to its other filters. A filter that allows every type, or a category, does not opt in.
func (e *Engine) checkpointsOf(d store.Destination) checkpointRule {
	switch {
	case e.checkpointKeepers[d.Category]:
		return checkpointsAlways
	case slices.Contains(d.EventTypes, event.TypeTrailCheckpoint):
		return checkpointsFiltered
	}
	return checkpointsSkipped
}
