// Command auditstream records audit events and streams them to their owners' destinations.
// It only parses flags and environment variables and calls internal/app.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditstream/auditstream/internal/app"
	"github.com/auditstream/auditstream/internal/event"
	"github.com/auditstream/auditstream/internal/memlimit"
	"github.com/auditstream/auditstream/internal/store"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	cfg := app.Defaults()
	rootCmd := &cobra.Command{
		Use:           "auditstream",
		Short:         "Record audit events and stream them to their owners' destinations",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := rootCmd.PersistentFlags()
	pf.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the SQLite database and the embedded log")
	pf.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "postgres://… for PostgreSQL; empty for SQLite in the data dir")
	pf.StringVar(&cfg.EventTypesDir, "event-types-dir", cfg.EventTypesDir, "directory of event-type YAML files that add to or override the embedded catalog")
	pf.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")

	rootCmd.AddCommand(serveCmd(&cfg), migrateCmd(&cfg), eventTypesCmd(&cfg), userCmd(&cfg), tokenCmd(&cfg),
		namespaceCmd(&cfg, store.KindGroup), namespaceCmd(&cfg, store.KindProject), memberCmd(&cfg), destinationCmd(&cfg), emitCmd(),
		verifyCmd(), trailCmd(&cfg))
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := bindEnv(cmd); err != nil {
			return err
		}
		cfg.AdminToken = os.Getenv("AUDITSTREAM_ADMIN_TOKEN")
		cfg.SecretKey = os.Getenv("AUDITSTREAM_SECRET_KEY") // not a flag: secrets stay out of ps output
		cfg.TrailKey = os.Getenv("AUDITSTREAM_TRAIL_KEY")
		return nil
	}
	return rootCmd
}

// bindEnv sets every flag not given on the command line from AUDITSTREAM_<FLAG_NAME>.
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "AUDITSTREAM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// durationValue is a flag that takes Go durations plus days ("7d").
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string { return v.d.String() }
func (v durationValue) Type() string   { return "duration" }
func (v durationValue) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 7d or 36h", s)
		}
		*v.d = time.Duration(days * 24 * float64(time.Hour))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 7d or 36h", s)
	}
	*v.d = d
	return nil
}

func serveCmd(cfg *app.Config) *cobra.Command {
	memoryLimitRatio := 0.9
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the service (HTTP API, ingest, log, store consumer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); stop() }() // once draining, a second signal ends the process at once
			logger := app.NewLogger(os.Stderr, cfg.LogLevel)
			container, limit, err := memlimit.FromContainer(memlimit.Root, memlimit.Self, memoryLimitRatio)
			if err != nil {
				return fmt.Errorf("--memory-limit-ratio: %w", err)
			}
			if limit > 0 {
				logger.Info("Go's soft memory limit set from the container's", "container_bytes", container, "soft_limit_bytes", limit, "ratio", memoryLimitRatio)
			}
			a, err := app.New(ctx, *cfg, logger, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&memoryLimitRatio, "memory-limit-ratio", memoryLimitRatio, "set Go's soft memory limit to this share of the container's memory limit (cgroup), so that the garbage collector works harder near it rather than the process being killed or stalling at the limit; 0 turns it off, and GOMEMLIMIT, when set, wins")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP listen address")
	f.StringVar(&cfg.NATSURL, "nats-url", cfg.NATSURL, "external NATS server or cluster (nats://…); empty runs NATS embedded")
	f.StringVar(&cfg.NATSListen, "nats-listen", cfg.NATSListen, "let NATS clients connect to the embedded server at a loopback host:port; it has no authentication (default: no listener)")
	f.IntVar(&cfg.NATSReplicas, "nats-replicas", cfg.NATSReplicas, "replicas of the stream, its consumers and the lease bucket (default: 3 on a NATS cluster, 1 otherwise)")
	f.Var(durationValue{&cfg.LogMaxAge}, "log-max-age", "how long the log keeps events: a stopped destination's buffer window")
	f.Int64Var(&cfg.LogMaxBytes, "log-max-bytes", cfg.LogMaxBytes, "cap on the log's size in bytes; 0 for none (oldest events go first)")
	f.BoolVar(&cfg.LogSyncAlways, "log-sync-always", cfg.LogSyncAlways, "fsync every log write before acknowledging it (survives power loss; slower)")
	f.Var(durationValue{&cfg.DuplicateWindow}, "duplicate-window", "how long idempotency keys are remembered")
	f.Var(durationValue{&cfg.Retention}, "retention", "delete stored events older than this; 0 keeps them (the default of top-level groups without a retention of their own)")
	f.Var(durationValue{&cfg.RetentionMin}, "retention-min", "shortest retention an owner may give a top-level group's stored events (whole days, at least 1)")
	f.Var(durationValue{&cfg.RetentionMax}, "retention-max", "longest retention an owner may give a top-level group's stored events; 0 for no ceiling")
	f.Var(durationValue{&cfg.RetentionPurgeInterval}, "retention-purge-interval", "how often the retention purge runs (in one replica at a time)")
	f.BoolVar(&cfg.Trail, "trail", cfg.Trail, "keep the tamper-evident trail: a Merkle tree of every event of the log and signed checkpoints (key: AUDITSTREAM_TRAIL_KEY or trail.key in the data dir)")
	f.StringVar(&cfg.TrailOrigin, "trail-origin", cfg.TrailOrigin, "the log's name in its checkpoints, and the name of a signing key created for it")
	f.Int64Var(&cfg.TrailCheckpointEvents, "trail-checkpoint-events", cfg.TrailCheckpointEvents, "sign a checkpoint once this many events were added since the last")
	f.Var(durationValue{&cfg.TrailCheckpointInterval}, "trail-checkpoint-interval", "sign a checkpoint this long after the last one when events were added since")
	f.Var(durationValue{&cfg.TrailAuditInterval}, "trail-audit-interval", "how often the service verifies its own trail from the store, as auditstream verify does: what was added since the last audit; 0 for never")
	f.Var(durationValue{&cfg.TrailAuditFullInterval}, "trail-audit-full-interval", "how often an audit verifies the whole trail again, to find what changed after it was checked (the first after a start at a random time within it); 0 for every audit")
	f.Int64Var(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest ingest request body")
	f.Int64Var(&cfg.MaxInflightBytes, "max-inflight-bytes", cfg.MaxInflightBytes, "ingest body bytes held at once, each charged what has arrived; past it ingest answers 503 busy")
	f.Int64Var(&cfg.MaxInflightBytesPerToken, "max-inflight-bytes-per-token", cfg.MaxInflightBytesPerToken, "ingest body bytes one token's requests may hold at once (default: a quarter of --max-inflight-bytes, at least --max-request-bytes)")
	f.Int64Var(&cfg.IngestMinBodyRate, "ingest-min-body-rate", cfg.IngestMinBodyRate, "slowest an ingest body may arrive after the grace period, in bytes per second; 0 for no minimum")
	f.Var(durationValue{&cfg.IngestBodyGrace}, "ingest-body-grace", "how long an ingest body may take before the minimum rate applies")
	f.Var(durationValue{&cfg.IngestBodyTimeout}, "ingest-body-timeout", "longest an ingest body may take to arrive")
	f.IntVar(&cfg.MaxEventBytes, "max-event-bytes", cfg.MaxEventBytes, "largest encoded event")
	f.IntVar(&cfg.MaxEventsPerRequest, "max-events-per-request", cfg.MaxEventsPerRequest, "most events in one ingest request")
	f.Float64Var(&cfg.IngestRate, "ingest-rate", cfg.IngestRate, "events per second each token may publish; 0 for no limit")
	f.IntVar(&cfg.IngestBurst, "ingest-burst", cfg.IngestBurst, "burst of the ingest rate limit, in events")
	f.IntVar(&cfg.MaxDestinations, "max-destinations", cfg.MaxDestinations, "streaming destinations per group and for the instance")
	f.IntVar(&cfg.MaxDestinationFilters, "max-destination-filters", cfg.MaxDestinationFilters, "event-type and category filters per destination")
	f.IntVar(&cfg.GraphQLMaxComplexity, "graphql-max-complexity", cfg.GraphQLMaxComplexity, "largest complexity of a GraphQL operation (a page multiplies what is selected of each item)")
	f.IntVar(&cfg.GraphQLConcurrentPerUser, "graphql-concurrent-per-user", cfg.GraphQLConcurrentPerUser, "GraphQL reads one user may run at once (more wait their turn); 0 for no bound")
	f.IntVar(&cfg.GraphQLConcurrentReads, "graphql-concurrent-reads", cfg.GraphQLConcurrentReads, "GraphQL reads of all users that may run at once (more wait their turn), so that reads leave CPU to ingest; 0 for half the CPUs (at least 1), -1 for no bound")
	f.Var(durationValue{&cfg.GraphQLTimeout}, "graphql-timeout", "longest one GraphQL request may run")
	f.IntVar(&cfg.ConfigMutationsPerMinute, "config-mutations-per-minute", cfg.ConfigMutationsPerMinute, "destination changes each user may make per minute; 0 for no limit")
	f.BoolVar(&cfg.AllowPrivateDestinations, "allow-private-destinations", cfg.AllowPrivateDestinations, "let destinations reach loopback, private, link-local and other internal addresses")
	f.StringVar(&cfg.DestinationAllowCIDRs, "destination-allow-cidrs", cfg.DestinationAllowCIDRs, "comma-separated CIDRs or IPs destinations may reach even when internal")
	f.Var(durationValue{&cfg.DeliveryRetryHorizon}, "delivery-retry-horizon", "how long an event is retried before it goes to the dead letters (default: half the log max age, at most 72h)")
	f.Var(durationValue{&cfg.TokenCacheTTL}, "token-cache-ttl", "how long a checked token is trusted without asking the store")
	f.StringVar(&cfg.ExternalURL, "external-url", cfg.ExternalURL, "base URL for links in responses (default: from the request); https also makes the UI's cookies Secure")
	f.Var(durationValue{&cfg.WebSessionTTL}, "web-session-ttl", "how long a sign-in to the web UI lasts (never longer than the token)")
	f.StringVar(&cfg.DebugListen, "debug-listen", cfg.DebugListen, "serve Go profiles at /debug/pprof/ on this address (keep it on loopback)")
	f.Var(durationValue{&cfg.ShutdownTimeout}, "shutdown-timeout", "how long a graceful stop may take")
	return cmd
}

func migrateCmd(cfg *app.Config) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := app.OpenStore(cmd.Context(), *cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return st.Close()
		},
	}
}

func eventTypesCmd(cfg *app.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "event-types",
		Short: "List the event-type catalog (embedded plus --event-types-dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cat, err := event.Load(cfg.EventTypesDir)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(cat.Types())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCATEGORY\tSTORED\tSTREAMED\tSCOPE")
			for _, t := range cat.Types() {
				fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%s\n", t.Name, t.FeatureCategory, t.SavedToDatabase, t.Streamed, strings.Join(t.Scope, ","))
			}
			fmt.Fprintf(tw, "\n%d event types\n", cat.Len())
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func withAdmin(cfg *app.Config, f func(ctx context.Context, a *app.Admin, out io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		a, err := app.OpenAdmin(cmd.Context(), *cfg)
		if err != nil {
			return err
		}
		defer a.Close()
		return f(cmd.Context(), a, cmd.OutOrStdout())
	}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listCmd is a "list" command that prints a table, or with --json what the REST API returns.
func listCmd(cfg *app.Config, short string, setup func(*pflag.FlagSet), list func(ctx context.Context, a *app.Admin) (any, [][]string, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "list", Short: short, Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			v, rows, err := list(ctx, a)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, v)
			}
			return printTable(out, rows)
		})}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API does")
	if setup != nil {
		setup(cmd.Flags())
	}
	return cmd
}

// printTable prints rows (the first is the header) aligned in columns.
func printTable(out io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

var roleNames = map[int]string{10: "guest", 20: "reporter", 30: "developer", 40: "maintainer", 50: "owner"}

func userCmd(cfg *app.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users"}
	var id int64
	var username, name, email string
	var admin bool
	create := &cobra.Command{Use: "create", Short: "Create a user", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			u, err := a.CreateUser(ctx, id, username, name, email, admin)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return err
			}
			return errors.Join(printJSON(out, u), err)
		})}
	f := create.Flags()
	f.Int64Var(&id, "id", 0, "user id (so it matches the author_id your application sends); 0 assigns one")
	f.StringVar(&username, "username", "", "username (required)")
	f.StringVar(&name, "name", "", "display name (required)")
	f.StringVar(&email, "email", "", "email (required)")
	f.BoolVar(&admin, "admin", false, "make the user an instance admin")
	list := listCmd(cfg, "List users", nil, func(ctx context.Context, a *app.Admin) (any, [][]string, error) {
		us, err := a.ListUsers(ctx)
		rows := [][]string{{"ID", "USERNAME", "NAME", "EMAIL", "ADMIN"}}
		for _, u := range us {
			rows = append(rows, []string{strconv.FormatInt(u.ID, 10), u.Username, u.Name, u.Email, strconv.FormatBool(u.IsAdmin != nil && *u.IsAdmin)})
		}
		return us, rows, err
	})
	cmd.AddCommand(create, list)
	return cmd
}

func tokenCmd(cfg *app.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage personal access tokens"}
	var user, name, expires string
	var scopes []string
	create := &cobra.Command{Use: "create", Short: "Create a token and print it once", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			var exp time.Time
			if expires != "" {
				var err error
				if exp, err = event.ParseDateParam(expires); err != nil {
					return fmt.Errorf("--expires-at must be a date such as 2030-01-31")
				}
			}
			raw, _, err := a.CreateToken(ctx, user, name, scopes, exp)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return err
			}
			fmt.Fprintln(out, raw) // the token exists: it is shown this once
			return err
		})}
	f := create.Flags()
	f.StringVar(&user, "user", "", "username or id (required)")
	f.StringVar(&name, "name", "cli", "token name")
	f.StringSliceVar(&scopes, "scopes", []string{"api"}, "api, read_api, ingest")
	f.StringVar(&expires, "expires-at", "", "expiry date (YYYY-MM-DD); default never")
	var tokenID int64
	revoke := &cobra.Command{Use: "revoke", Short: "Revoke a token (a running server stops accepting it within --token-cache-ttl)", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			err := a.RevokeToken(ctx, tokenID)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return fmt.Errorf("token %d: %w", tokenID, err)
			}
			fmt.Fprintf(out, "token %d revoked\n", tokenID)
			return err
		})}
	revoke.Flags().Int64Var(&tokenID, "id", 0, "token id (required)")
	var listUser string
	list := listCmd(cfg, "List a user's tokens (never their secrets)", func(f *pflag.FlagSet) {
		f.StringVar(&listUser, "user", "", "username or id (required)")
	}, func(ctx context.Context, a *app.Admin) (any, [][]string, error) {
		ts, err := a.ListTokens(ctx, listUser)
		rows := [][]string{{"ID", "NAME", "SCOPES", "ACTIVE", "EXPIRES", "REVOKED", "IMPERSONATION"}}
		for _, t := range ts {
			rows = append(rows, []string{strconv.FormatInt(t.ID, 10), t.Name, strings.Join(t.Scopes, ","), strconv.FormatBool(t.Active),
				orDash(t.ExpiresAt), strconv.FormatBool(t.Revoked), strconv.FormatBool(t.Impersonation != nil && *t.Impersonation)})
		}
		return ts, rows, err
	})
	cmd.AddCommand(create, revoke, list)
	return cmd
}

func namespaceCmd(cfg *app.Config, kind store.NamespaceKind) *cobra.Command {
	cmd := &cobra.Command{Use: string(kind), Short: "Manage " + string(kind) + "s"}
	var path, name string
	var id int64
	create := &cobra.Command{Use: "create", Short: "Create a " + string(kind) + " ahead of its first event", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			ns, err := a.CreateNamespace(ctx, kind, path, name, id)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return err
			}
			return errors.Join(printJSON(out, ns), err)
		})}
	f := create.Flags()
	f.StringVar(&path, "path", "", "full path, e.g. my-group/sub (required)")
	f.StringVar(&name, "name", "", "display name (default: the last path segment)")
	f.Int64Var(&id, "id", 0, "GitLab id (so it matches the entity_id your application sends); without it an id of the range assigned here (from 2^52), replaced by GitLab's when an event names the path with it")
	list := listCmd(cfg, "List "+string(kind)+"s", nil, func(ctx context.Context, a *app.Admin) (any, [][]string, error) {
		nss, err := a.ListNamespaces(ctx, kind)
		rows := [][]string{{"ID", "FULL_PATH", "NAME"}}
		for _, ns := range nss {
			rows = append(rows, []string{strconv.FormatInt(ns.ID, 10), ns.FullPath + ns.PathWithNamespace, ns.Name})
		}
		return nss, rows, err
	})
	cmd.AddCommand(create, list)
	return cmd
}

func memberCmd(cfg *app.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Manage group and project members"}
	var group, project, user string
	var level int
	target := func() (store.NamespaceKind, string, error) {
		if (group == "") == (project == "") {
			return "", "", fmt.Errorf("give exactly one of --group and --project")
		}
		if project != "" {
			return store.KindProject, project, nil
		}
		return store.KindGroup, group, nil
	}
	set := func(update bool) func(ctx context.Context, a *app.Admin, out io.Writer) error {
		return func(ctx context.Context, a *app.Admin, out io.Writer) error {
			kind, ref, err := target()
			if err != nil {
				return err
			}
			setMember := a.AddMember
			if update {
				setMember = a.UpdateMember
			}
			m, err := setMember(ctx, kind, ref, user, level)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return err
			}
			return errors.Join(printJSON(out, m), err)
		}
	}
	add := &cobra.Command{Use: "add", Short: "Give a user an access level on a group or project (or change the one they have)", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, set(false))}
	update := &cobra.Command{Use: "update", Short: "Change a member's access level on a group or project", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, set(true))}
	remove := &cobra.Command{Use: "remove", Short: "Remove a user's direct membership of a group or project", Args: cobra.NoArgs,
		RunE: withAdmin(cfg, func(ctx context.Context, a *app.Admin, out io.Writer) error {
			kind, ref, err := target()
			if err != nil {
				return err
			}
			err = a.RemoveMember(ctx, kind, ref, user)
			if err != nil && !errors.Is(err, app.ErrUnaudited) {
				return err
			}
			fmt.Fprintf(out, "%s removed from %s %s\n", user, kind, ref)
			return err
		})}
	for _, c := range []*cobra.Command{add, update, remove} {
		f := c.Flags()
		f.StringVar(&group, "group", "", "group id or full path")
		f.StringVar(&project, "project", "", "project id or full path")
		f.StringVar(&user, "user", "", "username or id (required)")
		if c != remove {
			f.IntVar(&level, "access-level", 0, "10 guest, 20 reporter, 30 developer, 40 maintainer, 50 owner")
		}
	}
	var listGroup, listProject string
	list := listCmd(cfg, "List the direct members of a group or project", func(f *pflag.FlagSet) {
		f.StringVar(&listGroup, "group", "", "group id or full path")
		f.StringVar(&listProject, "project", "", "project id or full path")
	}, func(ctx context.Context, a *app.Admin) (any, [][]string, error) {
		if (listGroup == "") == (listProject == "") {
			return nil, nil, fmt.Errorf("give exactly one of --group and --project")
		}
		kind, ref := store.KindGroup, listGroup
		if listProject != "" {
			kind, ref = store.KindProject, listProject
		}
		ms, err := a.ListMembers(ctx, kind, ref)
		rows := [][]string{{"ID", "USERNAME", "ACCESS_LEVEL", "ROLE", "EXPIRES"}}
		for _, m := range ms {
			rows = append(rows, []string{strconv.FormatInt(m.ID, 10), m.Username, strconv.Itoa(m.AccessLevel), roleNames[m.AccessLevel], orDash(m.ExpiresAt)})
		}
		return ms, rows, err
	})
	cmd.AddCommand(add, update, remove, list)
	return cmd
}

func destinationCmd(cfg *app.Config) *cobra.Command {
	cmd := &cobra.Command{Use: "destination", Short: "Streaming destinations (managed through GraphQL or the UI)"}
	cmd.AddCommand(listCmd(cfg, "List every streaming destination (no secrets)", nil, func(ctx context.Context, a *app.Admin) (any, [][]string, error) {
		ds, err := a.ListDestinations(ctx)
		rows := [][]string{{"ID", "GROUP", "CATEGORY", "NAME", "ACTIVE"}}
		for _, d := range ds {
			group := d.GroupPath
			if group == "" {
				group = "(instance)"
			}
			rows = append(rows, []string{d.ID, group, d.Category, d.Name, strconv.FormatBool(d.Active)})
		}
		if err == nil && len(ds) == 0 {
			rows = [][]string{{"no streaming destinations"}}
		}
		return ds, rows, err
	}))
	return cmd
}

func emitCmd() *cobra.Command {
	var url, eventType, entityType, entityPath string
	var entityID int64
	cmd := &cobra.Command{
		Use:   "emit",
		Short: "Send one test event to a running server (token from AUDITSTREAM_TOKEN)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := os.Getenv("AUDITSTREAM_TOKEN")
			if token == "" {
				return fmt.Errorf("set AUDITSTREAM_TOKEN to a token with the ingest scope")
			}
			ev := map[string]any{"event_type": eventType, "entity_type": entityType, "entity_path": entityPath,
				"author_id": 1, "author_name": "auditstream emit",
				"details": map[string]any{"custom_message": "test event sent by auditstream emit"}}
			if entityID != 0 {
				ev["entity_id"] = entityID
			}
			body, _ := json.Marshal(ev)
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimSuffix(url, "/")+"/api/v4/audit_events", strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("PRIVATE-TOKEN", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s", resp.Status, b)
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("the server refused the event")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:8080", "the server's base URL")
	f.StringVar(&eventType, "event-type", "user_created", "event type")
	f.StringVar(&entityType, "entity-type", "Instance", "Group, Project, User or Instance")
	f.StringVar(&entityPath, "entity-path", "", "full path (Group and Project)")
	f.Int64Var(&entityID, "entity-id", 0, "entity id")
	return cmd
}
