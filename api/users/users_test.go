package users_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
)

func TestCRUD(t *testing.T) {
	s := authtest.NewServer(t)
	admin, adm := s.Token(rbac.Admin)
	name := "Zoë Ünïcødé 李小龙 🚀 O'Brien"
	body := map[string]any{"email": "Zoe.O'Brien+1@Example.com", "name": name, "role": "analyst", "password": "long enough password"}
	r := s.Do(http.MethodPost, "/api/v1/users", admin, body)
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	var u users.User
	r.JSON(t, &u)
	if u.Name != name || u.Email != "Zoe.O'Brien+1@Example.com" || u.Role != rbac.Analyst || !u.Active || u.ID == "" {
		t.Fatalf("created %+v", u)
	}
	if strings.Contains(string(r.Body), "password") || strings.Contains(string(r.Body), "argon2") {
		t.Fatalf("response leaks the password: %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/users/"+u.ID {
		t.Fatalf("Location %q", loc)
	}
	if ev := s.Audit.Find("user.create"); len(ev) != 1 || ev[0].Target != "user/"+u.ID || ev[0].ActorID != adm.ID || ev[0].Kind != "security" {
		t.Fatalf("audit %+v", ev)
	}
	// Same email, other case: conflict.
	body["email"] = "zoe.o'brien+1@example.COM"
	if r := s.Do(http.MethodPost, "/api/v1/users", admin, body); r.Code != http.StatusConflict {
		t.Fatalf("duplicate: %d %s", r.Code, r.Body)
	}
	// The new user can log in; the name round-trips through /auth/me.
	tr := s.Login(authtest.User{Email: "zoe.o'brien+1@example.com", Password: "long enough password"})
	var meU users.User
	s.Do(http.MethodGet, "/api/v1/auth/me", tr.AccessToken, nil).JSON(t, &meU)
	if meU.Name != name || meU.ID != u.ID {
		t.Fatalf("me %+v", meU)
	}

	var got users.User
	if r := s.Do(http.MethodGet, "/api/v1/users/"+u.ID, admin, nil); r.Code != 200 {
		t.Fatalf("get: %d", r.Code)
	} else {
		r.JSON(t, &got)
	}
	if got.Name != name {
		t.Fatalf("get %+v", got)
	}
	for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid", url.PathEscape("1' OR '1'='1")} {
		if r := s.Do(http.MethodGet, "/api/v1/users/"+id, admin, nil); r.Code != http.StatusNotFound {
			t.Errorf("get %q: %d", id, r.Code)
		}
	}

	r = s.Do(http.MethodPatch, "/api/v1/users/"+u.ID, admin, map[string]any{"role": "viewer", "name": "  Zoë  "})
	if r.Code != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}
	r.JSON(t, &got)
	if got.Role != rbac.Viewer || got.Name != "Zoë" || !got.UpdatedAt.After(u.UpdatedAt) && !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Fatalf("patched %+v", got)
	}
	ev := s.Audit.Find("user.update")
	if len(ev) != 1 || ev[0].Detail["role"] != "viewer" {
		t.Fatalf("update audit %+v", ev)
	}
	// Password reset by the admin: the old password stops working, the new one works.
	if r := s.Do(http.MethodPatch, "/api/v1/users/"+u.ID, admin, map[string]any{"password": "the new long password"}); r.Code != 200 {
		t.Fatalf("reset: %d", r.Code)
	}
	for _, e := range s.Audit.Events() {
		if strings.Contains(strings.ToLower(strings.Join(anyStrings(e.Detail), " ")), "the new long password") {
			t.Fatal("audit holds the password")
		}
	}
	if r := s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": u.Email, "password": "long enough password"}); r.Code != 401 {
		t.Fatalf("old password: %d", r.Code)
	}
	s.Login(authtest.User{Email: u.Email, Password: "the new long password"})

	if r := s.Do(http.MethodDelete, "/api/v1/users/"+u.ID, admin, nil); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	if r := s.Do(http.MethodGet, "/api/v1/users/"+u.ID, admin, nil); r.Code != http.StatusNotFound {
		t.Fatalf("get deleted: %d", r.Code)
	}
	if r := s.Do(http.MethodDelete, "/api/v1/users/"+u.ID, admin, nil); r.Code != http.StatusNotFound {
		t.Fatalf("delete twice: %d", r.Code)
	}
}

func anyStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		if s, ok := v.(string); ok {
			out = append(out, k, s)
		}
	}
	return out
}

func TestValidation(t *testing.T) {
	s := authtest.NewServer(t)
	admin, u := s.Token(rbac.Admin)
	for name, c := range map[string]struct {
		body  string
		code  int
		field string
	}{
		"bad email":      {`{"email":"not an email","name":"n","role":"viewer","password":"long enough pw"}`, 422, "email"},
		"display name":   {`{"email":"Bob <bob@example.com>","name":"n","role":"viewer","password":"long enough pw"}`, 422, "email"},
		"injection":      {`{"email":"x@example.com'; DROP TABLE users; --","name":"n","role":"viewer","password":"long enough pw"}`, 422, "email"},
		"no name":        {`{"email":"a@example.com","name":"  ","role":"viewer","password":"long enough pw"}`, 422, "name"},
		"control chars":  {`{"email":"a@example.com","name":"a\u0007b","role":"viewer","password":"long enough pw"}`, 422, "name"},
		"bad role":       {`{"email":"a@example.com","name":"n","role":"root","password":"long enough pw"}`, 422, "role"},
		"short password": {`{"email":"a@example.com","name":"n","role":"viewer","password":"short"}`, 422, "password"},
		"unknown field":  {`{"email":"a@example.com","name":"n","role":"viewer","password":"long enough pw","admin":true}`, 400, ""},
		"malformed":      {`{"email":`, 400, ""},
		"huge":           {`{"name":"` + strings.Repeat("a", 9000) + `"}`, 413, ""},
	} {
		r := s.Do(http.MethodPost, "/api/v1/users", admin, c.body)
		if r.Code != c.code || !strings.Contains(string(r.Body), `"field":"`+c.field) && c.field != "" {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
	for name, c := range map[string]struct {
		body string
		code int
	}{
		"empty patch":    {`{}`, 422},
		"bad role":       {`{"role":"god"}`, 422},
		"short password": {`{"password":"x"}`, 422},
		"unknown field":  {`{"email":"x@example.com"}`, 400},
	} {
		if r := s.Do(http.MethodPatch, "/api/v1/users/"+u.ID, admin, c.body); r.Code != c.code {
			t.Errorf("patch %s: %d %s", name, r.Code, r.Body)
		}
	}
	// SQL injection as an email that is a valid address is just data.
	weird := `o'brien'--'OR'1'='1@example.com`
	r := s.Do(http.MethodPost, "/api/v1/users", admin, map[string]any{"email": weird, "name": "Robert'); DROP TABLE users;--", "role": "viewer", "password": "long enough pw"})
	if r.Code != http.StatusCreated {
		t.Fatalf("quoted local part: %d %s", r.Code, r.Body)
	}
	var got users.User
	r.JSON(t, &got)
	if got.Email != weird || got.Name != "Robert'); DROP TABLE users;--" {
		t.Fatalf("round trip %+v", got)
	}
}

func TestListPagination(t *testing.T) {
	s := authtest.NewServer(t)
	admin, _ := s.Token(rbac.Admin)
	for range 6 {
		s.CreateUser(rbac.Viewer)
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		path := "/api/v1/users?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := s.Do(http.MethodGet, path, admin, nil)
		if r.Code != 200 {
			t.Fatalf("list: %d %s", r.Code, r.Body)
		}
		var p users.Page
		r.JSON(t, &p)
		pages++
		for _, u := range p.Items {
			if seen[u.ID] {
				t.Fatalf("user %s twice", u.ID)
			}
			seen[u.ID] = true
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("saw %d users in %d pages", len(seen), pages)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "cursor=!!!", "cursor=bm9wZQ"} {
		if r := s.Do(http.MethodGet, "/api/v1/users?"+q, admin, nil); r.Code != 422 {
			t.Errorf("%s: %d %s", q, r.Code, r.Body)
		}
	}
}

func TestLastAdmin(t *testing.T) {
	s := authtest.NewServer(t)
	admin, a := s.Token(rbac.Admin)
	for name, c := range map[string]struct {
		method string
		body   any
	}{
		"demote":     {http.MethodPatch, map[string]any{"role": "analyst"}},
		"deactivate": {http.MethodPatch, map[string]any{"active": false}},
		"delete":     {http.MethodDelete, nil},
	} {
		if r := s.Do(c.method, "/api/v1/users/"+a.ID, admin, c.body); r.Code != http.StatusConflict {
			t.Errorf("%s the last admin: %d %s", name, r.Code, r.Body)
		}
	}
	// With a second admin, the first may step down.
	s.CreateUser(rbac.Admin)
	if r := s.Do(http.MethodPatch, "/api/v1/users/"+a.ID, admin, map[string]any{"role": "analyst"}); r.Code != 200 {
		t.Fatalf("demote with another admin: %d %s", r.Code, r.Body)
	}
}

func TestCreateAdmin(t *testing.T) {
	s := authtest.NewServer(t)
	ctx := context.Background()
	id, err := users.CreateAdmin(ctx, s.Pool, "root@example.com", "", []byte("a very long admin password"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := users.Get(ctx, s.Pool, id)
	if err != nil || u.Role != rbac.Admin || u.Name != "Administrator" {
		t.Fatalf("%+v %v", u, err)
	}
	s.Login(authtest.User{Email: "ROOT@example.com", Password: "a very long admin password"})
	_, err = users.CreateAdmin(ctx, s.Pool, "Root@Example.com", "Again", []byte("a very long admin password"))
	if !errors.Is(err, users.ErrEmailTaken) || !strings.Contains(err.Error(), "Root@Example.com") {
		t.Fatalf("duplicate admin: %v", err)
	}
	if _, err := users.CreateAdmin(ctx, s.Pool, "x@example.com", "X", []byte("short")); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("short password: %v", err)
	}
}

func TestAnonymizeAndExport(t *testing.T) {
	s := authtest.NewServer(t)
	s.Listen()
	ctx := context.Background()
	s.CreateUser(rbac.Admin)
	tok, u := s.Token(rbac.Analyst)
	// A failed login is recorded against the email and shows up in the export.
	s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": u.Email, "password": "wrong password"})

	exp, err := users.Export(ctx, s.Pool, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	profile := exp["user"].(map[string]any)
	if profile["email"] != u.Email || profile["has_password"] != true {
		t.Fatalf("export %+v", exp)
	}
	if len(exp["sessions"].([]map[string]any)) != 1 || len(exp["failed_logins"].([]map[string]any)) != 1 {
		t.Fatalf("export sessions/failures %+v", exp)
	}
	if _, err := users.Export(ctx, s.Pool, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("export unknown: %v", err)
	}

	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error { return users.Anonymize(ctx, tx, u.ID, "anon-7f3a") })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := users.Get(ctx, s.Pool, u.ID)
	if got.Email != "anon-7f3a@anonymized.invalid" || got.Name != "anon-7f3a" || got.Active || got.AnonymizedAt == nil {
		t.Fatalf("anonymized %+v", got)
	}
	var old int
	_ = s.Pool.QueryRow(ctx, `SELECT count(*) FROM auth_login_failures WHERE key = lower($1)`, u.Email).Scan(&old)
	if old != 0 {
		t.Fatal("failed logins keyed by the old email survive anonymization")
	}
	if r := s.Do(http.MethodGet, "/api/v1/auth/me", tok, nil); r.Code != http.StatusUnauthorized {
		t.Fatalf("token of anonymized user: %d", r.Code)
	}
	if r := s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}); r.Code != http.StatusUnauthorized {
		t.Fatalf("login of anonymized user: %d", r.Code)
	}
	exp, _ = users.Export(ctx, s.Pool, u.ID)
	if exp["user"].(map[string]any)["has_password"] != false || len(exp["failed_logins"].([]map[string]any)) != 0 {
		t.Fatalf("export after anonymization %+v", exp)
	}
	// Anonymized users cannot be changed through the API.
	admin, _ := s.Token(rbac.Admin)
	if r := s.Do(http.MethodPatch, "/api/v1/users/"+u.ID, admin, map[string]any{"active": true}); r.Code != http.StatusConflict {
		t.Fatalf("reactivate anonymized: %d", r.Code)
	}
	// The last active admin cannot be anonymized; the error carries a 409 problem.
	var lastAdmin string
	_ = s.Pool.QueryRow(ctx, `SELECT id FROM users WHERE role = 'admin' AND active`).Scan(&lastAdmin)
	_, _ = s.Pool.Exec(ctx, `UPDATE users SET active = false WHERE role = 'admin' AND id <> $1`, lastAdmin)
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error { return users.Anonymize(ctx, tx, lastAdmin, "p-admin") })
	var p *web.Problem
	if !errors.Is(err, users.ErrLastAdmin) || !errors.As(err, &p) || p.Status != http.StatusConflict {
		t.Fatalf("anonymize last admin: %v", err)
	}
	for name, f := range map[string]func(tx pgx.Tx) error{
		"unknown":   func(tx pgx.Tx) error { return users.Anonymize(ctx, tx, "00000000-0000-4000-8000-000000000000", "p") },
		"empty":     func(tx pgx.Tx) error { return users.Anonymize(ctx, tx, u.ID, " ") },
		"duplicate": func(tx pgx.Tx) error { return users.Anonymize(ctx, tx, s.CreateUser(rbac.Viewer).ID, "anon-7f3a") },
	} {
		if err := pgx.BeginFunc(ctx, s.Pool, f); err == nil {
			t.Errorf("anonymize %s: no error", name)
		}
	}
}
