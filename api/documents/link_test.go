package documents

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

func (ev *env) link(t *testing.T, docID string) *url.URL {
	t.Helper()
	resp, body := ev.do(t, "GET", "/documents/"+docID+"/url", "viewer")
	var pu PresignedURL
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &pu) != nil {
		t.Fatalf("link: %d %s", resp.StatusCode, body)
	}
	u, err := url.Parse(ev.srv.URL + pu.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignedLinks(t *testing.T) {
	ev := newEnv(t, 0)
	d := ev.uploadOK(t, ev.company)
	other := ev.uploadOK(t, ev.company)
	u := ev.link(t, d.ID)
	if code, _ := get(t, u.String()); code != http.StatusOK {
		t.Fatalf("fresh link: %d", code)
	}

	tamper := func(f func(q url.Values)) string {
		v := *u
		q := v.Query()
		f(q)
		v.RawQuery = q.Encode()
		return v.String()
	}
	bad := map[string]string{
		"other document": strings.Replace(u.String(), d.ID, other.ID, 1),
		"signature":      tamper(func(q url.Values) { q.Set("signature", strings.Repeat("A", 43)) }),
		"later expiry":   tamper(func(q url.Values) { q.Set("expires", "99999999999") }),
		"other user":     tamper(func(q url.Values) { q.Set("user", analystID) }),
		"no signature":   tamper(func(q url.Values) { q.Del("signature") }),
		"not a number":   tamper(func(q url.Values) { q.Set("expires", "soon") }),
		"long signature": tamper(func(q url.Values) { q.Set("signature", strings.Repeat("A", 100)) }),
	}
	for name, link := range bad {
		if code, body := get(t, link); code != http.StatusForbidden || strings.Contains(body, "%PDF") {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}

	// Expired: a module whose clock is past the link's expiry refuses it.
	ev.mod.now = func() time.Time { return time.Now().Add(ev.mod.urlTTL + time.Second) }
	if code, _ := get(t, u.String()); code != http.StatusForbidden {
		t.Errorf("expired link: %d", code)
	}
	ev.mod.now = time.Now

	// The link dies with its user's access.
	ctx := context.Background()
	if _, err := ev.pool.Exec(ctx, `UPDATE users SET active = false WHERE id = $1`, viewerID); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, u.String()); code != http.StatusForbidden {
		t.Errorf("link of a deactivated user: %d", code)
	}
	if _, err := ev.pool.Exec(ctx, `UPDATE users SET active = true WHERE id = $1`, viewerID); err != nil {
		t.Fatal(err)
	}
	// …and with the document.
	if resp, _ := ev.do(t, "DELETE", "/documents/"+d.ID, "analyst"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if code, _ := get(t, u.String()); code != http.StatusNotFound {
		t.Errorf("link to a deleted document: %d", code)
	}

	// Downloads, link requests and refused links are access events, with the link's
	// user as actor.
	ev.audit.mu.Lock()
	defer ev.audit.mu.Unlock()
	var downloads, denied, links int
	for _, e := range ev.audit.events {
		if e.Kind != web.KindAccess {
			continue
		}
		switch {
		case e.Action == "document.link":
			links++
		case e.Action == "document.download" && e.Outcome == "success" && e.ActorID == viewerID && e.Target == "document:"+d.ID:
			downloads++
		case e.Action == "document.download" && e.Outcome == "denied":
			denied++
		}
	}
	if links != 1 || downloads != 1 || denied < len(bad) {
		t.Errorf("access events: %d links, %d downloads, %d denied; want 1, 1, ≥ %d", links, downloads, denied, len(bad))
	}
}
