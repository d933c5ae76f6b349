package sqlite

import "context"

// MigrateUpTo applies the embedded migrations up to version last, so that a test can fill a
// database at an older schema and then Migrate it.
func MigrateUpTo(ctx context.Context, s *Store, last int) error { return s.migrateUpTo(ctx, last) }
