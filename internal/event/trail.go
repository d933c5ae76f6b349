package event

// TypeTrailCheckpoint is the event type of the event the trail publishes for every checkpoint
// it signs (internal/trail): stream-only, instance scope. Its details carry tree_size,
// root_hash (standard base64), origin and checkpoint (the signed note's text). Object-store
// destinations always receive it and write the note next to their batches; other destinations
// receive it only when their event-type filter names it.
const TypeTrailCheckpoint = "auditstream_trail_checkpoint"
