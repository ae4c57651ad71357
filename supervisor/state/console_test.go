package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestConsoleUsers(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	s.SetClock(func() time.Time { return t0 })
	if n, err := s.ConsoleUserCount(ctx); n != 0 || err != nil {
		t.Fatalf("count %d %v", n, err)
	}
	u, err := s.CreateConsoleUser(ctx, ConsoleUser{Name: "Ada", Role: "admin", PasswordHash: "h", Active: true, MustChange: true})
	if err != nil || u.ID == 0 || !u.CreatedAt.Equal(t0) {
		t.Fatalf("create: %+v %v", u, err)
	}
	if _, err := s.CreateConsoleUser(ctx, ConsoleUser{Name: "ada", Role: "viewer", PasswordHash: "h"}); !errors.Is(err, ErrConsoleExists) {
		t.Fatalf("duplicate (case-insensitive): %v", err)
	}
	if _, err := s.CreateConsoleUser(ctx, ConsoleUser{Name: "x", Role: "root", PasswordHash: "h"}); err == nil {
		t.Fatal("a role outside the CHECK")
	}
	got, err := s.ConsoleUserByName(ctx, "ADA")
	if err != nil || got.ID != u.ID || !got.MustChange || !got.Active || got.Role != "admin" {
		t.Fatalf("by name: %+v %v", got, err)
	}
	got.Email, got.FullName, got.TOTPSecret, got.LastLoginAt, got.MustChange = "a@x.org", `<b>Ada</b>`, "SECRET", t0.Add(time.Hour), false
	if err := s.UpdateConsoleUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.ConsoleUserByID(ctx, u.ID)
	if err != nil || again.Email != "a@x.org" || again.FullName != `<b>Ada</b>` || again.TOTPSecret != "SECRET" || again.MustChange || !again.LastLoginAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after update: %+v %v", again, err)
	}
	if err := s.UpdateConsoleUser(ctx, ConsoleUser{ID: 999, Role: "viewer"}); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	for _, f := range []func() error{
		func() error { _, err := s.ConsoleUserByName(ctx, "nobody"); return err },
		func() error { _, err := s.ConsoleUserByID(ctx, 999); return err },
	} {
		if err := f(); !errors.Is(err, ErrConsoleNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
	}
	// TOTP steps only move forward.
	for _, c := range []struct {
		step int64
		ok   bool
	}{{100, true}, {100, false}, {99, false}, {101, true}} {
		if ok, err := s.AcceptTOTPStep(ctx, u.ID, c.step); ok != c.ok || err != nil {
			t.Fatalf("step %d: %v %v", c.step, ok, err)
		}
	}
	// Recovery codes.
	if err := s.SetRecoveryCodes(ctx, u.ID, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.UseRecoveryCode(ctx, u.ID, "b"); !ok {
		t.Fatal("use b")
	}
	if ok, _ := s.UseRecoveryCode(ctx, u.ID, "b"); ok {
		t.Fatal("b twice")
	}
	if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != 2 {
		t.Fatalf("left %d", n)
	}
	if err := s.SetRecoveryCodes(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != 0 {
		t.Fatalf("left after clear %d", n)
	}
	if _, err := s.CreateConsoleUser(ctx, ConsoleUser{Name: "bob", Role: "viewer", PasswordHash: "h", Active: true}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ConsoleUsers(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "Ada" || list[1].Name != "bob" {
		t.Fatalf("list %+v %v", list, err)
	}
}

func TestConsoleSessions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	u, _ := s.CreateConsoleUser(ctx, ConsoleUser{Name: "ada", Role: "admin", PasswordHash: "h", Active: true})
	sess := func(id string, created time.Time) ConsoleSession {
		return ConsoleSession{IDHash: id, UserID: u.ID, Stage: "full", CSRF: "c-" + id, CreatedAt: created, LastSeenAt: created,
			ExpiresAt: created.Add(12 * time.Hour), ReauthAt: created, Client: "127.0.0.1", UserAgent: "test"}
	}
	if err := s.CreateConsoleSession(ctx, sess("one", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateConsoleSession(ctx, sess("one", t0)); !errors.Is(err, ErrConsoleExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	if err := s.RotateConsoleSession(ctx, "one", sess("two", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsoleSession(ctx, "one"); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("rotated-away session: %v", err)
	}
	if err := s.RotateConsoleSession(ctx, "", sess("three", t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsoleSession(ctx, "two")
	if err != nil || got.CSRF != "c-two" || !got.ExpiresAt.Equal(t0.Add(time.Minute+12*time.Hour)) {
		t.Fatalf("get: %+v %v", got, err)
	}
	got.LastSeenAt, got.TOTPPending, got.ReauthAt = t0.Add(time.Hour), "otpauth://x", t0.Add(time.Hour)
	if err := s.UpdateConsoleSession(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.ConsoleSession(ctx, "two"); again.TOTPPending != "otpauth://x" || !again.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("update: %+v", again)
	}
	if err := s.UpdateConsoleSession(ctx, ConsoleSession{IDHash: "gone"}); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	list, err := s.UserConsoleSessions(ctx, u.ID)
	if err != nil || len(list) != 2 || list[0].IDHash != "three" {
		t.Fatalf("list: %+v %v", list, err)
	}
	// Idle: "three" was last seen at t0+2m; "two" at t0+1h.
	if n, err := s.DeleteExpiredConsoleSessions(ctx, t0.Add(time.Hour), t0.Add(30*time.Minute)); n != 1 || err != nil {
		t.Fatalf("expire idle: %d %v", n, err)
	}
	if n, _ := s.DeleteUserConsoleSessions(ctx, u.ID, "two"); n != 0 {
		t.Fatalf("delete except the only one: %d", n)
	}
	if n, _ := s.DeleteUserConsoleSessions(ctx, u.ID, ""); n != 1 {
		t.Fatalf("delete all: %d", n)
	}
	if err := s.DeleteConsoleSession(ctx, "absent"); err != nil {
		t.Fatal(err)
	}
	// Sessions go with their user.
	_ = s.CreateConsoleSession(ctx, sess("four", t0))
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM console_users WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsoleSession(ctx, "four"); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("session outlived its user: %v", err)
	}
}

func TestConsoleInvites(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	inv, err := s.CreateConsoleInvite(ctx, ConsoleInvite{TokenHash: "tok", Email: "Bob@Example.com", Role: "operator", CreatedBy: "ada",
		CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)})
	if err != nil || inv.ID == 0 {
		t.Fatalf("create: %+v %v", inv, err)
	}
	got, err := s.ConsoleInviteByToken(ctx, "tok")
	if err != nil || got.Email != "Bob@Example.com" || !got.ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("by token: %+v %v", got, err)
	}
	if _, err := s.ConsoleInviteByToken(ctx, "nope"); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	// Taken name: the invite stays open.
	_, _ = s.CreateConsoleUser(ctx, ConsoleUser{Name: "ada", Role: "admin", PasswordHash: "h", Active: true})
	if _, err := s.AcceptConsoleInvite(ctx, "tok", t0.Add(time.Hour), ConsoleUser{Name: "ada", Role: "operator", PasswordHash: "h"}); !errors.Is(err, ErrConsoleExists) {
		t.Fatalf("taken name: %v", err)
	}
	if got, _ := s.ConsoleInviteByToken(ctx, "tok"); !got.UsedAt.IsZero() {
		t.Fatal("a failed accept used the invite")
	}
	// Expired.
	if _, err := s.AcceptConsoleInvite(ctx, "tok", t0.Add(25*time.Hour), ConsoleUser{Name: "bob", Role: "operator", PasswordHash: "h"}); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("expired: %v", err)
	}
	// Two at once: exactly one account.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.AcceptConsoleInvite(ctx, "tok", t0.Add(time.Hour), ConsoleUser{Name: fmt.Sprintf("bob%d", i), Role: "operator", PasswordHash: "h"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrConsoleNotFound) && !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
			t.Errorf("concurrent accept: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d accounts from one invite", ok)
	}
	if n, _ := s.ConsoleUserCount(ctx); n != 2 {
		t.Fatalf("%d users", n)
	}
	inv2, _ := s.CreateConsoleInvite(ctx, ConsoleInvite{TokenHash: "tok2", Email: "c@x.org", Role: "viewer", CreatedBy: "ada", ExpiresAt: t0.Add(time.Hour)})
	if err := s.RevokeConsoleInvite(ctx, inv2.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeConsoleInvite(ctx, inv2.ID); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if _, err := s.AcceptConsoleInvite(ctx, "tok2", t0, ConsoleUser{Name: "carl", Role: "viewer", PasswordHash: "h"}); !errors.Is(err, ErrConsoleNotFound) {
		t.Fatalf("revoked: %v", err)
	}
	list, err := s.ConsoleInvites(ctx)
	if err != nil || len(list) != 2 || list[0].ID != inv2.ID || list[1].UsedBy == "" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestLoginFailures(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	if f, err := s.LoginFailures(ctx, "user:ada"); f.Count != 0 || err != nil {
		t.Fatalf("none: %+v %v", f, err)
	}
	w := 15 * time.Minute
	for i := range 3 {
		f, err := s.RecordLoginFailure(ctx, "user:ada", t0.Add(time.Duration(i)*time.Minute), w)
		if err != nil || f.Count != i+1 || !f.FirstAt.Equal(t0) {
			t.Fatalf("failure %d: %+v %v", i, f, err)
		}
	}
	// After the window the count starts over.
	f, _ := s.RecordLoginFailure(ctx, "user:ada", t0.Add(w), w)
	if f.Count != 1 || !f.FirstAt.Equal(t0.Add(w)) {
		t.Fatalf("after the window: %+v", f)
	}
	if err := s.ClearLoginFailures(ctx, "user:ada"); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.LoginFailures(ctx, "user:ada"); f.Count != 0 {
		t.Fatalf("after clear: %+v", f)
	}
}

// The chain: appended rows link up; an edited row, a removed row and a cut-off tail
// are each found; the CLI appending while the supervisor does never forks it.
func TestAuditChain(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t)
	if c, err := s.VerifyAudit(ctx); err != nil || !c.OK() || c.Entries != 0 {
		t.Fatalf("empty: %+v %v", c, err)
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{Action: "x"}); err == nil {
		t.Fatal("an entry without actor and outcome")
	}
	var last AuditEntry
	for i := range 5 {
		e, err := s.AppendAudit(ctx, AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: "ada", Role: "admin", Action: "login",
			Target: "user:ada", Outcome: "success", Client: "127.0.0.1", Detail: fmt.Sprintf("n%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i+1) || e.PrevHash != last.Hash || len(e.Hash) != 64 {
			t.Fatalf("entry %d: %+v", i, e)
		}
		last = e
	}
	// Another process (the CLI) appends at the same time.
	other, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		st := s
		if i%2 == 1 {
			st = other
		}
		wg.Go(func() {
			if _, err := st.AppendAudit(ctx, AuditEntry{Actor: "cli", Action: "user.reset_password", Outcome: "success"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c, err := s.VerifyAudit(ctx)
	if err != nil || !c.OK() || c.Entries != 25 || c.HeadSeq != 25 {
		t.Fatalf("after concurrent appends: %+v %v", c, err)
	}
	page, more, err := s.AuditEntries(ctx, AuditQuery{Limit: 10})
	if err != nil || len(page) != 10 || !more || page[0].Seq != 25 {
		t.Fatalf("page: %d %v %v", len(page), more, err)
	}
	page, more, _ = s.AuditEntries(ctx, AuditQuery{Before: 3, Limit: 10})
	if len(page) != 2 || more || page[1].Seq != 1 {
		t.Fatalf("before 3: %+v %v", page, more)
	}
	page, _, _ = s.AuditEntries(ctx, AuditQuery{Text: "N3"})
	if len(page) != 1 || page[0].Detail != "n3" {
		t.Fatalf("search: %+v", page)
	}
	page, _, _ = s.AuditEntries(ctx, AuditQuery{Text: "%"})
	if len(page) != 0 {
		t.Fatalf("a %% searched as a wildcard: %d rows", len(page))
	}
	// Append-only through SQL.
	if _, err := s.DB().ExecContext(ctx, `UPDATE console_audit SET actor = 'eve' WHERE seq = 2`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update allowed: %v", err)
	}
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM console_audit WHERE seq = 2`); err == nil {
		t.Fatal("delete allowed")
	}

	tamper := func(sql string) AuditCheck {
		t.Helper()
		for _, q := range []string{`DROP TRIGGER IF EXISTS console_audit_no_update`, `DROP TRIGGER IF EXISTS console_audit_no_delete`, sql} {
			if _, err := s.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		c, err := s.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Edited field.
	if c := tamper(`UPDATE console_audit SET actor = 'eve' WHERE seq = 2`); c.OK() || c.BrokenAt != 2 || !strings.Contains(c.Problem, "changed after it was written") {
		t.Fatalf("edit: %+v", c)
	}
	_ = tamper(`UPDATE console_audit SET actor = 'ada' WHERE seq = 2`)
	if c, _ := s.VerifyAudit(ctx); !c.OK() {
		t.Fatalf("restored: %+v", c)
	}
	// Re-hashed edit: the next row's link breaks.
	e2, _ := scanOne(t, s, 2)
	e2.Detail = "forged"
	forged := auditHash(2, formatTime(e2.At), e2, e2.PrevHash)
	if c := tamper(fmt.Sprintf(`UPDATE console_audit SET detail = 'forged', hash = '%s' WHERE seq = 2`, forged)); c.OK() || c.BrokenAt != 3 {
		t.Fatalf("re-hashed edit: %+v", c)
	}
	s3, _ := Open(ctx, t.TempDir())
	defer s3.Close()
	for range 4 {
		_, _ = s3.AppendAudit(ctx, AuditEntry{Actor: "a", Action: "b", Outcome: "c"})
	}
	s = s3
	// A row removed in the middle.
	if c := tamper(`DELETE FROM console_audit WHERE seq = 2`); c.OK() || c.BrokenAt != 3 || !strings.Contains(c.Problem, "missing") {
		t.Fatalf("removed row: %+v", c)
	}
	s4, _ := Open(ctx, t.TempDir())
	defer s4.Close()
	for range 4 {
		_, _ = s4.AppendAudit(ctx, AuditEntry{Actor: "a", Action: "b", Outcome: "c"})
	}
	s = s4
	// The tail cut off.
	if c := tamper(`DELETE FROM console_audit WHERE seq = 4`); c.OK() || c.BrokenAt != 4 || !strings.Contains(c.Problem, "removed from the end") {
		t.Fatalf("cut tail: %+v", c)
	}
	if c := tamper(`DELETE FROM kv WHERE key = 'console.audit.head'`); c.OK() || !strings.Contains(c.Problem, "head of the chain is missing") {
		t.Fatalf("head removed: %+v", c)
	}
}

func scanOne(t *testing.T, s *Store, seq int64) (AuditEntry, string) {
	t.Helper()
	e, at, err := scanAudit(s.DB().QueryRow(`SELECT `+auditColumns+` FROM console_audit WHERE seq = ?`, seq))
	if err != nil {
		t.Fatal(err)
	}
	return e, at
}

// A store that cannot answer (closed here; a full or broken disk in life) fails every
// console method with an error, never a zero value that looks like "no such user".
func TestConsoleStoreErrors(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	s.Close()
	checks := map[string]func() error{
		"count":         func() error { _, err := s.ConsoleUserCount(ctx); return err },
		"create":        func() error { _, err := s.CreateConsoleUser(ctx, ConsoleUser{Name: "a", Role: "admin"}); return err },
		"by name":       func() error { _, err := s.ConsoleUserByName(ctx, "a"); return err },
		"by id":         func() error { _, err := s.ConsoleUserByID(ctx, 1); return err },
		"users":         func() error { _, err := s.ConsoleUsers(ctx); return err },
		"update":        func() error { return s.UpdateConsoleUser(ctx, ConsoleUser{ID: 1}) },
		"totp":          func() error { _, err := s.AcceptTOTPStep(ctx, 1, 1); return err },
		"codes":         func() error { return s.SetRecoveryCodes(ctx, 1, []string{"x"}) },
		"use code":      func() error { _, err := s.UseRecoveryCode(ctx, 1, "x"); return err },
		"codes left":    func() error { _, err := s.RecoveryCodesLeft(ctx, 1); return err },
		"session":       func() error { return s.CreateConsoleSession(ctx, ConsoleSession{IDHash: "x"}) },
		"rotate":        func() error { return s.RotateConsoleSession(ctx, "a", ConsoleSession{IDHash: "x"}) },
		"get session":   func() error { _, err := s.ConsoleSession(ctx, "x"); return err },
		"upd session":   func() error { return s.UpdateConsoleSession(ctx, ConsoleSession{IDHash: "x"}) },
		"del session":   func() error { return s.DeleteConsoleSession(ctx, "x") },
		"del sessions":  func() error { _, err := s.DeleteUserConsoleSessions(ctx, 1, ""); return err },
		"user sessions": func() error { _, err := s.UserConsoleSessions(ctx, 1); return err },
		"expire":        func() error { _, err := s.DeleteExpiredConsoleSessions(ctx, t0, t0); return err },
		"invite":        func() error { _, err := s.CreateConsoleInvite(ctx, ConsoleInvite{}); return err },
		"by token":      func() error { _, err := s.ConsoleInviteByToken(ctx, "x"); return err },
		"invites":       func() error { _, err := s.ConsoleInvites(ctx); return err },
		"revoke":        func() error { return s.RevokeConsoleInvite(ctx, 1) },
		"accept":        func() error { _, err := s.AcceptConsoleInvite(ctx, "x", t0, ConsoleUser{}); return err },
		"failure":       func() error { _, err := s.RecordLoginFailure(ctx, "k", t0, time.Minute); return err },
		"failures":      func() error { _, err := s.LoginFailures(ctx, "k"); return err },
		"clear":         func() error { return s.ClearLoginFailures(ctx, "k") },
		"append": func() error {
			_, err := s.AppendAudit(ctx, AuditEntry{Actor: "a", Action: "b", Outcome: "c"})
			return err
		},
		"entries": func() error { _, _, err := s.AuditEntries(ctx, AuditQuery{}); return err },
		"verify":  func() error { _, err := s.VerifyAudit(ctx); return err },
	}
	for name, f := range checks {
		if err := f(); err == nil || errors.Is(err, ErrConsoleNotFound) {
			t.Errorf("%s on a closed store: %v", name, err)
		}
	}
}
