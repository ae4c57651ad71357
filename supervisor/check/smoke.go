package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultAccountFile is where the check account's credentials live (root only).
const DefaultAccountFile = "/etc/corpintel/check-account.json"

// Account is the dedicated check account: an analyst (it may read, write and delete
// companies, nothing else), used only by the API smoke test.
type Account struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// postSmoke logs in with the check account and reads, writes and deletes through the
// supervisor's loopback listener (the same routes the edge serves).
func postSmoke(ctx context.Context, c *collector, o PostOptions, st statusView) {
	acct, err := readAccount(o.AccountFile)
	if errors.Is(err, fs.ErrNotExist) {
		c.add("api smoke test", NotConfigured, "no check account ("+o.AccountFile+")",
			"create it once with an admin's credentials: corpintel check --setup-account --admin-email E --admin-password-file F")
		return
	}
	if errors.Is(err, fs.ErrPermission) {
		c.add("api smoke test", Warn, "cannot read the check account "+o.AccountFile+" (root only)", "run corpintel check as root")
		return
	}
	if err != nil {
		c.add("api smoke test", Fail, err.Error(), "recreate the check account: corpintel check --setup-account …")
		return
	}
	start := o.Now()
	api := &apiClient{base: loopbackURL(o.Config), hc: o.HTTP}
	step, err := smoke(ctx, api, acct)
	if err != nil {
		fix := "corpintel logs --tail 100 api"
		if step == "login" {
			fix = "the check account may be gone or its password changed: corpintel check --setup-account …"
		}
		c.add("api smoke test", Fail, fmt.Sprintf("%s failed: %v", step, err), fix)
		return
	}
	c.ok("api smoke test", "login, list, create, read, delete as %s in %s", acct.Email, o.Now().Sub(start).Round(time.Millisecond))
}

// smoke runs the API round trip; it returns the step that failed.
func smoke(ctx context.Context, api *apiClient, acct Account) (string, error) {
	token, err := api.login(ctx, acct.Email, acct.Password)
	if err != nil {
		return "login", err
	}
	api.token = token
	if _, err := api.do(ctx, http.MethodGet, "/api/v1/companies?limit=1", nil, http.StatusOK); err != nil {
		return "read", err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "corpintel check " + hex.EncodeToString(b[:])
	body, err := api.do(ctx, http.MethodPost, "/api/v1/companies", map[string]string{"name": name}, http.StatusCreated)
	if err != nil {
		return "write", err
	}
	var created struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.ID == "" {
		return "write", fmt.Errorf("the answer to the create names no id: %s", truncate(string(body), 200))
	}
	got, err := api.do(ctx, http.MethodGet, "/api/v1/companies/"+created.ID, nil, http.StatusOK)
	if err != nil {
		return "read back", err
	}
	if !bytes.Contains(got, []byte(name)) {
		return "read back", errors.New("the company read back is not the one written")
	}
	if _, err := api.do(ctx, http.MethodDelete, "/api/v1/companies/"+created.ID, nil, http.StatusNoContent); err != nil {
		return "delete", err
	}
	if _, err := api.do(ctx, http.MethodGet, "/api/v1/companies/"+created.ID, nil, http.StatusNotFound); err != nil {
		return "delete", fmt.Errorf("still there after the delete: %w", err)
	}
	return "", nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func readAccount(path string) (Account, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's account file
	if err != nil {
		return Account{}, err
	}
	var a Account
	if err := json.Unmarshal(b, &a); err != nil || a.Email == "" || a.Password == "" {
		return Account{}, fmt.Errorf("%s is not a check account file (email and password)", path)
	}
	return a, nil
}

// apiClient is just enough of the platform API for the smoke test.
type apiClient struct {
	base  string
	hc    *http.Client
	token string
}

func (a *apiClient) do(ctx context.Context, method, path string, in any, want int) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return b, fmt.Errorf("%s %s: %s (want %d): %s", method, path, resp.Status, want, truncate(string(bytes.TrimSpace(b)), 200))
	}
	return b, nil
}

func (a *apiClient) login(ctx context.Context, email, password string) (string, error) {
	b, err := a.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}, http.StatusOK)
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		return "", errors.New("the login answer has no access token")
	}
	return tok.AccessToken, nil
}

// SetupOptions create the check account.
type SetupOptions struct {
	// API is the loopback listener (http://127.0.0.1:8000).
	API string
	// AdminEmail and AdminPassword are an admin's credentials (used once, not kept).
	AdminEmail, AdminPassword string
	// Email is the check account's address (default corpintel-check@localhost).
	Email string
	// File receives the credentials (0600).
	File string
	HTTP *http.Client
}

// SetupAccount creates the analyst the smoke test logs in as and writes its
// credentials to File. An account file that exists already is kept when it logs in.
func SetupAccount(ctx context.Context, o SetupOptions) (Account, error) {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Email == "" {
		o.Email = "corpintel-check@localhost"
	}
	api := &apiClient{base: o.API, hc: o.HTTP}
	if a, err := readAccount(o.File); err == nil {
		if _, err := api.login(ctx, a.Email, a.Password); err == nil {
			return a, nil
		}
	}
	token, err := api.login(ctx, o.AdminEmail, o.AdminPassword)
	if err != nil {
		return Account{}, fmt.Errorf("log in as %s: %w", o.AdminEmail, err)
	}
	api.token = token
	var pw [24]byte
	_, _ = rand.Read(pw[:])
	a := Account{Email: o.Email, Password: hex.EncodeToString(pw[:])}
	_, err = api.do(ctx, http.MethodPost, "/api/v1/users", map[string]string{"email": a.Email, "name": "corpintel check", "role": "analyst", "password": a.Password}, http.StatusCreated)
	if err != nil {
		return Account{}, fmt.Errorf("create the check account %s: %w (a user of that name may exist already: delete it, or pass another --email)", a.Email, err)
	}
	b, _ := json.MarshalIndent(a, "", "  ") // #nosec G117 -- the credentials file itself (0600, root)
	if err := writeFileAtomic(o.File, append(b, '\n'), 0o600); err != nil {
		return Account{}, fmt.Errorf("write %s: %w", o.File, err)
	}
	return a, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(mode), f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
