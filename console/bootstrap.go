package console

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corpintel/corpintel/internal/password"
)

// FirstPasswordFileName is the file in the state dir with the first admin's generated
// password (0600), there until the admin has chosen their own.
const FirstPasswordFileName = "console-admin-password"

// FirstAdminName is the first admin's user name.
const FirstAdminName = "admin"

// FirstAdmin is what the supervisor says at start about the first admin.
type FirstAdmin struct {
	Name string
	// File holds the generated password while it is still the admin's ("" once they
	// chose their own); Password is its content.
	File, Password string
	// Created is true on the start that created the admin.
	Created bool
}

// EnsureFirstAdmin creates the first admin on the first start — there is no default
// password and no sign-up: the password is generated, written to a 0600 file in dir
// and must be changed at the first login. On later starts it reports the file while it
// still exists.
func EnsureFirstAdmin(ctx context.Context, store Store, dir string, hash *password.Params) (FirstAdmin, error) {
	fa := FirstAdmin{Name: FirstAdminName, File: filepath.Join(dir, FirstPasswordFileName)}
	n, err := store.UserCount(ctx)
	if err != nil {
		return FirstAdmin{}, fmt.Errorf("console: first admin: %w", err)
	}
	if n > 0 {
		b, err := os.ReadFile(fa.File)
		if errors.Is(err, os.ErrNotExist) {
			return FirstAdmin{Name: fa.Name}, nil
		}
		if err != nil {
			return FirstAdmin{}, fmt.Errorf("console: first admin: %w", err)
		}
		fa.Password = strings.TrimSpace(string(b))
		return fa, nil
	}
	fa.Password, fa.Created = GeneratePassword(), true
	h, err := password.HashWith([]byte(fa.Password), paramsOr(hash))
	if err != nil {
		return FirstAdmin{}, err
	}
	// The file first: an admin whose password nobody can read would lock everyone out.
	if err := writeSecretFile(fa.File, []byte(fa.Password+"\n")); err != nil {
		return FirstAdmin{}, fmt.Errorf("console: write the first admin's password: %w", err)
	}
	u, err := store.CreateUser(ctx, User{Name: fa.Name, Role: "admin", PasswordHash: h, MustChange: true, Active: true})
	if errors.Is(err, ErrExists) {
		// Another process created it meanwhile; its password is the one in its file.
		_ = os.Remove(fa.File)
		return FirstAdmin{Name: fa.Name}, nil
	}
	if err != nil {
		_ = os.Remove(fa.File)
		return FirstAdmin{}, fmt.Errorf("console: create the first admin: %w", err)
	}
	if _, err := store.AppendAudit(ctx, AuditEntry{Actor: "supervisor", Action: "user.bootstrap", Target: "user:" + u.Name,
		Outcome: "success", Detail: "first admin created; generated password in " + fa.File}); err != nil {
		return FirstAdmin{}, err
	}
	return fa, nil
}

// writeSecretFile writes b to path atomically with mode 0600.
func writeSecretFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ResetPassword is root's way back in (`corpintel console reset-password USER`): the
// user gets a new generated password that must be changed at the next login, TOTP and
// recovery codes are turned off (the device may be what was lost), the login throttle
// is cleared, every session ends and the user is active again. actor says who did it.
func ResetPassword(ctx context.Context, store Store, name, actor string, hash *password.Params) (string, error) {
	u, err := store.UserByName(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("no console user %q (the first admin is %q)", name, FirstAdminName)
	}
	if err != nil {
		return "", err
	}
	pw := GeneratePassword()
	h, err := password.HashWith([]byte(pw), paramsOr(hash))
	if err != nil {
		return "", err
	}
	wasActive := u.Active
	u.PasswordHash, u.MustChange, u.TOTPSecret, u.TOTPLastStep, u.Active = h, true, "", 0, true
	if err := store.UpdateUser(ctx, u); err != nil {
		return "", err
	}
	if err := store.SetRecoveryCodes(ctx, u.ID, nil); err != nil {
		return "", err
	}
	if err := store.ClearLoginFailures(ctx, accountKey(u.Name)); err != nil {
		return "", err
	}
	n, err := store.DeleteUserSessions(ctx, u.ID, "")
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("new generated password; TOTP off; sessions ended: %d", n)
	if !wasActive {
		detail += "; reactivated"
	}
	if _, err := store.AppendAudit(ctx, AuditEntry{Actor: actor, Action: "user.reset_password", Target: "user:" + u.Name,
		Outcome: "success", Detail: detail}); err != nil {
		return "", err
	}
	return pw, nil
}
