package store

import (
	"errors"
	"time"
)

// MaxVolumeBuckets bounds EventVolumeParams.Buckets: a volume query never returns more than
// this many buckets per event type.
const MaxVolumeBuckets = 1000

// EventVolumeParams asks EventVolume how many events there are per time bucket and type.
type EventVolumeParams struct {
	// Filter selects the events as for EventList (its paging fields are ignored): the UI and
	// the APIs pass the same scope and filters as for the listing, so a volume never counts
	// an event its reader may not list.
	Filter EventListParams
	// Start is the start of the first bucket; Step the length of each (whole milliseconds, at
	// least one second); Buckets how many (1 to MaxVolumeBuckets). Events outside
	// [Start, Start+Step*Buckets) are not counted.
	Start   time.Time
	Step    time.Duration
	Buckets int
}

// End is the end of the last bucket (excluded).
func (p EventVolumeParams) End() time.Time { return p.Start.Add(p.Step * time.Duration(p.Buckets)) }

// Validate reports parameters EventVolume refuses.
func (p EventVolumeParams) Validate() error {
	switch {
	case p.Start.IsZero():
		return errors.New("event volume: Start is required")
	case p.Step < time.Second || p.Step%time.Millisecond != 0:
		return errors.New("event volume: Step must be whole milliseconds, at least a second")
	case p.Buckets < 1 || p.Buckets > MaxVolumeBuckets:
		return errors.New("event volume: Buckets must be from 1 to MaxVolumeBuckets")
	}
	return nil
}

// Window returns Filter narrowed to the buckets' time range, for the drivers' WHERE clause.
func (p EventVolumeParams) Window() EventListParams {
	f := p.Filter
	if f.CreatedAfter.IsZero() || f.CreatedAfter.Before(p.Start) {
		f.CreatedAfter = p.Start
	}
	last := p.End().Add(-time.Millisecond) // CreatedBefore is inclusive; stored times are milliseconds
	if f.CreatedBefore.IsZero() || f.CreatedBefore.After(last) {
		f.CreatedBefore = last
	}
	f.AfterID, f.Offset, f.Limit = 0, 0, 0
	return f
}

// EventVolume is how many events of one type fall in one bucket.
type EventVolume struct {
	Bucket    int       // 0 for the bucket at Start
	Start     time.Time // the bucket's start, UTC
	EventType string
	Count     int64
}
