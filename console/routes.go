package console

import (
	"fmt"
	"net/http"
	"strings"
)

// route is one entry of the console: method and path (a net/http.ServeMux pattern), the
// role it requires and the action it records in the audit log. Nothing is served
// outside this table, and New refuses a route without a role or without an audit
// action (reads say NoAudit explicitly).
type route struct {
	Method string // GET or POST; "" only for the catch-all
	Path   string
	Role   Role
	// Audit is the action a state-changing route records (every outcome, also
	// refusals); NoAudit marks reads, which are not recorded (refusals still are).
	Audit   string
	Handler handlerFunc
	// AllowMustChange lets a user whose password must be changed reach the route.
	AllowMustChange bool
	Summary         string
}

type handlerFunc func(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error

// NoAudit is the audit action of reads.
const NoAudit = "-"

// routes is the whole console (every handler has its own file).
var routes = []route{
	{Method: "GET", Path: "/admin", Role: Public, Audit: NoAudit, Handler: serveRootRedirect, Summary: "redirect to /admin/"},
	{Method: "GET", Path: "/admin/{$}", Role: Viewer, Audit: NoAudit, Handler: serveOverview, Summary: "overview"},
	{Method: "GET", Path: "/admin/static/{file}", Role: Public, Audit: NoAudit, Handler: serveStatic, Summary: "static assets, cached forever"},
	{Method: "GET", Path: "/admin/login", Role: Public, Audit: NoAudit, Handler: serveLoginForm, Summary: "login form"},
	{Method: "POST", Path: "/admin/login", Role: Public, Audit: "login", Handler: serveLogin, Summary: "log in with user name and password"},
	{Method: "GET", Path: "/admin/login/totp", Role: Pending, Audit: NoAudit, Handler: serveTOTPForm, Summary: "second-factor form"},
	{Method: "POST", Path: "/admin/login/totp", Role: Pending, Audit: "login.totp", Handler: serveTOTPLogin, Summary: "second factor: TOTP or recovery code"},
	{Method: "POST", Path: "/admin/logout", Role: Viewer, Audit: "logout", Handler: serveLogout, AllowMustChange: true, Summary: "log out"},
	{Method: "GET", Path: "/admin/events", Role: Viewer, Audit: NoAudit, Handler: serveEvents, Summary: "live page updates (Server-Sent Events)"},
	{Method: "GET", Path: "/admin/services", Role: Viewer, Audit: NoAudit, Handler: serveServices, Summary: "services"},
	{Method: "GET", Path: "/admin/services/{service}", Role: Viewer, Audit: NoAudit, Handler: serveService, Summary: "one service"},
	{Method: "GET", Path: "/admin/services/{service}/logs", Role: Operator, Audit: NoAudit, Handler: serveLogs, Summary: "a service's log tail"},
	{Method: "GET", Path: "/admin/services/{service}/logs/stream", Role: Operator, Audit: NoAudit, Handler: serveLogStream, Summary: "follow a service's log (Server-Sent Events)"},
	{Method: "GET", Path: "/admin/services/{service}/restart", Role: Operator, Audit: NoAudit, Handler: serveRestartConfirm, Summary: "confirm a restart"},
	{Method: "POST", Path: "/admin/services/{service}/restart", Role: Operator, Audit: "service.restart", Handler: serveRestart, Summary: "restart a service"},
	{Method: "GET", Path: "/admin/services/{service}/scale", Role: Operator, Audit: NoAudit, Handler: serveScaleConfirm, Summary: "confirm a scale"},
	{Method: "POST", Path: "/admin/services/{service}/scale", Role: Operator, Audit: "service.scale", Handler: serveScale, Summary: "scale a service"},
	{Method: "GET", Path: "/admin/actions/{id}", Role: Viewer, Audit: NoAudit, Handler: serveAction, Summary: "progress of a restart or scale"},
	{Method: "GET", Path: "/admin/users", Role: Admin, Audit: NoAudit, Handler: serveUsers, Summary: "users and invites"},
	{Method: "POST", Path: "/admin/users/invites", Role: Admin, Audit: "user.invite", Handler: serveInviteCreate, Summary: "invite a user"},
	{Method: "POST", Path: "/admin/users/invites/{id}/revoke", Role: Admin, Audit: "user.invite_revoke", Handler: serveInviteRevoke, Summary: "revoke an invite"},
	{Method: "POST", Path: "/admin/users/{id}/role", Role: Admin, Audit: "user.role", Handler: serveUserRole, Summary: "change a user's role"},
	{Method: "POST", Path: "/admin/users/{id}/active", Role: Admin, Audit: "user.active", Handler: serveUserActive, Summary: "deactivate or reactivate a user"},
	{Method: "GET", Path: "/admin/invite/{token}", Role: Public, Audit: NoAudit, Handler: serveInviteForm, Summary: "accept an invite: form"},
	{Method: "POST", Path: "/admin/invite/{token}", Role: Public, Audit: "user.create", Handler: serveInviteAccept, Summary: "accept an invite: create the account"},
	{Method: "GET", Path: "/admin/audit", Role: Admin, Audit: NoAudit, Handler: serveAudit, Summary: "audit log"},
	{Method: "GET", Path: "/admin/account", Role: Viewer, Audit: NoAudit, Handler: serveAccount, Summary: "your account"},
	{Method: "GET", Path: "/admin/account/password", Role: Viewer, Audit: NoAudit, Handler: servePasswordForm, AllowMustChange: true, Summary: "change password: form"},
	{Method: "POST", Path: "/admin/account/password", Role: Viewer, Audit: "account.password", Handler: servePasswordChange, AllowMustChange: true, Summary: "change password"},
	{Method: "GET", Path: "/admin/account/totp", Role: Viewer, Audit: NoAudit, Handler: serveTOTPSetup, Summary: "set up TOTP"},
	{Method: "POST", Path: "/admin/account/totp", Role: Viewer, Audit: "account.totp_enable", Handler: serveTOTPEnable, Summary: "enable TOTP"},
	{Method: "POST", Path: "/admin/account/totp/disable", Role: Viewer, Audit: "account.totp_disable", Handler: serveTOTPDisable, Summary: "disable TOTP"},
	{Method: "POST", Path: "/admin/account/sessions/{id}/revoke", Role: Viewer, Audit: "account.session_revoke", Handler: serveSessionRevoke, Summary: "end one of your sessions"},
	{Method: "POST", Path: "/admin/account/sessions/revoke-all", Role: Viewer, Audit: "account.logout_everywhere", Handler: serveLogoutEverywhere, AllowMustChange: true, Summary: "log out everywhere"},
	{Method: "", Path: "/admin/", Role: Public, Audit: NoAudit, Handler: serveNotFound, Summary: "everything else: 404"},
}

// RouteInfo describes a route (for docs and tests).
type RouteInfo struct {
	Method, Path, Role, Audit, Summary string
}

// Routes lists the console's route table.
func Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		out = append(out, RouteInfo{Method: r.Method, Path: r.Path, Role: r.Role.String(), Audit: r.Audit, Summary: r.Summary})
	}
	return out
}

// checkRoute refuses a route the table must not have.
func checkRoute(r route) error {
	name := strings.TrimSpace(r.Method + " " + r.Path)
	switch {
	case r.Path != "/admin" && !strings.HasPrefix(r.Path, "/admin/"):
		return fmt.Errorf("console: route %s: every route lives under /admin", name)
	case r.Role <= roleMissing || r.Role > Admin:
		return fmt.Errorf("console: route %s has no role (deny by default: name Public explicitly)", name)
	case r.Audit == "":
		return fmt.Errorf("console: route %s has no audit action (reads say NoAudit)", name)
	case r.Handler == nil:
		return fmt.Errorf("console: route %s has no handler", name)
	case r.Method == "" && r.Path != "/admin/":
		return fmt.Errorf("console: route %s: only the catch-all may match every method", name)
	case r.Method != "" && r.Method != http.MethodGet && r.Method != http.MethodPost:
		return fmt.Errorf("console: route %s: only GET and POST are served", name)
	case r.Method == http.MethodPost && r.Audit == NoAudit:
		return fmt.Errorf("console: route %s changes state and must name its audit action", name)
	case r.Method == http.MethodPost && r.Role == Public && r.Path != "/admin/login" && !strings.HasPrefix(r.Path, "/admin/invite/"):
		return fmt.Errorf("console: route %s: public POST routes are login and invites only", name)
	}
	return nil
}

// buildMux registers the table — the only place anything is registered.
func (c *Console) buildMux(rs []route) (mux *http.ServeMux, err error) {
	mux = http.NewServeMux()
	defer func() {
		if r := recover(); r != nil { // conflicting patterns
			mux, err = nil, fmt.Errorf("console: route table: %v", r)
		}
	}()
	for i := range rs {
		rt := &rs[i]
		if err := checkRoute(*rt); err != nil {
			return nil, err
		}
		pattern := rt.Path
		if rt.Method != "" {
			pattern = rt.Method + " " + rt.Path
		}
		mux.Handle(pattern, c.serveRoute(rt))
	}
	return mux, nil
}
