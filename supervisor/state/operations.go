package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Operation states.
const (
	OpRunning     = "running"
	OpSucceeded   = "succeeded"
	OpFailed      = "failed"
	OpInterrupted = "interrupted"
)

// Operation is one entry of the journal: a backup, restore, drill, upgrade or rotation,
// with the steps it recorded.
type Operation struct {
	ID   int64  `json:"id"`
	Kind string `json:"kind"`
	// Services are the services it owns: the reconciler leaves them alone meanwhile.
	Services []string `json:"services,omitempty"`
	// Owner identifies the supervisor process that runs it; a running operation of
	// another owner was left behind by a supervisor that died.
	Owner       string    `json:"owner"`
	State       string    `json:"state"`
	Maintenance bool      `json:"maintenance,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	ExpectedEnd time.Time `json:"expected_end,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	Error       string    `json:"error,omitempty"`
	Steps       []OpStep  `json:"steps,omitempty"`
}

// Name is how the operation is named in messages ("backup #12").
func (o Operation) Name() string { return fmt.Sprintf("%s #%d", o.Kind, o.ID) }

// LastStep is the name of the last step recorded ("" before the first).
func (o Operation) LastStep() string {
	if len(o.Steps) == 0 {
		return ""
	}
	return o.Steps[len(o.Steps)-1].Name
}

// OpStep is one recorded step of an operation.
type OpStep struct {
	At     time.Time `json:"at"`
	Name   string    `json:"name"`
	Detail string    `json:"detail,omitempty"`
}

// OpRequest asks for the operation lock.
type OpRequest struct {
	Kind     string
	Services []string
	Owner    string
	// Maintenance switches the edge's maintenance mode on while the operation runs.
	Maintenance bool
	Detail      string
	// Expected is how long the operation should take (alerts hold what its
	// maintenance causes until then).
	Expected time.Duration
}

// BusyError says that another operation holds the lock.
type BusyError struct{ Current Operation }

func (e *BusyError) Error() string {
	msg := fmt.Sprintf("another operation is running: %s since %s", e.Current.Name(), e.Current.StartedAt.UTC().Format(time.RFC3339))
	if s := e.Current.LastStep(); s != "" {
		msg += " (step " + s + ")"
	}
	return msg + "; wait for it to end (`corpintel status` shows it)"
}

// ErrNoOperation means the operation does not exist.
var ErrNoOperation = errors.New("no such operation")

// BeginOperation takes the operation lock: it records a running operation, or fails
// with a *BusyError naming the one that runs. Taking it is atomic across processes.
func (s *Store) BeginOperation(ctx context.Context, r OpRequest) (Operation, error) {
	if r.Kind == "" || r.Owner == "" {
		return Operation{}, errors.New("state: an operation needs a kind and an owner")
	}
	now := s.now()
	op := Operation{Kind: r.Kind, Services: slices.Clone(r.Services), Owner: r.Owner, State: OpRunning,
		Maintenance: r.Maintenance, Detail: r.Detail, StartedAt: now}
	if r.Expected > 0 {
		op.ExpectedEnd = now.Add(r.Expected)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO operations(kind, services, owner, state, maintenance, detail, started_at, expected_end)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?)`, op.Kind, strings.Join(op.Services, ","), op.Owner, op.State, op.Maintenance, op.Detail,
		formatTime(op.StartedAt), formatTime(op.ExpectedEnd))
	if err != nil {
		if cur, ok, cerr := s.RunningOperation(ctx); cerr == nil && ok {
			return Operation{}, &BusyError{Current: cur}
		}
		return Operation{}, fmt.Errorf("state: begin %s: %w", r.Kind, err)
	}
	op.ID, _ = res.LastInsertId()
	return op, nil
}

// OperationStep appends a step to a running operation's journal.
func (s *Store) OperationStep(ctx context.Context, id int64, name, detail string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO operation_steps(operation_id, seq, at, name, detail)
		SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM operation_steps WHERE operation_id = ?`, id, s.stamp(), name, detail, id)
	if err != nil {
		return fmt.Errorf("state: record step %s of operation %d: %w", name, id, err)
	}
	return nil
}

// EndOperation releases the lock with the operation's outcome (OpSucceeded, OpFailed or
// OpInterrupted) and error text.
func (s *Store) EndOperation(ctx context.Context, id int64, state, errText string) error {
	if state != OpSucceeded && state != OpFailed && state != OpInterrupted {
		return fmt.Errorf("state: end operation %d: invalid outcome %q", id, state)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE operations SET state = ?, error = ?, ended_at = ? WHERE id = ? AND state = 'running'`,
		state, errText, s.stamp(), id)
	if err != nil {
		return fmt.Errorf("state: end operation %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: end operation %d: %w (or it has ended already)", id, ErrNoOperation)
	}
	return nil
}

const opColumns = `id, kind, services, owner, state, maintenance, detail, started_at, expected_end, ended_at, error`

func scanOperation(sc interface{ Scan(...any) error }) (Operation, error) {
	var op Operation
	var services, started, expected, ended string
	if err := sc.Scan(&op.ID, &op.Kind, &services, &op.Owner, &op.State, &op.Maintenance, &op.Detail, &started, &expected, &ended, &op.Error); err != nil {
		return Operation{}, err
	}
	if services != "" {
		op.Services = strings.Split(services, ",")
	}
	op.StartedAt, op.ExpectedEnd, op.EndedAt = parseTime(started), parseTime(expected), parseTime(ended)
	return op, nil
}

func (s *Store) withSteps(ctx context.Context, op *Operation) error {
	rows, err := s.db.QueryContext(ctx, `SELECT at, name, detail FROM operation_steps WHERE operation_id = ? ORDER BY seq`, op.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var st OpStep
		var at string
		if err := rows.Scan(&at, &st.Name, &st.Detail); err != nil {
			return err
		}
		st.At = parseTime(at)
		op.Steps = append(op.Steps, st)
	}
	return rows.Err()
}

// Operation returns one operation with its steps.
func (s *Store) Operation(ctx context.Context, id int64) (Operation, error) {
	op, err := scanOperation(s.db.QueryRowContext(ctx, `SELECT `+opColumns+` FROM operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Operation{}, fmt.Errorf("state: operation %d: %w", id, ErrNoOperation)
	}
	if err != nil {
		return Operation{}, fmt.Errorf("state: operation %d: %w", id, err)
	}
	if err := s.withSteps(ctx, &op); err != nil {
		return Operation{}, fmt.Errorf("state: steps of operation %d: %w", id, err)
	}
	return op, nil
}

// RunningOperation returns the operation that holds the lock, if any.
func (s *Store) RunningOperation(ctx context.Context) (Operation, bool, error) {
	op, err := scanOperation(s.db.QueryRowContext(ctx, `SELECT `+opColumns+` FROM operations WHERE state = 'running'`))
	if errors.Is(err, sql.ErrNoRows) {
		return Operation{}, false, nil
	}
	if err != nil {
		return Operation{}, false, fmt.Errorf("state: running operation: %w", err)
	}
	if err := s.withSteps(ctx, &op); err != nil {
		return Operation{}, false, fmt.Errorf("state: steps of operation %d: %w", op.ID, err)
	}
	return op, true, nil
}

// RecentOperations returns the last n operations, newest first, without steps.
func (s *Store) RecentOperations(ctx context.Context, n int) ([]Operation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+opColumns+` FROM operations ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("state: recent operations: %w", err)
	}
	defer rows.Close()
	var out []Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, fmt.Errorf("state: recent operations: %w", err)
		}
		out = append(out, op)
	}
	return out, rows.Err()
}

// OwnedServices maps each service the running operation owns to its name
// ("backup #12"); empty when no operation runs.
func (s *Store) OwnedServices(ctx context.Context) (map[string]string, error) {
	op, ok, err := s.RunningOperation(ctx)
	if err != nil || !ok {
		return nil, err
	}
	out := map[string]string{}
	for _, svc := range op.Services {
		out[svc] = op.Name()
	}
	return out, nil
}
