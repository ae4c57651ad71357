// Package rbac is the single place that says which role may do what. Every API route
// declares one Permission; Can answers whether a role holds it.
package rbac

import "sort"

// Role is a user's role. Roles are fixed; there is no per-user permission list.
type Role string

// The platform's roles, from most to least privileged.
const (
	Admin   Role = "admin"
	Analyst Role = "analyst"
	Viewer  Role = "viewer"
)

// Permission names one capability. Routes declare exactly one.
type Permission string

// Permissions. Public and Authenticated are not granted by roles: Public routes need no
// token; Authenticated routes need any valid token (own session, own profile).
const (
	Public         Permission = "public"
	Authenticated  Permission = "authenticated"
	CompaniesRead  Permission = "companies:read"
	CompaniesWrite Permission = "companies:write"
	MetricsRead    Permission = "metrics:read"
	MetricsWrite   Permission = "metrics:write"
	DocumentsRead  Permission = "documents:read"
	DocumentsWrite Permission = "documents:write"
	UsersManage    Permission = "users:manage"
	AuditRead      Permission = "audit:read"
	GDPRManage     Permission = "gdpr:manage"
)

var reads = []Permission{CompaniesRead, MetricsRead, DocumentsRead}
var writes = []Permission{CompaniesWrite, MetricsWrite, DocumentsWrite}

// grants is the permission table: the whole authorization policy of the API.
var grants = map[Role]map[Permission]bool{
	Admin:   set(reads, writes, []Permission{UsersManage, AuditRead, GDPRManage}),
	Analyst: set(reads, writes),
	Viewer:  set(reads),
}

func set(groups ...[]Permission) map[Permission]bool {
	m := map[Permission]bool{}
	for _, g := range groups {
		for _, p := range g {
			m[p] = true
		}
	}
	return m
}

// Valid reports whether r is one of the platform's roles.
func (r Role) Valid() bool { _, ok := grants[r]; return ok }

// Roles lists the valid roles, most privileged first.
func Roles() []Role { return []Role{Admin, Analyst, Viewer} }

// Can reports whether role r holds permission p. Authenticated is held by every valid
// role; Public by everyone.
func Can(r Role, p Permission) bool {
	switch p {
	case Public:
		return true
	case Authenticated:
		return r.Valid()
	}
	return grants[r][p]
}

// Known reports whether p is a permission this package defines; the route table test
// uses it so that a typo cannot silently create an ungranted permission.
func Known(p Permission) bool {
	if p == Public || p == Authenticated {
		return true
	}
	for _, g := range grants {
		if g[p] {
			return true
		}
	}
	return false
}

// Table returns, per role, its sorted permissions (for docs and the OpenAPI document).
func Table() map[Role][]Permission {
	out := map[Role][]Permission{}
	for r, g := range grants {
		for p := range g {
			out[r] = append(out[r], p)
		}
		sort.Slice(out[r], func(i, j int) bool { return out[r][i] < out[r][j] })
	}
	return out
}
