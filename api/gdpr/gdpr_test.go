package gdpr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/audit"
	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/documents"
	"github.com/corpintel/corpintel/api/gdpr"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// production wiring: audit listing, documents and GDPR with every source.
func modules(d app.Deps) []web.Module {
	return []web.Module{audit.New(d), documents.New(d), gdpr.New(d.Pool, d.Audit, d.Log, d.Now, d.Config.KEK, audit.GDPRSource(), documents.GDPRSource(), gdpr.ProfileSource())}
}

func createUser(t *testing.T, s *apitest.Server, email string, role rbac.Role) users.User {
	t.Helper()
	u, err := users.Create(context.Background(), s.Deps.Pool, users.NewUser{Email: email, Name: "Alice Example", Role: role, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func uploadDoc(t *testing.T, s *apitest.Server, token, company string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormFile("file", "notes.txt")
	_, _ = io.WriteString(w, "meeting notes\n")
	_ = mw.Close()
	r := s.DoHeaders("POST", "/api/v1/companies/"+company+"/documents", token, &body, http.Header{"Content-Type": {mw.FormDataContentType()}})
	if r.Code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Code, r.Body)
	}
}

func TestPseudonymStableAndKeyed(t *testing.T) {
	const id = "6f1c3a8e-0d7b-4a55-9b1e-6c2f0a4d9e11"
	k1, k2 := gdpr.PseudonymKey([]byte("a")), gdpr.PseudonymKey([]byte("b"))
	p := gdpr.Pseudonym(k1, id)
	if p != gdpr.Pseudonym(k1, id) || !strings.HasPrefix(p, "anon-") || len(p) != 37 {
		t.Fatalf("pseudonym %q", p)
	}
	if p == gdpr.Pseudonym(k2, id) || p == gdpr.Pseudonym(k1, id[:35]+"2") {
		t.Fatal("pseudonyms collide")
	}
}

func TestExportAndAnonymize(t *testing.T) {
	s := apitest.New(t, modules)
	ctx := context.Background()
	pool := s.Deps.Pool
	adminTok, adminID := s.Token(rbac.Admin)
	analystTok, _ := s.Token(rbac.Analyst)
	alice := createUser(t, s, "Alice@Example.com", rbac.Analyst)
	aliceTok := s.TokenFor(alice.ID, rbac.Analyst)
	pseudonym := gdpr.Pseudonym(gdpr.PseudonymKey(s.Deps.Config.KEK), alice.ID)

	var company string
	if err := pool.QueryRow(ctx, `INSERT INTO companies (name) VALUES ('ACME') RETURNING id`).Scan(&company); err != nil {
		t.Fatal(err)
	}
	uploadDoc(t, s, aliceTok, company) // audited with alice as actor, document uploaded_by alice
	uploadDoc(t, s, analystTok, company)
	rec := s.Recorder
	now := time.Now().UTC()
	for _, ev := range []web.Event{
		{Time: now, ActorID: alice.ID, Action: "auth.login", ClientIP: "2001:db8:1234:5678::1", Status: 200, Kind: web.KindSecurity, Detail: map[string]any{"email": "alice@example.com"}},
		{Time: now, Action: "auth.login", ClientIP: "198.51.100.99", Status: 401, Kind: web.KindSecurity, Detail: map[string]any{"email": "alice@example.com"}},
		{Time: now, ActorID: adminID, Action: "user.update", Target: "/api/v1/users/" + alice.ID, ClientIP: "192.0.2.10", Status: 200, Kind: web.KindSecurity, Detail: map[string]any{"user": alice.ID}},
		{Time: now, ActorID: "someone-else", Action: "company.create", ClientIP: "192.0.2.11", Status: 201, Detail: map[string]any{"email": "bob@example.com"}},
	} {
		if err := rec.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	// export: admins only, 404 for unknown users, everything about alice, audited
	if r := s.Do("GET", "/api/v1/users/"+alice.ID+"/export", analystTok, nil); r.Code != http.StatusForbidden {
		t.Fatalf("analyst export: %d", r.Code)
	}
	for _, id := range []string{"not-a-uuid", "00000000-0000-4000-8000-000000000000"} {
		if r := s.Do("GET", "/api/v1/users/"+id+"/export", adminTok, nil); r.Code != http.StatusNotFound {
			t.Fatalf("export %s: %d", id, r.Code)
		}
	}
	r := s.Do("GET", "/api/v1/users/"+alice.ID+"/export", adminTok, nil)
	if r.Code != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %s", r.Code, r.Body)
	}
	var out struct {
		UserID string `json:"user_id"`
		Data   struct {
			Profile struct {
				User struct{ Email string } `json:"user"`
			} `json:"profile"`
			AuditEvents []audit.Record       `json:"audit_events"`
			Documents   []documents.Document `json:"documents"`
		} `json:"data"`
	}
	r.JSON(t, &out)
	if out.UserID != alice.ID || out.Data.Profile.User.Email != "Alice@Example.com" || len(out.Data.AuditEvents) != 2 ||
		len(out.Data.Documents) != 1 || out.Data.Documents[0].UploadedBy != alice.ID {
		t.Fatalf("export %s", r.Body)
	}
	if ev := s.Events(t)[0]; ev.Action != "gdpr.export" || ev.Kind != web.KindSecurity || ev.ActorID != adminID || ev.Outcome != "success" {
		t.Fatalf("export not audited: %+v", ev)
	}

	// anonymize
	if r := s.Do("POST", "/api/v1/users/"+alice.ID+"/anonymize", analystTok, nil); r.Code != http.StatusForbidden {
		t.Fatalf("analyst anonymize: %d", r.Code)
	}
	if r := s.Do("POST", "/api/v1/users/"+adminID+"/anonymize", adminTok, nil); r.Code != http.StatusConflict {
		t.Fatalf("self anonymize: %d", r.Code)
	}
	if r := s.Do("POST", "/api/v1/users/00000000-0000-4000-8000-000000000000/anonymize", adminTok, nil); r.Code != http.StatusNotFound {
		t.Fatalf("unknown user: %d", r.Code)
	}
	r = s.Do("POST", "/api/v1/users/"+alice.ID+"/anonymize", adminTok, nil)
	if r.Code != http.StatusOK {
		t.Fatalf("anonymize: %d %s", r.Code, r.Body)
	}
	var res gdpr.AnonymizeResult
	r.JSON(t, &res)
	if res.Pseudonym != pseudonym || strings.Join(res.Sources, ",") != "audit_events,documents,profile" {
		t.Fatalf("result %s", r.Body)
	}
	if ev := s.Events(t)[0]; ev.Action != "gdpr.anonymize" || ev.Outcome != "success" || ev.Kind != web.KindSecurity ||
		strings.Contains(ev.Target, alice.ID) || !strings.Contains(ev.Target, pseudonym) {
		t.Fatalf("anonymize audit event %+v", ev)
	}

	// nothing identifies alice any more; her events are still one actor
	var leaks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE actor_id = $1 OR target LIKE '%' || $1 || '%'
		OR detail::text LIKE '%' || $1 || '%' OR detail::text ILIKE '%alice@example.com%'`, alice.ID).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Fatalf("%d audit rows still identify alice", leaks)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM documents WHERE uploaded_by = $1`, alice.ID).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("%d documents still name alice (%v)", leaks, err)
	}
	u, err := users.Get(ctx, pool, alice.ID)
	if err != nil || strings.Contains(strings.ToLower(u.Email), "alice") || u.Name != pseudonym || u.Active || u.AnonymizedAt == nil {
		t.Fatalf("user row %+v %v", u, err)
	}
	p, err := audit.List(ctx, pool, audit.Filter{Actor: pseudonym})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]bool{}
	for _, e := range p.Items {
		ips[e.ClientIP] = true
	}
	if len(p.Items) != 2 || !ips["2001:db8:1234::"] {
		t.Fatalf("pseudonymous events %+v", p.Items)
	}
	p, _ = audit.List(ctx, pool, audit.Filter{Action: "user.update"})
	if e := p.Items[0]; e.ActorID != adminID || e.ClientIP != "192.0.2.10" || e.Target != "/api/v1/users/"+pseudonym {
		t.Fatalf("admin's event %+v", e)
	}
	p, _ = audit.List(ctx, pool, audit.Filter{Actor: "someone-else"})
	if e := p.Items[0]; e.ClientIP != "192.0.2.11" || !strings.Contains(string(e.Detail), "bob@example.com") {
		t.Fatalf("unrelated event changed: %+v", e)
	}
	p, _ = audit.List(ctx, pool, audit.Filter{Outcome: "denied", Action: "auth.login"})
	if e := p.Items[0]; e.ClientIP != "198.51.100.0" || !strings.Contains(string(e.Detail), pseudonym) {
		t.Fatalf("failed login by email not anonymized: %+v", e)
	}

	// again: same pseudonym, the rewritten records do not change
	snapshot := func() string {
		var s string
		_ = pool.QueryRow(ctx, `SELECT string_agg(actor_id || target || client_ip || coalesce(detail::text, ''), '|' ORDER BY id)
			FROM audit_events WHERE action NOT LIKE 'gdpr.%'`).Scan(&s)
		return s
	}
	before := snapshot()
	r = s.Do("POST", "/api/v1/users/"+alice.ID+"/anonymize", adminTok, nil)
	var res2 gdpr.AnonymizeResult
	r.JSON(t, &res2)
	if r.Code != http.StatusOK || res2.Pseudonym != pseudonym || snapshot() != before {
		t.Fatalf("second anonymize: %d %s", r.Code, r.Body)
	}
}

func TestAnonymizeLastAdminRefused(t *testing.T) {
	s := apitest.New(t, modules)
	tok, _ := s.Token(rbac.Admin) // a token-table admin, not in the users table
	only := createUser(t, s, "boss@example.com", rbac.Admin)
	r := s.Do("POST", "/api/v1/users/"+only.ID+"/anonymize", tok, nil)
	if r.Code != http.StatusConflict {
		t.Fatalf("anonymize last admin: %d %s", r.Code, r.Body)
	}
	if ev := s.Events(t)[0]; ev.Action != "gdpr.anonymize" || ev.Outcome != "failure" {
		t.Fatalf("refusal not audited: %+v", ev)
	}
}

func TestAnonymizeIsOneTransaction(t *testing.T) {
	broken := gdpr.Source{Name: "broken", Anonymize: func(context.Context, pgx.Tx, string, string) error {
		return errors.New("constraint violated")
	}}
	s := apitest.New(t, func(d app.Deps) []web.Module {
		return []web.Module{gdpr.New(d.Pool, d.Audit, d.Log, d.Now, d.Config.KEK, audit.GDPRSource(), gdpr.ProfileSource(), broken)}
	})
	ctx := context.Background()
	tok, _ := s.Token(rbac.Admin)
	alice := createUser(t, s, "alice@example.com", rbac.Viewer)
	if err := s.Recorder.Record(ctx, web.Event{ActorID: alice.ID, Action: "company.create"}); err != nil {
		t.Fatal(err)
	}
	if r := s.Do("POST", "/api/v1/users/"+alice.ID+"/anonymize", tok, nil); r.Code != http.StatusInternalServerError {
		t.Fatalf("failing source answered %d", r.Code)
	}
	u, err := users.Get(ctx, s.Deps.Pool, alice.ID)
	var n int
	_ = s.Deps.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE actor_id = $1`, alice.ID).Scan(&n)
	if err != nil || u.Email != "alice@example.com" || !u.Active || n != 1 {
		t.Fatalf("partial anonymization: %+v, %d events kept", u, n)
	}
}

type failingAuditor struct{}

func (failingAuditor) Record(context.Context, web.Event) error { return errors.New("audit store down") }

func TestExportRefusedWhenAuditFails(t *testing.T) {
	failing := gdpr.Source{Name: "x", Export: func(context.Context, gdpr.Querier, string) (any, error) { return nil, fmt.Errorf("boom") }}
	s := apitest.New(t, func(d app.Deps) []web.Module {
		return []web.Module{
			gdpr.New(d.Pool, failingAuditor{}, nil, nil, d.Config.KEK, gdpr.ProfileSource()),
		}
	})
	tok, _ := s.Token(rbac.Admin)
	alice := createUser(t, s, "alice@example.com", rbac.Viewer)
	if r := s.Do("GET", "/api/v1/users/"+alice.ID+"/export", tok, nil); r.Code != http.StatusInternalServerError || strings.Contains(r.String(), "alice") {
		t.Fatalf("export without audit: %d %s", r.Code, r.Body)
	}
	s2 := apitest.New(t, func(d app.Deps) []web.Module {
		return []web.Module{gdpr.New(d.Pool, d.Audit, nil, nil, d.Config.KEK, failing)}
	})
	tok2, _ := s2.Token(rbac.Admin)
	alice2 := createUser(t, s2, "alice@example.com", rbac.Viewer)
	if r := s2.Do("GET", "/api/v1/users/"+alice2.ID+"/export", tok2, nil); r.Code != http.StatusInternalServerError {
		t.Fatalf("failing export source: %d", r.Code)
	}
}

func TestAnonymizeRewritesArchives(t *testing.T) {
	s := apitest.New(t, modules)
	ctx := context.Background()
	tok, _ := s.Token(rbac.Admin)
	alice := createUser(t, s, "alice@example.com", rbac.Viewer)
	old := time.Now().UTC().Add(-400 * 24 * time.Hour)
	for _, ev := range []web.Event{
		{Time: old, ActorID: alice.ID, Action: "auth.login", ClientIP: "198.51.100.23", Status: 200, Kind: web.KindSecurity, Detail: map[string]any{"email": "alice@example.com"}},
		{Time: old, ActorID: alice.ID, Action: "company.update", ClientIP: "198.51.100.23", Status: 200, Kind: web.KindAccess},
		{Time: old, ActorID: "bob", Action: "company.update", ClientIP: "192.0.2.1", Status: 200, Kind: web.KindAccess},
	} {
		if err := s.Recorder.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Recorder.Enforce(ctx, time.Now())
	if err != nil || len(st.Objects) != 2 {
		t.Fatalf("archive before anonymizing: %+v %v", st, err)
	}
	if r := s.Do("POST", "/api/v1/users/"+alice.ID+"/anonymize", tok, nil); r.Code != http.StatusOK {
		t.Fatalf("anonymize: %d %s", r.Code, r.Body)
	}
	st, err = s.Recorder.Enforce(ctx, time.Now())
	if err != nil || st.Rewritten != 2 {
		t.Fatalf("rewrite pass: %+v %v", st, err)
	}
	pseudonym := gdpr.Pseudonym(gdpr.PseudonymKey(s.Deps.Config.KEK), alice.ID)
	store := blob.Objects{S: s.Deps.Blob}
	actors := map[string]bool{}
	err = store.ListObjects(ctx, "audit/", func(key string, _ time.Time) error {
		rc, err := store.GetObject(ctx, key)
		if err != nil {
			return err
		}
		defer rc.Close()
		recs, err := audit.DecodeArchive(rc)
		if err != nil {
			return err
		}
		for _, r := range recs {
			b, _ := json.Marshal(r)
			if strings.Contains(string(b), alice.ID) || strings.Contains(string(b), "alice@") || strings.Contains(string(b), "198.51.100.23") {
				t.Errorf("%s still identifies alice: %s", key, b)
			}
			actors[r.ActorID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !actors[pseudonym] || !actors["bob"] {
		t.Fatalf("actors in the archive: %v", actors)
	}
	var queued int
	_ = s.Deps.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_archive_rewrites`).Scan(&queued)
	if queued != 0 {
		t.Fatalf("%d rewrites still queued", queued)
	}
	if st, err := s.Recorder.Enforce(ctx, time.Now()); err != nil || st.Rewritten != 0 {
		t.Fatalf("idle pass: %+v %v", st, err)
	}
}
