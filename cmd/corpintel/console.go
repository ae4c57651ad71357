package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"time"

	"github.com/corpintel/corpintel/console"
	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/state"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newConsoleCmd, newAuditCmd) }

// consoleSetup is the console of a supervisor: built before the daemon (which serves
// it through its edge), connected to the daemon's operations once that exists.
type consoleSetup struct {
	console *console.Console
	ops     *consoleOps
	first   console.FirstAdmin
}

// hashParams lets the end-to-end tests make password hashing cheap; never set in
// production (the default is argon2id at the OWASP minimum).
var hashParams *password.Params

func newConsoleSetup(ctx context.Context, cfg *config.Config, store *state.Store, log *slog.Logger) (*consoleSetup, error) {
	if !cfg.Console.Enabled {
		return nil, nil
	}
	cs := consoleStore{store}
	first, err := console.EnsureFirstAdmin(ctx, cs, cfg.StateDir, hashParams)
	if err != nil {
		return nil, err
	}
	if first.Created {
		log.Info("console: first admin created; its one-time password is in a root-only file", "user", first.Name, "file", first.File)
	}
	if check, err := store.VerifyAudit(ctx); err != nil {
		return nil, err
	} else if check.OK() {
		// The head in the journal is an anchor outside the state store.
		log.Info("console: audit log", "entries", check.Entries, "head_seq", check.HeadSeq, "head_hash", check.HeadHash)
	} else {
		log.Error("console: the audit log was tampered with (`corpintel audit verify`)", "entry", check.BrokenAt, "problem", check.Problem)
	}
	ops := &consoleOps{}
	c, err := console.New(console.Options{Ops: ops, Store: cs, Log: log, Project: cfg.Project,
		ClientAddr: edge.ClientAddr, Secure: func(r *http.Request) bool { return edge.ForwardedProto(r) == "https" },
		SessionIdle: time.Duration(cfg.Console.SessionIdle), SessionMax: time.Duration(cfg.Console.SessionMax),
		InviteTTL: time.Duration(cfg.Console.InviteTTL), FirstPasswordFile: filepath.Join(cfg.StateDir, console.FirstPasswordFileName),
		Hash: hashParams})
	if err != nil {
		return nil, err
	}
	return &consoleSetup{console: c, ops: ops, first: first}, nil
}

// printConsole tells where the console answers and, to an interactive terminal only,
// the first admin's one-time password (otherwise — systemd, the journal — only where
// the file is).
func (cs *consoleSetup) printConsole(stdout io.Writer, ep supervisor.Endpoints) {
	if cs == nil {
		return
	}
	url := ep.API + "/admin/"
	if ep.HTTPS != "" {
		url = ep.HTTPS + "/admin/"
		fmt.Fprintf(stdout, "Console: %s (also %s/admin/ on this machine)\n", url, ep.API)
	} else {
		fmt.Fprintf(stdout, "Console: %s\n", url)
	}
	if cs.first.Password == "" {
		return
	}
	if f, ok := stdout.(*os.File); ok && isTerminal(f) {
		fmt.Fprintf(stdout, "  first login: user %s, one-time password %s (you choose your own at the first login; it is also in %s)\n",
			cs.first.Name, cs.first.Password, cs.first.File)
		return
	}
	fmt.Fprintf(stdout, "  first login: user %s, one-time password in %s (root only)\n", cs.first.Name, cs.first.File)
}

// consoleOps gives the console the daemon's operations.
type consoleOps struct{ d *supervisor.Daemon }

var _ console.Operations = (*consoleOps)(nil)

func (o *consoleOps) Status(ctx context.Context) (console.Status, error) {
	rep, err := o.d.Status(ctx)
	if err != nil {
		return console.Status{}, err
	}
	return consoleStatus(rep), nil
}

func (o *consoleOps) Scale(ctx context.Context, service string, replicas int) error {
	return o.d.Scale(ctx, service, replicas)
}

func (o *consoleOps) Restart(ctx context.Context, service string) error {
	return o.d.Restart(ctx, service)
}

func (o *consoleOps) Logs(ctx context.Context, service string, tail int, follow bool, w io.Writer) error {
	return o.d.Logs(ctx, service, localapi.LogOptions{Tail: tail, Follow: follow}, w)
}

func (o *consoleOps) WatchStatus() (<-chan struct{}, func()) { return o.d.WatchStatus() }

// consoleStatus is the status report as the console shows it.
func consoleStatus(rep health.StatusReport) console.Status {
	st := console.Status{Project: rep.Project, Profile: rep.Profile, Supervisor: rep.Supervisor, Stopped: rep.Stopped,
		LastReconcile: rep.LastReconcile, LastError: rep.LastError, Maintenance: rep.Maintenance}
	if op := rep.Operation; op != nil {
		st.Operation = &console.Operation{Name: op.Name(), StartedAt: op.StartedAt, LastStep: op.LastStep()}
	}
	for _, s := range rep.Services {
		cs := console.Service{Name: s.Service, Desired: s.Desired, Running: s.Running, Healthy: s.Healthy, State: s.State, Health: s.Health,
			StartedAt: s.StartedAt, Image: s.Image, CPUPercent: s.CPUPercent, MemoryBytes: s.MemoryBytes, Restarts: s.Restarts,
			Backoff: s.Backoff, NextAttempt: s.NextAttempt, Held: s.Held}
		for _, c := range s.Containers {
			cs.Containers = append(cs.Containers, console.Container{Name: c.Name, ID: c.ID, State: c.State, Health: c.Health,
				StartedAt: c.StartedAt, Restarts: c.RestartCount, Image: c.Image, CPUPercent: c.CPUPercent, MemoryBytes: c.MemoryBytes})
		}
		st.Services = append(st.Services, cs)
	}
	// One line per certificate served (the names one certificate covers are probed one
	// by one), then the manager's certificates with a renewal problem.
	served := map[string]bool{}
	for _, p := range rep.TLSServed {
		if p.Error != "" || p.NotAfter.IsZero() {
			continue
		}
		served[p.Name] = true
		if i := slices.IndexFunc(st.Certificates, func(c console.Certificate) bool { return c.NotAfter.Equal(p.NotAfter) && c.Issuer == p.Issuer }); i >= 0 {
			st.Certificates[i].Name += ", " + p.Name
			continue
		}
		st.Certificates = append(st.Certificates, console.Certificate{Name: p.Name, Issuer: p.Issuer, NotAfter: p.NotAfter})
	}
	if rep.TLS != nil {
		for _, c := range rep.TLS.Certificates {
			if served[c.Name] && c.LastError == "" {
				continue
			}
			st.Certificates = append(st.Certificates, console.Certificate{Name: c.Name, Issuer: c.Issuer, NotAfter: c.NotAfter, LastError: c.LastError})
		}
	}
	return st
}

// consoleStore is the state store as the console's Store: the types match field for
// field, so each method converts.
type consoleStore struct{ s *state.Store }

var _ console.Store = consoleStore{}

func storeErr(err error) error {
	switch {
	case errors.Is(err, state.ErrConsoleNotFound):
		return fmt.Errorf("%w: %w", console.ErrNotFound, err)
	case errors.Is(err, state.ErrConsoleExists):
		return fmt.Errorf("%w: %w", console.ErrExists, err)
	}
	return err
}

func users(in []state.ConsoleUser) []console.User {
	out := make([]console.User, 0, len(in))
	for _, u := range in {
		out = append(out, console.User(u))
	}
	return out
}

func (c consoleStore) UserCount(ctx context.Context) (int, error) { return c.s.ConsoleUserCount(ctx) }

func (c consoleStore) CreateUser(ctx context.Context, u console.User) (console.User, error) {
	out, err := c.s.CreateConsoleUser(ctx, state.ConsoleUser(u))
	return console.User(out), storeErr(err)
}

func (c consoleStore) UserByName(ctx context.Context, name string) (console.User, error) {
	u, err := c.s.ConsoleUserByName(ctx, name)
	return console.User(u), storeErr(err)
}

func (c consoleStore) UserByID(ctx context.Context, id int64) (console.User, error) {
	u, err := c.s.ConsoleUserByID(ctx, id)
	return console.User(u), storeErr(err)
}

func (c consoleStore) Users(ctx context.Context) ([]console.User, error) {
	list, err := c.s.ConsoleUsers(ctx)
	return users(list), err
}

func (c consoleStore) UpdateUser(ctx context.Context, u console.User) error {
	return storeErr(c.s.UpdateConsoleUser(ctx, state.ConsoleUser(u)))
}

func (c consoleStore) AcceptTOTPStep(ctx context.Context, userID, step int64) (bool, error) {
	return c.s.AcceptTOTPStep(ctx, userID, step)
}

func (c consoleStore) SetRecoveryCodes(ctx context.Context, userID int64, hashes []string) error {
	return c.s.SetRecoveryCodes(ctx, userID, hashes)
}

func (c consoleStore) UseRecoveryCode(ctx context.Context, userID int64, hash string) (bool, error) {
	return c.s.UseRecoveryCode(ctx, userID, hash)
}

func (c consoleStore) RecoveryCodesLeft(ctx context.Context, userID int64) (int, error) {
	return c.s.RecoveryCodesLeft(ctx, userID)
}

func (c consoleStore) RotateSession(ctx context.Context, oldHash string, s console.Session) error {
	return storeErr(c.s.RotateConsoleSession(ctx, oldHash, state.ConsoleSession(s)))
}

func (c consoleStore) Session(ctx context.Context, idHash string) (console.Session, error) {
	s, err := c.s.ConsoleSession(ctx, idHash)
	return console.Session(s), storeErr(err)
}

func (c consoleStore) UpdateSession(ctx context.Context, s console.Session) error {
	return storeErr(c.s.UpdateConsoleSession(ctx, state.ConsoleSession(s)))
}

func (c consoleStore) DeleteSession(ctx context.Context, idHash string) error {
	return c.s.DeleteConsoleSession(ctx, idHash)
}

func (c consoleStore) DeleteUserSessions(ctx context.Context, userID int64, except string) (int, error) {
	return c.s.DeleteUserConsoleSessions(ctx, userID, except)
}

func (c consoleStore) UserSessions(ctx context.Context, userID int64) ([]console.Session, error) {
	list, err := c.s.UserConsoleSessions(ctx, userID)
	out := make([]console.Session, 0, len(list))
	for _, s := range list {
		out = append(out, console.Session(s))
	}
	return out, err
}

func (c consoleStore) DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	return c.s.DeleteExpiredConsoleSessions(ctx, now, idleBefore)
}

func (c consoleStore) CreateInvite(ctx context.Context, i console.Invite) (console.Invite, error) {
	out, err := c.s.CreateConsoleInvite(ctx, state.ConsoleInvite(i))
	return console.Invite(out), storeErr(err)
}

func (c consoleStore) InviteByToken(ctx context.Context, tokenHash string) (console.Invite, error) {
	i, err := c.s.ConsoleInviteByToken(ctx, tokenHash)
	return console.Invite(i), storeErr(err)
}

func (c consoleStore) Invites(ctx context.Context) ([]console.Invite, error) {
	list, err := c.s.ConsoleInvites(ctx)
	out := make([]console.Invite, 0, len(list))
	for _, i := range list {
		out = append(out, console.Invite(i))
	}
	return out, err
}

func (c consoleStore) RevokeInvite(ctx context.Context, id int64) error {
	return storeErr(c.s.RevokeConsoleInvite(ctx, id))
}

func (c consoleStore) AcceptInvite(ctx context.Context, tokenHash string, now time.Time, u console.User) (console.User, error) {
	out, err := c.s.AcceptConsoleInvite(ctx, tokenHash, now, state.ConsoleUser(u))
	return console.User(out), storeErr(err)
}

func (c consoleStore) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (console.LoginFailures, error) {
	f, err := c.s.RecordLoginFailure(ctx, key, now, window)
	return console.LoginFailures(f), err
}

func (c consoleStore) LoginFailures(ctx context.Context, key string) (console.LoginFailures, error) {
	f, err := c.s.LoginFailures(ctx, key)
	return console.LoginFailures(f), err
}

func (c consoleStore) ClearLoginFailures(ctx context.Context, key string) error {
	return c.s.ClearLoginFailures(ctx, key)
}

func (c consoleStore) AppendAudit(ctx context.Context, e console.AuditEntry) (console.AuditEntry, error) {
	out, err := c.s.AppendAudit(ctx, state.AuditEntry(e))
	return console.AuditEntry(out), err
}

func (c consoleStore) AuditEntries(ctx context.Context, q console.AuditQuery) ([]console.AuditEntry, bool, error) {
	list, more, err := c.s.AuditEntries(ctx, state.AuditQuery(q))
	out := make([]console.AuditEntry, 0, len(list))
	for _, e := range list {
		out = append(out, console.AuditEntry(e))
	}
	return out, more, err
}

func (c consoleStore) VerifyAudit(ctx context.Context) (console.AuditCheck, error) {
	check, err := c.s.VerifyAudit(ctx)
	return console.AuditCheck(check), err
}

// hostActor names who ran a CLI verb on the host, for the audit log.
func hostActor() string {
	name := "uid " + fmt.Sprint(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host + " (CLI)"
}

func newConsoleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "The admin console (/admin): console reset-password USER",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return usagef("console needs a subcommand: reset-password USER") },
	}
	var flags configFlags
	reset := &cobra.Command{
		Use:   "reset-password USER",
		Short: "Give a console user a new one-time password (also turns TOTP off, clears the lockout, ends the sessions)",
		Long: `Give a console user a new generated password, printed here, that must be changed at the
next login. It also turns the user's TOTP off (the lost device may be why you are here),
clears the login lockout, ends every session and reactivates the account. Run it as root
on the host: it writes the supervisor's state store directly, also while the supervisor
runs. The reset is recorded in the console's audit log.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("reset-password needs exactly one user name (the first admin is %q)", console.FirstAdminName)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			store, err := state.Open(cmd.Context(), cfg.StateDir)
			if err != nil {
				return fmt.Errorf("open the state store in %s (run as root on the host): %w", cfg.StateDir, err)
			}
			defer store.Close()
			pw, err := console.ResetPassword(cmd.Context(), consoleStore{store}, args[0], hostActor(), hashParams)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New one-time password for %s: %s\nIt must be changed at the next login; TOTP is off and every session of %s has ended.\n", args[0], pw, args[0])
			return nil
		},
	}
	flags.register(reset, true)
	cmd.AddCommand(reset)
	return cmd
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The console's audit log: audit verify",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return usagef("audit needs a subcommand: verify") },
	}
	var flags configFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the console audit log's hash chain (exit 1 when an entry was changed, inserted or removed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			store, err := state.Open(cmd.Context(), cfg.StateDir)
			if err != nil {
				return fmt.Errorf("open the state store in %s (run as root on the host): %w", cfg.StateDir, err)
			}
			defer store.Close()
			check, err := store.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if !check.OK() {
				return fmt.Errorf("audit log tampered with at entry #%d: %s", check.BrokenAt, check.Problem)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d entries, head #%d %s\n", check.Entries, check.HeadSeq, check.HeadHash)
			return nil
		},
	}
	flags.register(verify, true)
	cmd.AddCommand(verify)
	return cmd
}
