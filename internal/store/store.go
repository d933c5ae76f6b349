// Package store defines the seam between auditstream and its SQL database: the Store interface,
// one params struct per method, the records it reads and writes, and the sentinel errors callers
// branch on. Two drivers implement it (store/sqlite and store/postgres); both pass the conformance
// suite in store/storetest. Driver types (database/sql, pgx) never cross this seam.
//
// Methods are safe for concurrent use. Every time is UTC; created_at values are kept with
// millisecond precision.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Drivers translate their own "no rows" and unique-violation errors into these.
var (
	// ErrNotFound means the record asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a unique constraint would be violated (a username, a path, an id), or,
	// as ErrVersionConflict, that a conditional update lost a race.
	ErrConflict = errors.New("store: conflict")
	// ErrVersionConflict means the record changed concurrently: DestinationUpdate's IfVersion no
	// longer matches. It wraps ErrConflict (errors.Is(err, ErrConflict) holds too), so check it
	// first to tell a lost race (re-read and retry) from a unique violation (a taken name, a
	// repeated header name or filter value).
	ErrVersionConflict = fmt.Errorf("%w: changed concurrently", ErrConflict)
)

// Store is everything auditstream keeps in SQL. It is the one seam with two implementations on
// both sides that we own, so it lives here and not where it is used.
type Store interface {
	// Migrate applies every embedded migration not yet applied. It is safe to call on every start
	// and from several processes at once.
	Migrate(ctx context.Context) error
	// Close releases the connection pool.
	Close() error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error

	// EventInsertMany inserts events in one transaction. It is idempotent by ID: a record whose
	// ID is already stored is skipped, not an error, so a redelivered batch is harmless.
	EventInsertMany(ctx context.Context, events []EventRecord) error
	// EventList returns events matching p, ordered by ID (descending unless p.Ascending).
	EventList(ctx context.Context, p EventListParams) ([]EventRecord, error)
	// EventCount counts the events matching p's filters (its paging fields are ignored).
	EventCount(ctx context.Context, p EventListParams) (int64, error)
	// EventVolume counts the events matching p.Filter per time bucket and event type, bucketed
	// in the database: one row per bucket and type that has events, ordered by bucket, then
	// type. An error, without querying, when p.Validate fails.
	EventVolume(ctx context.Context, p EventVolumeParams) ([]EventVolume, error)
	// EventGet returns one event or ErrNotFound.
	EventGet(ctx context.Context, id int64) (EventRecord, error)
	// EventDeleteBefore deletes at most limit events created before t and returns how many it
	// deleted, so that retention purges run in bounded steps.
	EventDeleteBefore(ctx context.Context, t time.Time, limit int) (int64, error)
	// EventMaxID returns the highest stored event ID, 0 when there is none.
	EventMaxID(ctx context.Context) (int64, error)

	// NamespaceCreate inserts a namespace and returns it with Key (and ID, when p.ID is 0: the
	// next free GitLab id of that kind) assigned. ErrConflict when the path or the (kind, id) is
	// taken.
	NamespaceCreate(ctx context.Context, p NamespaceCreateParams) (Namespace, error)
	// NamespaceGetByKey, NamespaceGetByID and NamespaceGetByPath return one namespace or ErrNotFound.
	NamespaceGetByKey(ctx context.Context, key int64) (Namespace, error)
	NamespaceGetByID(ctx context.Context, kind NamespaceKind, id int64) (Namespace, error)
	NamespaceGetByPath(ctx context.Context, fullPath string) (Namespace, error)
	// NamespaceSetID gives a namespace learned without a GitLab id (an ancestor seen only in a
	// path) its id. ErrConflict when another namespace of that kind has the id.
	NamespaceSetID(ctx context.Context, key, id int64) error
	// NamespaceList returns every namespace, ordered by Key.
	NamespaceList(ctx context.Context) ([]Namespace, error)
	// NamespaceMove moves a namespace and its whole subtree to a new full path, under a new parent
	// (0: top level). Descendants' full paths change with it, and when the moved namespace's top-level
	// group changes, the subtree's TopKey becomes the new top-level group's key (the moved node's own
	// key when it becomes top level). Its Name is kept; Path becomes the last segment. ErrConflict
	// when newFullPath or any descendant's new path is taken; ErrNotFound when the namespace or the
	// new parent does not exist; an error when the new parent is the namespace itself or inside its
	// subtree, or is a project. One transaction.
	NamespaceMove(ctx context.Context, p NamespaceMoveParams) error

	// UserCreate inserts a user. When p.ID is 0 the next free id is assigned: for a person the
	// highest id below LocalIDBase plus one, for a bot (p.Bot) the highest id from LocalIDBase
	// on plus one (LocalIDBase+1 for the first), so that bots never take an id a GitLab user may
	// be given later. ErrConflict when the id or username is taken.
	UserCreate(ctx context.Context, p UserCreateParams) (User, error)
	UserGet(ctx context.Context, id int64) (User, error)
	UserGetByUsername(ctx context.Context, username string) (User, error)
	// UserList returns users ordered by id.
	UserList(ctx context.Context) ([]User, error)

	// TokenCreate stores a personal access token by its hash.
	TokenCreate(ctx context.Context, p TokenCreateParams) (Token, error)
	// TokenGetByHash returns the token with that SHA-256 hash, revoked or not, or ErrNotFound.
	TokenGetByHash(ctx context.Context, hash []byte) (Token, error)
	// TokenList returns the tokens of a user ordered by id.
	TokenList(ctx context.Context, userID int64) ([]Token, error)
	// TokenListByNamespace returns the tokens bound to a group (group access tokens, whatever
	// their state), ordered by id.
	TokenListByNamespace(ctx context.Context, namespaceKey int64) ([]Token, error)
	// TokenRevoke marks a token revoked. ErrNotFound when it does not exist.
	TokenRevoke(ctx context.Context, id int64) error
	// TokenCount counts all tokens (used to decide whether to create the first admin token).
	TokenCount(ctx context.Context) (int64, error)

	// WebSessionCreate stores a new session. ErrConflict when IDHash is taken; ErrNotFound when
	// the user does not exist. A zero CreatedAt means now.
	WebSessionCreate(ctx context.Context, s WebSession) error
	// WebSessionGet returns the session with that id hash, expired or not, or ErrNotFound.
	WebSessionGet(ctx context.Context, idHash []byte) (WebSession, error)
	// WebSessionDelete deletes the session with that id hash; nil when there is none.
	WebSessionDelete(ctx context.Context, idHash []byte) error
	// WebSessionDeleteExpired deletes the sessions whose ExpiresAt is not after now and
	// returns how many.
	WebSessionDeleteExpired(ctx context.Context, now time.Time) (int64, error)

	// MemberUpsert sets a user's access level on a namespace, creating or replacing the membership.
	MemberUpsert(ctx context.Context, p MemberUpsertParams) (Member, error)
	// MemberGet returns the direct membership of a user on a namespace or ErrNotFound.
	MemberGet(ctx context.Context, namespaceKey, userID int64) (Member, error)
	// MemberList returns the direct members of a namespace ordered by user id.
	MemberList(ctx context.Context, namespaceKey int64) ([]Member, error)
	// MemberListByUser returns every direct membership of a user.
	MemberListByUser(ctx context.Context, userID int64) ([]Member, error)
	// MemberDelete removes a direct membership. ErrNotFound when there is none.
	MemberDelete(ctx context.Context, namespaceKey, userID int64) error

	// DestinationCreate inserts a streaming destination with its headers and filters in one
	// transaction and returns it as stored, at Version 1, every header and namespace filter with
	// a fresh ID (the IDs given must be 0; any other is an error). ErrConflict when the name is
	// taken within its scope and namespace, or when two headers share a name or a filter list
	// repeats a value; ErrNotFound when the namespace (or a namespace filter's namespace) does
	// not exist.
	DestinationCreate(ctx context.Context, p DestinationCreateParams) (Destination, error)
	// DestinationGet returns one destination with its headers and filters, or ErrNotFound.
	DestinationGet(ctx context.Context, id int64) (Destination, error)
	// DestinationByHeader returns the destination (with its headers and filters, as
	// DestinationGet) that owns the header with that ID, or ErrNotFound.
	DestinationByHeader(ctx context.Context, headerID int64) (Destination, error)
	// DestinationByNamespaceFilter returns the destination (with its headers and filters, as
	// DestinationGet) that owns the namespace filter with that ID, or ErrNotFound.
	DestinationByNamespaceFilter(ctx context.Context, filterID int64) (Destination, error)
	// DestinationList returns the destinations selected by p, with their headers and filters,
	// ordered by id.
	DestinationList(ctx context.Context, p DestinationListParams) ([]Destination, error)
	// DestinationUpdate changes the fields p sets, replacing the header and filter lists it sets,
	// and UpdatedAt, and increments Version, all in one transaction, and returns the updated
	// destination. In a replacement header or namespace filter list, an entry with ID 0 is new
	// and gets a fresh ID; an entry with another ID replaces the entry with that ID, which must
	// belong to this destination, and keeps the ID; entries of the old list whose ID is not in
	// the new one are deleted. When p.IfVersion is not 0 and the destination's Version differs,
	// the update fails with ErrVersionConflict. ErrNotFound when the destination (or a namespace
	// filter's namespace, or an entry ID that is not one of this destination's) does not exist;
	// ErrConflict as for DestinationCreate; an error when an entry ID is given twice. On error
	// nothing is changed.
	DestinationUpdate(ctx context.Context, p DestinationUpdateParams) (Destination, error)
	// DestinationDelete removes a destination with its headers and filters (their IDs are not
	// reused). ErrNotFound when it does not exist.
	DestinationDelete(ctx context.Context, id int64) error
	// DestinationCount counts the destinations, active or not, of one scope and namespace
	// (namespaceKey 0 for ScopeInstance).
	DestinationCount(ctx context.Context, scope DestinationScope, namespaceKey int64) (int64, error)

	// DeadLetterAdd stores an event a destination could not take, and returns it as stored. It
	// is idempotent per (DestinationID, EventID): when the destination already has a dead letter
	// for the event, its StatusCode, Error, Attempts and LastFailedAt are set from p, everything
	// else is kept, and the row (with its ID) is returned, so that an engine retrying after a
	// crash adds nothing twice. ErrNotFound when the destination does not exist.
	DeadLetterAdd(ctx context.Context, p DeadLetterAddParams) (DeadLetter, error)
	// DeadLetterList returns dead letters of one destination, newest (highest ID) first, paged
	// by keyset: see DeadLetterListParams. An error when p.DestinationID is not set or p.Limit
	// is not in 1..MaxDeliveryListLimit; an empty list (not ErrNotFound) when the destination
	// does not exist.
	DeadLetterList(ctx context.Context, p DeadLetterListParams) ([]DeadLetter, error)
	// DeadLetterCount counts the dead letters of a destination (0 when it does not exist).
	DeadLetterCount(ctx context.Context, destinationID int64) (int64, error)
	// DeadLetterGet returns one dead letter or ErrNotFound.
	DeadLetterGet(ctx context.Context, id int64) (DeadLetter, error)
	// DeadLetterDelete deletes the dead letters of destinationID whose IDs are in ids, or every
	// dead letter of the destination when ids is empty, and returns how many it deleted. IDs of
	// another destination's dead letters, and IDs that do not exist, are ignored: they are never
	// deleted and are not an error.
	DeadLetterDelete(ctx context.Context, destinationID int64, ids []int64) (int64, error)
	// DeadLetterTrim deletes the oldest (lowest ID) dead letters of a destination beyond the
	// newest keep, and returns how many it deleted. keep 0 deletes them all; a negative keep is
	// an error. The cap is the caller's.
	DeadLetterTrim(ctx context.Context, destinationID int64, keep int) (int64, error)

	// DeliveryAttemptAdd appends attempts (of one or several destinations) to the delivery log in
	// one transaction: all are stored or none. The store assigns each its ID (the IDs given must
	// be 0; any other is an error) and a zero At becomes now. ErrNotFound when a destination does
	// not exist. An empty list is a no-op.
	DeliveryAttemptAdd(ctx context.Context, attempts []DeliveryAttempt) error
	// DeliveryAttemptList returns the newest (highest ID, that is most recently added) limit
	// attempts of a destination, newest first. An error when limit is not in
	// 1..MaxDeliveryListLimit; an empty list when the destination does not exist.
	DeliveryAttemptList(ctx context.Context, destinationID int64, limit int) ([]DeliveryAttempt, error)
	// DeliveryAttemptTrim deletes the oldest (lowest ID) attempts of a destination beyond the
	// newest keep, and returns how many it deleted. keep 0 deletes them all; a negative keep is
	// an error. The bound is the caller's.
	DeliveryAttemptTrim(ctx context.Context, destinationID int64, keep int) (int64, error)

	// DestinationStamp summarises the destinations so that a caller polling for changes can
	// tell, with one cheap query, whether anything was created, changed or deleted since it
	// last listed them.
	DestinationStamp(ctx context.Context) (DestinationStamp, error)
	// DestinationVersions returns the id and version of every destination, ordered by id: what
	// a caller compares with what it has to find what changed, without reading every
	// destination's configuration.
	DestinationVersions(ctx context.Context) ([]DestinationVersion, error)
	// DeliveryPositionList returns every stored delivery position, ordered by partition and
	// destination.
	DeliveryPositionList(ctx context.Context) ([]DeliveryPosition, error)
	// DeliveryPositionSave puts p.Put (inserting or replacing by partition and destination) and
	// removes p.Delete, in one transaction: all or nothing. Keys that do not exist are ignored.
	DeliveryPositionSave(ctx context.Context, p DeliveryPositionSaveParams) error

	// AuditOutboxAdd queues the audit event of a change made on the database directly (by the
	// CLI), for the server to publish, and returns it with its ID. IDs grow and are never
	// reused, also after every row was deleted, so a key derived from one names one event.
	// A zero CreatedAt means now.
	AuditOutboxAdd(ctx context.Context, p AuditOutboxAddParams) (AuditOutboxEntry, error)
	// AuditOutboxList returns at most p.Limit (1..MaxDeliveryListLimit) queued events with an
	// ID above p.AfterID, oldest (lowest ID) first.
	AuditOutboxList(ctx context.Context, p AuditOutboxListParams) ([]AuditOutboxEntry, error)
	// AuditOutboxDelete removes a queued event once it is published. A missing ID is not an
	// error: another replica may have deleted it first.
	AuditOutboxDelete(ctx context.Context, id int64) error

	// RepublishedAdd records that the events of ids (ids the log lost, delivered again from
	// the store's copies: auditstream trail republish) were re-published at at. Ids recorded
	// before keep their first time. At most MaxListIDs ids.
	RepublishedAdd(ctx context.Context, ids []int64, at time.Time) error
	// RepublishedList returns those of ids (at most MaxListIDs) that RepublishedAdd recorded,
	// in ascending order.
	RepublishedList(ctx context.Context, ids []int64) ([]int64, error)

	// RetentionSet sets how long the stored events of the top-level group with key groupKey
	// are kept; 0 removes the group's own setting (the instance default applies again).
	// ErrNotFound when the namespace does not exist.
	RetentionSet(ctx context.Context, groupKey int64, retention time.Duration) error
	// RetentionGet returns the group's own retention, 0 when it has none.
	RetentionGet(ctx context.Context, groupKey int64) (time.Duration, error)
	// RetentionList returns every group's own retention, by group key.
	RetentionList(ctx context.Context) (map[int64]time.Duration, error)
	// EventAgeList returns at most p.Limit stored events created before p.Before and after the
	// keyset (p.AfterCreatedAt, p.AfterID), oldest first (by created_at, then id), each with
	// the top-level group its entity is in now: what the retention purge decides on, without
	// the events' data.
	EventAgeList(ctx context.Context, p EventAgeListParams) ([]EventAge, error)
	// EventDeleteMany deletes the events with these ids (ids not stored are ignored) in one
	// transaction and returns how many it deleted.
	EventDeleteMany(ctx context.Context, ids []int64) (int64, error)

	// TrailSize returns the number of leaves of the tamper-evident tree (internal/trail): the
	// events 1..size are in it.
	TrailSize(ctx context.Context) (int64, error)
	// TrailAppend stores p.Tiles and moves the tree's size from p.OldSize to p.NewSize in one
	// transaction. ErrVersionConflict when the stored size is not p.OldSize (another writer
	// moved it), and then nothing is written.
	TrailAppend(ctx context.Context, p TrailAppendParams) error
	// TrailTiles returns the stored tiles at keys, in that order, each as wide as it is stored
	// (at least as wide as the tree's size needs), or ErrNotFound when one is not stored.
	TrailTiles(ctx context.Context, keys []TrailTileKey) ([]TrailTile, error)
	// TrailMarkPurged marks the leaves (0-based: event id - 1) that are TrailStored or
	// TrailRecovered as TrailPurged (retention is about to delete their events); others, and
	// leaves the tree does not have, are left as they are.
	TrailMarkPurged(ctx context.Context, leaves []int64) error
	// TrailCheckpointAdd stores a signed checkpoint and returns it with its ID. A zero
	// CreatedAt means now.
	TrailCheckpointAdd(ctx context.Context, c TrailCheckpoint) (TrailCheckpoint, error)
	// TrailCheckpointList returns at most p.Limit (1..MaxDeliveryListLimit) checkpoints with
	// an ID above p.AfterID, oldest first.
	TrailCheckpointList(ctx context.Context, p TrailCheckpointListParams) ([]TrailCheckpoint, error)
	// TrailCheckpointLatest returns the checkpoint stored last, or ErrNotFound.
	TrailCheckpointLatest(ctx context.Context) (TrailCheckpoint, error)
}

// EventAgeListParams pages EventAgeList by keyset over (created_at, id).
type EventAgeListParams struct {
	Before         time.Time // only events created before this
	AfterCreatedAt time.Time // keyset: events after (AfterCreatedAt, AfterID); zero: from the oldest
	AfterID        int64
	Limit          int // 1..MaxDeliveryListLimit
}

// EventAge is what the retention purge knows of a stored event. TopKey is the key of the
// top-level group of the event's entity (a Group or Project event whose namespace is known,
// wherever it is now), 0 for instance and user events and for entities not known as namespaces.
type EventAge struct {
	ID        int64
	CreatedAt time.Time
	TopKey    int64
}

// TrailLeafKind says what a leaf of the trail's tree stands for, kept one byte per leaf next
// to the leaves' tile.
type TrailLeafKind int8

// The kinds of leaves.
const (
	// TrailNode is no leaf kind: a hash above the leaves, or a kind not known.
	TrailNode TrailLeafKind = 0
	// TrailStored is an event of a saved_to_database type: the store should have it.
	TrailStored TrailLeafKind = 1
	// TrailStreamOnly is an event of a stream-only type: the store never has it.
	TrailStreamOnly TrailLeafKind = 2
	// TrailLost is an event the log lost before the tree had it and the store had no copy of:
	// its leaf is the hash of a fixed placeholder (trail.LostLeaf).
	TrailLost TrailLeafKind = 3
	// TrailRecovered is an event the log lost before the tree had it, made a leaf from the
	// store's copy.
	TrailRecovered TrailLeafKind = 4
	// TrailPurged is a stored event that retention deleted (or is about to): the store no
	// longer has it, by design.
	TrailPurged TrailLeafKind = 5
)

// TrailTileHeight is the height of the tiles the trail's tree is stored in
// (golang.org/x/mod/sumdb/tlog.Tile.H): a tile of level L holds up to TrailTileWidth hashes of
// the tree's level L*TrailTileHeight, from which tlog.HashFromTile computes the hashes of the
// TrailTileHeight levels from there up.
const TrailTileHeight = 8

// TrailTileWidth is the most hashes a tile holds (a full tile).
const TrailTileWidth = 1 << TrailTileHeight

// TrailTileKey names a tile: its level and its index N at that level (tlog.Tile's L and N).
type TrailTileKey struct {
	Level int
	N     int64
}

// TrailTile is a tile of the trail's tree: the tlog tile data of tile (Level, N) of height
// TrailTileHeight and width len(Hashes)/32, and on level 0 the kind of each of its leaves.
type TrailTile struct {
	TrailTileKey
	// Hashes is the tile's data: its bottom hashes, 32 bytes each, 1 to TrailTileWidth of them
	// (a tile at the tree's right edge is partial, and is stored again wider as the tree grows).
	Hashes []byte
	// Kinds is, on level 0, one per leaf. Read from the store, it holds the kinds of all the
	// tile's leaves; in TrailAppendParams, only those of the leaves the append adds (from
	// OldSize on), which the store appends to the kinds it has, so that leaves marked since
	// (TrailMarkPurged) keep their mark. Empty above level 0.
	Kinds []TrailLeafKind
}

// TrailAppendParams extends the tree from OldSize to NewSize leaves. Tiles holds every tile an
// append from OldSize to NewSize writes (tlog.NewTiles): full tiles once, and the partial ones
// at the right edge with all their hashes (each replaces the narrower one stored), so that the
// store holds every hash of the tree at NewSize.
type TrailAppendParams struct {
	OldSize, NewSize int64
	Tiles            []TrailTile
}

// TrailCheckpoint is a signed checkpoint of the tree: Note is the signed note's text (a C2SP
// tlog-checkpoint body and its signature lines), Size the tree size it commits to.
type TrailCheckpoint struct {
	ID        int64
	Size      int64
	Note      []byte
	CreatedAt time.Time
}

// TrailCheckpointListParams pages TrailCheckpointList by keyset.
type TrailCheckpointListParams struct {
	AfterID int64
	Limit   int
}

// AuditOutboxEntry is an audit event waiting in the outbox. Event and Producer are the caller's
// JSON documents, returned byte for byte.
type AuditOutboxEntry struct {
	ID        int64
	Event     []byte
	Producer  []byte
	CreatedAt time.Time
}

// AuditOutboxAddParams queues one event.
type AuditOutboxAddParams struct {
	Event     []byte
	Producer  []byte
	CreatedAt time.Time
}

// AuditOutboxListParams pages AuditOutboxList by keyset.
type AuditOutboxListParams struct {
	AfterID int64
	Limit   int
}

// DestinationStamp changes whenever a destination is created, updated or deleted, in the
// transaction of the change: the number of such changes.
type DestinationStamp struct {
	Changes int64
}

// DestinationVersion is a destination's id and version (Store.DestinationVersions).
type DestinationVersion struct {
	ID, Version int64
}

// DeliveryPosition records how far the delivery engine has come. A destination's row
// (DestinationID > 0) says every event up to Position is done for it (delivered, filtered
// out or dead-lettered); Position -1 says it starts at its UpdatedAt instead (a new
// destination, or one activated after a pause that drops events). A partition's base row
// (DestinationID 0) stands for every destination of the partition whose id is at most KnownID
// and that has no row of its own. The rows are the engine's; the store only keeps them.
type DeliveryPosition struct {
	Partition     int
	DestinationID int64
	Position      int64
	KnownID       int64 // base rows only
}

// DeliveryPositionKey names one DeliveryPosition.
type DeliveryPositionKey struct {
	Partition     int
	DestinationID int64
}

// DeliveryPositionSaveParams changes delivery positions in one transaction.
type DeliveryPositionSaveParams struct {
	Put    []DeliveryPosition
	Delete []DeliveryPositionKey
}

// EventRecord is an audit event as the store keeps it: the columns that queries filter on, and
// the full event JSON (with its id) as the producer's data, returned unchanged.
type EventRecord struct {
	ID         int64
	CreatedAt  time.Time
	EventType  string
	EntityType string
	EntityID   int64
	AuthorID   int64
	Data       []byte
}

// EventListParams filters and pages EventList. Zero values mean "no filter".
type EventListParams struct {
	EntityType  string
	EntityID    int64 // when HasEntityID: only events of this entity (0 matches no real entity)
	HasEntityID bool
	// AlsoEntityID, when not 0 (and HasEntityID), matches too: a namespace's id assigned here
	// (LocalID), which its events carried before it adopted GitLab's id.
	AlsoEntityID  int64
	AuthorID      int64 // when HasAuthorID: only events by this author
	HasAuthorID   bool
	CreatedAfter  time.Time // inclusive
	CreatedBefore time.Time // inclusive
	EventType     string
	// Keyset: only IDs below (descending) or above (ascending) AfterID, when it is not 0.
	AfterID   int64
	Ascending bool
	Offset    int
	Limit     int // 0 means no limit
	// DataOnly fills only the records' ID and Data (the trail's pages of leaves read the
	// events' bytes alone); the filters still apply.
	DataOnly bool
}

// NamespaceKind is a group or a project.
type NamespaceKind string

// The namespace kinds.
const (
	KindGroup   NamespaceKind = "group"
	KindProject NamespaceKind = "project"
)

// Namespace is a group or project. Key is auditstream's stable internal id (it never changes,
// also not on rename, and is what log subjects carry); ID is the GitLab id, 0 while unknown.
type Namespace struct {
	Key       int64
	Kind      NamespaceKind
	ID        int64
	Name      string
	Path      string // last segment
	FullPath  string
	ParentKey int64 // 0 for a top-level group
	TopKey    int64 // the Key of the top-level group; its own Key for a top-level group
	CreatedAt time.Time
}

// LocalIDBase starts the range of namespace ids assigned here, to a group or project created
// through the API or CLI before GitLab told its id: LocalID(key) = LocalIDBase + key. 2^52 is
// far above any id GitLab's database hands out and below 2^53, so JavaScript clients read these
// ids exactly. GitLab's ids never fall in the range, so the two cannot collide.
const LocalIDBase int64 = 1 << 52

// LocalID is the id assigned here to the namespace with that key.
func LocalID(key int64) int64 { return LocalIDBase + key }

// IsLocalID reports whether id is in the range of ids assigned here.
func IsLocalID(id int64) bool { return id >= LocalIDBase }

// NamespaceCreateParams creates a namespace. ParentKey 0 makes a top-level group.
type NamespaceCreateParams struct {
	Kind      NamespaceKind
	ID        int64 // 0: assign the next free id of that kind below LocalIDBase, unless IDUnknown or LocalID
	IDUnknown bool  // keep ID 0: an ancestor learned from a path whose id nobody told us
	LocalID   bool  // ID becomes LocalID(Key): created here, before GitLab told its id
	Name      string
	FullPath  string
	ParentKey int64
	CreatedAt time.Time
}

// NamespaceMoveParams moves the namespace Key (and its subtree) to NewFullPath under
// NewParentKey; NewParentKey 0 makes it a top-level group.
type NamespaceMoveParams struct {
	Key          int64
	NewFullPath  string
	NewParentKey int64
}

// User is a person or bot that can hold tokens and memberships.
type User struct {
	ID        int64
	Username  string
	Name      string
	Email     string
	Admin     bool
	Bot       bool // the bot user of a group access token (GitLab's resource bot)
	CreatedAt time.Time
}

// UserCreateParams creates a user.
type UserCreateParams struct {
	ID        int64 // 0: assign the next free id (from LocalIDBase on for a bot)
	Username  string
	Name      string
	Email     string
	Admin     bool
	Bot       bool
	CreatedAt time.Time
}

// Token is a personal access token. Only its hash is stored.
type Token struct {
	ID        int64
	UserID    int64
	Name      string
	Hash      []byte
	Scopes    []string
	ExpiresAt time.Time // zero: never
	Revoked   bool
	CreatedAt time.Time
	// Impersonation marks an impersonation token (GitLab's): an admin's token that acts as
	// UserID, managed through the impersonation-token API and hidden from the user's own list.
	Impersonation bool
	// NamespaceKey is the group a group access token is bound to (its user is the token's
	// bot); 0 for personal access and impersonation tokens.
	NamespaceKey int64
	// AccessLevel is the access level a group access token was issued with; 0 for others.
	AccessLevel int
}

// TokenCreateParams creates a token.
type TokenCreateParams struct {
	UserID        int64
	Name          string
	Hash          []byte
	Scopes        []string
	ExpiresAt     time.Time
	CreatedAt     time.Time
	Impersonation bool
	NamespaceKey  int64 // a group access token's group; 0: none
	AccessLevel   int   // a group access token's access level
}

// WebSession is a signed-in browser session of the web UI. The cookie holds a random session
// id; only its SHA-256 hash is stored, as with tokens. Deleting the user deletes their sessions.
type WebSession struct {
	IDHash    []byte // SHA-256 of the session id; unique
	UserID    int64
	TokenHash []byte // SHA-256 of the personal access token the user signed in with
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Member is a user's direct access level on a namespace.
type Member struct {
	NamespaceKey int64
	UserID       int64
	AccessLevel  int
	ExpiresAt    time.Time // zero: never
	CreatedAt    time.Time
}

// MemberUpsertParams creates or replaces a membership.
type MemberUpsertParams struct {
	NamespaceKey int64
	UserID       int64
	AccessLevel  int
	ExpiresAt    time.Time
	CreatedAt    time.Time
}

// DestinationScope says who owns a streaming destination: a top-level group or the instance.
type DestinationScope string

// The destination scopes.
const (
	ScopeGroup    DestinationScope = "group"
	ScopeInstance DestinationScope = "instance"
)

// Destination is a streaming destination as the store keeps it. The store checks only that
// Scope is known, that NamespaceKey is set exactly for ScopeGroup, and that Name and Category
// are not empty; everything else (category names, config schema, limits) is the caller's.
//
// SecretToken, SigningSecret, PreviousSigningSecret and header values are stored and returned
// as given: callers seal them before and open them after, so the store never sees a secret in
// clear.
//
// Lists keep the order they were given in. An empty list, and an empty Config, come back nil,
// whether they were set as nil or as an empty slice.
//
// Version is 1 when created and grows by one with every successful DestinationUpdate, so that a
// read-modify-write (read, change a list, update with IfVersion) detects a concurrent change
// instead of overwriting it.
type Destination struct {
	ID           int64
	Version      int64
	Scope        DestinationScope
	NamespaceKey int64 // the Key of the top-level group; 0 for ScopeInstance
	Name         string
	Category     string // http, aws, gcp, gcs, splunk
	Config       []byte // a JSON object of the non-secret settings, returned byte for byte

	SecretToken           string    // sealed
	SigningSecret         string    // sealed
	PreviousSigningSecret string    // sealed; "" when none
	PreviousValidUntil    time.Time // end of the rotation grace period; zero when none

	Active  bool
	Headers []DestinationHeader

	// Filters. An empty allow list allows everything; the caller gives them their meaning.
	EventTypes     []string
	DenyEventTypes []string
	Categories     []string // event-type catalog categories
	DenyCategories []string
	Namespaces     []DestinationNamespace
	// FilterExpression is a CEL expression the caller compiles and checks; "" means none.
	FilterExpression string

	CreatedAt time.Time
	UpdatedAt time.Time
}

// DestinationHeader is a custom HTTP header sent with every delivery. Names are unique per
// destination (compared byte for byte).
//
// ID is assigned by the store: unique across all destinations, kept while the header exists
// (also when DestinationUpdate changes its name, value, active flag or position), and never
// reused after it is deleted. IDs grow but may have gaps. It is what GitLab's global id of a
// streaming header names.
type DestinationHeader struct {
	ID     int64
	Name   string
	Value  string // sealed
	Active bool
}

// DestinationNamespace is a namespace filter: a group (itself and its descendants) or a project.
// Keys are unique per destination and must name an existing namespace; a namespace cannot be
// deleted while a filter names it, so deleting it never widens what a destination receives.
//
// ID is assigned by the store with the same guarantees as DestinationHeader.ID (in a numbering
// of its own): unique across all destinations, kept across updates, never reused.
type DestinationNamespace struct {
	ID      int64
	Key     int64
	Project bool
}

// DestinationCreateParams creates a destination. UpdatedAt starts equal to CreatedAt. The IDs
// of Headers and Namespaces must be 0: the store assigns them.
type DestinationCreateParams struct {
	Scope                 DestinationScope
	NamespaceKey          int64
	Name                  string
	Category              string
	Config                []byte
	SecretToken           string
	SigningSecret         string
	PreviousSigningSecret string
	PreviousValidUntil    time.Time
	Active                bool
	Headers               []DestinationHeader
	EventTypes            []string
	DenyEventTypes        []string
	Categories            []string
	DenyCategories        []string
	Namespaces            []DestinationNamespace
	FilterExpression      string
	CreatedAt             time.Time // zero: now
}

// DestinationListParams selects destinations:
//   - Scope "": every destination of every scope (NamespaceKey must be 0), as the delivery
//     engine needs them;
//   - ScopeInstance: the instance's destinations (NamespaceKey must be 0);
//   - ScopeGroup: the destinations of the top-level group NamespaceKey (which must be set).
//
// Other combinations are an error, so that a forgotten key never lists every group's
// destinations.
type DestinationListParams struct {
	Scope        DestinationScope
	NamespaceKey int64
	ActiveOnly   bool // only destinations with Active set
	// IDs, when not nil, lists only the destinations of these ids (those that exist). At most
	// MaxListIDs.
	IDs []int64
}

// MaxListIDs bounds DestinationListParams.IDs.
const MaxListIDs = 1000

// DestinationUpdateParams changes a destination. A nil field is left unchanged; a list field
// replaces the whole list, and a pointer to an empty or nil slice empties it. A pointer to the
// zero time clears PreviousValidUntil. A destination's scope and namespace never change.
//
// In Headers and Namespaces, ID 0 adds an entry and an ID of one of the destination's entries
// keeps (and rewrites) that entry; see Store.DestinationUpdate.
//
// IfVersion, when not 0, makes the update conditional: it fails with ErrVersionConflict, and
// changes nothing, unless the destination's Version still equals IfVersion. 0 updates
// unconditionally.
type DestinationUpdateParams struct {
	ID                    int64
	IfVersion             int64
	Name                  *string
	Category              *string
	Config                *[]byte
	SecretToken           *string
	SigningSecret         *string
	PreviousSigningSecret *string
	PreviousValidUntil    *time.Time
	Active                *bool
	Headers               *[]DestinationHeader
	EventTypes            *[]string
	DenyEventTypes        *[]string
	Categories            *[]string
	DenyCategories        *[]string
	Namespaces            *[]DestinationNamespace
	FilterExpression      *string   // a pointer to "" clears it
	UpdatedAt             time.Time // zero: now; set even when nothing else changes
}

// MaxDeliveryListLimit is the largest page DeadLetterList and DeliveryAttemptList return.
const MaxDeliveryListLimit = 1000

// DeadLetter is an event a destination could not take (a permanent failure, or one older than
// the retry horizon), kept so that its owners can list and redeliver it. There is at most one
// per destination and event. Deleting the destination deletes its dead letters.
//
// ID is assigned by the store: unique across all destinations and never reused. Event is
// returned byte for byte; an empty Event comes back nil. Error is stored as given: the caller
// keeps secrets out of it.
type DeadLetter struct {
	ID            int64
	DestinationID int64
	EventID       int64 // the event's ID (its log sequence); not a reference: the event may be purged
	EventType     string
	Event         []byte // the event JSON as it would have been delivered
	StatusCode    int    // the last HTTP status; 0 when there was none
	Error         string // the last error message
	Attempts      int
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	CreatedAt     time.Time
}

// DeadLetterAddParams adds a dead letter, or updates the one the destination has for EventID;
// see Store.DeadLetterAdd. On an update only StatusCode, Error, Attempts and LastFailedAt are
// used (after applying the zero-time defaults below).
type DeadLetterAddParams struct {
	DestinationID int64
	EventID       int64
	EventType     string
	Event         []byte
	StatusCode    int
	Error         string
	Attempts      int
	FirstFailedAt time.Time // zero: LastFailedAt
	LastFailedAt  time.Time // zero: now
	CreatedAt     time.Time // zero: now
}

// DeadLetterListParams pages the dead letters of DestinationID (required), newest first: the
// first page has BeforeID 0, and each next page sets BeforeID to the ID of the last dead letter
// of the page before. Limit (1..MaxDeliveryListLimit) bounds a page; a page shorter than Limit
// is the last.
type DeadLetterListParams struct {
	DestinationID int64
	BeforeID      int64 // only IDs below it; 0: from the newest
	Limit         int
}

// DeliveryAttempt is an entry of a destination's delivery log: a bounded log (see
// Store.DeliveryAttemptTrim) of recent attempts, where every failure has its own entry and
// successes are aggregated (the engine writes one entry per window with their Count). Deleting
// the destination deletes its log.
//
// ID is assigned by the store: unique across all destinations, never reused, and growing in the
// order entries are added, which is the log's order (At need not be). Error is stored as given:
// the caller keeps secrets out of it.
type DeliveryAttempt struct {
	ID            int64
	DestinationID int64
	At            time.Time // when; for an aggregate, the end of its window
	Success       bool
	Count         int // events in the entry: 1 for a single failure; N for an aggregate or a failed batch
	FirstEventID  int64
	LastEventID   int64
	StatusCode    int    // HTTP status; 0 when there was none
	Error         string // error message; "" for a success
	DurationMs    int64  // of the request; for an aggregate, the mean
	Test          bool   // a "send test event" attempt
}
