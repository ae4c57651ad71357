package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/jackc/pgx/v5/pgxpool"
)

// twoReplicas returns two auth servers on one PostgreSQL database, each with its own
// connection pool (as two API containers have), counting their argon2 verifications in n.
func twoReplicas(t *testing.T, n *atomic.Int64) (a, b *authtest.Server) {
	t.Helper()
	a = authtest.NewServer(t)
	pool, err := pgxpool.NewWithConfig(context.Background(), a.Pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b = authtest.NewReplica(t, pool)
	count := func([]byte) { n.Add(1) }
	a.Auth.OnVerify(count)
	b.Auth.OnVerify(count)
	return a, b
}

// TestConcurrentFailedLoginsAcrossReplicas fires 50 wrong-password logins at once, half
// through each replica. Checking the count and recording the failure must be one atomic
// step in PostgreSQL: exactly the limit's worth of argon2 verifications may run, every
// other request is throttled before hashing.
func TestConcurrentFailedLoginsAcrossReplicas(t *testing.T) {
	const requests = 50
	for _, tt := range []struct {
		name  string
		limit int
		email func(u authtest.User, i int) string
		ip    func(i int) string
	}{
		{
			name:  "one account from many addresses",
			limit: 5,
			email: func(u authtest.User, _ int) string { return u.Email },
			ip:    func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) },
		},
		{
			name:  "many accounts from one address",
			limit: 20,
			email: func(_ authtest.User, i int) string { return fmt.Sprintf("spray%d@example.com", i) },
			ip:    func(int) string { return "203.0.113.50" },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var verified atomic.Int64
			a, b := twoReplicas(t, &verified)
			u := a.CreateUser(rbac.Viewer)

			codes := make([]*authtest.Resp, requests)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range requests {
				srv := []*authtest.Server{a, b}[i%2]
				wg.Go(func() {
					<-start
					codes[i] = srv.Do(http.MethodPost, login, "",
						map[string]string{"email": tt.email(u, i), "password": "wrong password!"}, "X-Real-IP", tt.ip(i))
				})
			}
			close(start)
			wg.Wait()

			denied, throttled := 0, 0
			for i, r := range codes {
				switch {
				case r.Code == http.StatusUnauthorized:
					denied++
				case r.Code == http.StatusTooManyRequests && r.Header.Get("Retry-After") != "":
					throttled++
				default:
					t.Errorf("request %d: %d %v %s", i, r.Code, r.Header, r.Body)
				}
			}
			if n := verified.Load(); n != int64(tt.limit) || denied != tt.limit || throttled != requests-tt.limit {
				t.Fatalf("argon2 verifications = %d, 401 = %d, 429 = %d; want %d, %d, %d",
					n, denied, throttled, tt.limit, tt.limit, requests-tt.limit)
			}
			// Throttled requests are not failures of their own: the window still ends
			// when the first failures age out.
			var rows int
			if err := a.Pool.QueryRow(context.Background(), `SELECT count(*) FROM auth_login_failures`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 2*tt.limit { // one account row and one IP row per failure
				t.Errorf("auth_login_failures rows = %d, want %d", rows, 2*tt.limit)
			}
			// The right password does not get through the throttle either, on any replica.
			for _, srv := range []*authtest.Server{a, b} {
				if r := srv.Do(http.MethodPost, login, "", map[string]string{"email": u.Email, "password": u.Password},
					"X-Real-IP", tt.ip(0)); r.Code != http.StatusTooManyRequests {
					t.Errorf("login after the burst: %d %s", r.Code, r.Body)
				}
			}
			if n := verified.Load(); n != int64(tt.limit) {
				t.Errorf("throttled logins ran %d more verifications", n-int64(tt.limit))
			}
		})
	}
}

// TestSuccessfulLoginReleasesItsAttempt checks the semantics the atomic reservation keeps:
// a success does not count against the client address, and it forgives the account's
// earlier failures.
func TestSuccessfulLoginReleasesItsAttempt(t *testing.T) {
	var verified atomic.Int64
	a, b := twoReplicas(t, &verified)
	u := a.CreateUser(rbac.Viewer)
	loginAs := func(srv *authtest.Server, pw, ip string) int {
		return srv.Do(http.MethodPost, login, "", map[string]string{"email": u.Email, "password": pw}, "X-Real-IP", ip).Code
	}

	// More successes from one address than the per-IP limit: none is throttled.
	for i := range 25 {
		if code := loginAs([]*authtest.Server{a, b}[i%2], u.Password, "192.0.2.77"); code != http.StatusOK {
			t.Fatalf("success %d from one address: %d", i, code)
		}
	}
	// Four failures, a success, then five more failures before the account locks.
	for i := range 4 {
		if code := loginAs(a, "wrong password!", "192.0.2.78"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	if code := loginAs(b, u.Password, "192.0.2.78"); code != http.StatusOK {
		t.Fatalf("success after four failures: %d", code)
	}
	for i := range 5 {
		if code := loginAs(b, "wrong password!", "192.0.2.78"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d after the success: %d", i, code)
		}
	}
	if code := loginAs(a, u.Password, "192.0.2.78"); code != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt: %d", code)
	}
	if n := verified.Load(); n != 25+4+1+5 {
		t.Fatalf("argon2 verifications = %d, want %d", n, 25+4+1+5)
	}
}

// TestSuccessForgivesOnlyEarlierAttempts: failures reserved while a successful login was
// still verifying stay counted after it, so a success cannot reopen the throttle for
// guesses that were already past it.
func TestSuccessForgivesOnlyEarlierAttempts(t *testing.T) {
	a := authtest.NewServer(t)
	u := a.CreateUser(rbac.Viewer)
	inSuccess, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // a failed check must not leave the login blocked
	a.Auth.OnVerify(func(pw []byte) {
		if string(pw) == u.Password {
			close(inSuccess)
			<-release
		}
	})
	loginAs := func(pw string) int {
		return a.Do(http.MethodPost, login, "", map[string]string{"email": u.Email, "password": pw}, "X-Real-IP", "192.0.2.79").Code
	}
	success := make(chan int, 1)
	go func() { success <- loginAs(u.Password) }()
	<-inSuccess // reserved, now verifying
	for i := range 4 {
		if code := loginAs("wrong password!"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d during the success: %d", i, code)
		}
	}
	releaseOnce()
	if code := <-success; code != http.StatusOK {
		t.Fatalf("the correct password: %d", code)
	}
	if code := loginAs("wrong password!"); code != http.StatusUnauthorized {
		t.Fatalf("fifth failure: %d", code)
	}
	if code := loginAs("wrong password!"); code != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt: %d (the success forgave failures reserved after it)", code)
	}
}
