package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/edge"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/corpintel/corpintel/supervisor/reconcile"
	"github.com/corpintel/corpintel/supervisor/state"
)

// Op is a running operation as its code sees it: it records its steps in the journal.
type Op struct {
	state.Operation
	store *state.Store
}

// Step records a step of the operation (visible in status and kept in the journal).
func (o *Op) Step(ctx context.Context, name, detail string) error {
	if err := o.store.OperationStep(ctx, o.ID, name, detail); err != nil {
		return err
	}
	o.Steps = append(o.Steps, state.OpStep{At: time.Now(), Name: name, Detail: detail})
	return nil
}

// OpRequest asks RunOperation for the lock.
type OpRequest struct {
	Kind     string
	Services []string
	// Maintenance switches the edge's maintenance mode on while it runs.
	Maintenance bool
	Detail      string
	Expected    time.Duration
	// Wait makes RunOperation wait for a running operation to end (until ctx ends)
	// instead of failing at once.
	Wait bool
}

// busyPoll is how often a waiting operation asks for the lock again.
const busyPoll = 500 * time.Millisecond

// RunOperation runs fn under the operation lock: one operation at a time (a second one
// waits or is refused with the name of the one that runs), its steps in the journal,
// and the services it owns left alone by the reconciler until it ends. Its outcome is
// recorded; a pass follows at once, so that what the operation left is reconciled.
func (d *Daemon) RunOperation(ctx context.Context, req OpRequest, fn func(ctx context.Context, op *Op) error) error {
	for _, svc := range req.Services {
		if err := stack.CheckService(svc); err != nil {
			return err
		}
	}
	var op state.Operation
	for {
		var err error
		op, err = d.store.BeginOperation(ctx, state.OpRequest{Kind: req.Kind, Services: req.Services, Owner: d.owner,
			Maintenance: req.Maintenance, Detail: req.Detail, Expected: req.Expected})
		var busy *state.BusyError
		if err == nil {
			break
		}
		if !errors.As(err, &busy) || !req.Wait {
			if errors.As(err, &busy) {
				return localapi.RequestErrorf("%v", err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up waiting: %w", req.Kind, err)
		case <-time.After(busyPoll):
		}
	}
	d.log.Info("operation started", "operation", op.Name(), "services", strings.Join(op.Services, ","), "detail", op.Detail)
	if op.Maintenance {
		d.edge.SetMaintenance(&edge.Maintenance{Reason: op.Name(), RetryAfter: maintenanceRetry(req.Expected)})
		defer d.edge.SetMaintenance(nil)
	}
	o := &Op{Operation: op, store: d.store}
	err := runProtected(ctx, o, fn)
	outcome, text := state.OpSucceeded, ""
	if err != nil {
		outcome, text = state.OpFailed, err.Error()
	}
	if eerr := d.store.EndOperation(context.WithoutCancel(ctx), op.ID, outcome, text); eerr != nil {
		err = errors.Join(err, eerr)
	}
	d.log.Info("operation ended", "operation", op.Name(), "outcome", outcome, "err", text)
	d.mu.Lock()
	d.interrupted = nil // the journal has a newer story to tell
	d.mu.Unlock()
	notifyKick(d.kick)
	return err
}

// runProtected runs fn and turns a panic into an error, so that the lock is released.
func runProtected(ctx context.Context, op *Op, fn func(context.Context, *Op) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s panicked: %v", op.Name(), r)
		}
	}()
	return fn(ctx, op)
}

// recoverOperations looks for an operation a previous supervisor left running (it was
// killed or the machine went down mid-operation): one with a resumer is handed to it
// under this supervisor's ownership; any other is recorded as interrupted and shown in
// status, never left holding the lock silently.
func (d *Daemon) recoverOperations(ctx context.Context) error {
	op, ok, err := d.store.RunningOperation(ctx)
	if err != nil || !ok || op.Owner == d.owner {
		return err
	}
	resume := d.opts.Resume[op.Kind]
	if resume == nil {
		d.log.Warn("found an operation a previous supervisor left unfinished; recording it as interrupted",
			"operation", op.Name(), "started", op.StartedAt, "last_step", op.LastStep())
		msg := "interrupted: the supervisor stopped during step " + orDash(op.LastStep())
		if err := d.store.EndOperation(ctx, op.ID, state.OpInterrupted, msg); err != nil {
			return err
		}
		op.State, op.Error = state.OpInterrupted, msg
		d.mu.Lock()
		d.interrupted = append(d.interrupted, op)
		d.mu.Unlock()
		return nil
	}
	d.log.Warn("resuming an operation a previous supervisor left unfinished", "operation", op.Name(), "last_step", op.LastStep())
	o := &Op{Operation: op, store: d.store}
	if op.Maintenance {
		// The journal says the stack was in maintenance: it stays so until the
		// operation is finished or reverted.
		d.edge.SetMaintenance(&edge.Maintenance{Reason: op.Name(), RetryAfter: maintenanceRetry(time.Until(op.ExpectedEnd))})
	}
	go func() {
		if op.Maintenance {
			defer d.edge.SetMaintenance(nil)
		}
		err := runProtected(ctx, o, resume)
		outcome, text := state.OpSucceeded, ""
		if err != nil {
			outcome, text = state.OpFailed, err.Error()
		}
		if eerr := d.store.EndOperation(context.WithoutCancel(ctx), op.ID, outcome, text); eerr != nil {
			d.log.Error("end resumed operation", "operation", op.Name(), "err", eerr)
		}
		d.log.Info("resumed operation ended", "operation", op.Name(), "outcome", outcome, "err", text)
		notifyKick(d.kick)
	}()
	return nil
}

// maintenanceRetry is the Retry-After clients get in maintenance: the operation's
// expected length, between 10 s and 5 min.
func maintenanceRetry(expected time.Duration) time.Duration {
	return min(max(expected, 10*time.Second), 5*time.Minute)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CreateAdmin implements localapi.Operations: it runs `corpintel api create-admin` as a
// one-shot job on the stack network. The password reaches the job as a file of its own
// (0400, the API image's uid) bind-mounted for this run and removed right after — never
// in argv, the environment or a log line.
func (d *Daemon) CreateAdmin(ctx context.Context, email string, password []byte) error {
	email = strings.TrimSpace(email)
	switch {
	case email == "" || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n"):
		return localapi.RequestErrorf("an admin needs an e-mail address, got %q", email)
	case len(password) == 0:
		return localapi.RequestErrorf("an admin needs a password (give it on stdin or in a file)")
	}
	dir := filepath.Join(d.rec.Config().StateDir, "secrets", "jobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create-admin: %w", err)
	}
	f, err := os.CreateTemp(dir, "admin-password-*")
	if err != nil {
		return fmt.Errorf("create-admin: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	_, werr := f.Write(password)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("create-admin: write the password file: %w", err)
	}
	if reconcile.CanChown() {
		uid := stack.SecretUIDs[stack.ServiceAPI]
		if err := os.Chown(path, uid, uid); err != nil {
			return fmt.Errorf("create-admin: %w", err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		return fmt.Errorf("create-admin: %w", err)
	}
	d.log.Info("create-admin", "email", email)
	err = d.rec.RunJob(ctx, func(spec reconcile.Spec) (reconcile.JobSpec, error) { return spec.CreateAdminJob(email, path) })
	if err != nil {
		return fmt.Errorf("create-admin %s: %w", email, err)
	}
	return nil
}
