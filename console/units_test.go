package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "client:192.0.2.7",
		"::ffff:192.0.2.7":     "client:192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "client:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "client:2001:db8:1:2::/64",
		"2001:db8:1:3:3:4:5:6": "client:2001:db8:1:3::/64",
	} {
		if got := clientKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("clientKey(%s) = %s, want %s", in, got, want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "not-an-address"
	if peerAddr(r).IsValid() {
		t.Error("peer of a bad RemoteAddr")
	}
	if safeName("<x>") != "USER" || safeName("ada") != "ada" {
		t.Error("safeName")
	}
}

// An unexpected error shows a page without its details (logged instead); a stream
// gets plain text.
func TestRenderError(t *testing.T) {
	h := newHarness(t)
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/admin/x", nil)
	h.c.renderError(rec, r, &request{route: &routes[0]}, errors.New("secret internal detail"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret internal detail") || !strings.Contains(rec.Body.String(), "journalctl") {
		t.Fatalf("500 page: %d %s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	r.Header.Set("Accept", "text/event-stream")
	h.c.renderError(rec, r, nil, errorf(http.StatusBadRequest, "bad view"))
	if rec.Code != 400 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("stream error: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if (&httpError{status: 404, msg: "x"}).Error() != "404: x" || invalid("a %d", 1).Error() != "a 1" {
		t.Fatal("error texts")
	}
	if _, err := h.c.fragment("no-such-fragment", nil); err == nil {
		t.Fatal("unknown fragment")
	}
	if err := h.c.render(rec, r, nil, 200, "no-such-page", view{}); err == nil {
		t.Fatal("unknown page")
	}
}

// The first admin is never created without its password file (and a store that fails
// creates none).
func TestFirstAdminFailures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		st := newMemStore()
		if _, err := EnsureFirstAdmin(ctx, st, ro, &cheap); err == nil {
			t.Fatal("first admin without a writable state dir")
		}
		if n, _ := st.UserCount(ctx); n != 0 {
			t.Fatal("an admin was created whose password nobody can read")
		}
	}
	if err := writeSecretFile(filepath.Join(dir, "file-not-dir", "x"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := writeSecretFile(filepath.Join(dir, "file-not-dir", "x", "y"), []byte("x")); err == nil {
		t.Fatal("wrote below a file")
	}
	st := newMemStore()
	if _, err := st.CreateUser(ctx, User{Name: "admin", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	// Users exist and the file is unreadable (a directory here): an error, not silence.
	if err := os.Mkdir(filepath.Join(dir, FirstPasswordFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureFirstAdmin(ctx, st, dir, &cheap); err == nil {
		t.Fatal("unreadable password file")
	}
}

// Without a test override, hashes use the console's parameters, and so does the
// verification spent on unknown users.
func TestDefaultHashParams(t *testing.T) {
	st := newMemStore()
	fa, err := EnsureFirstAdmin(context.Background(), st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := st.UserByName(context.Background(), fa.Name)
	if !strings.Contains(u.PasswordHash, "$m=7168,t=5,p=1$") || !strings.Contains(dummyHash(), "$m=7168,t=5,p=1$") {
		t.Fatalf("hash %s, dummy %s", u.PasswordHash, dummyHash())
	}
	if checkPassword(nil, "x") || !checkPassword(&u, fa.Password) {
		t.Fatal("checkPassword")
	}
}
