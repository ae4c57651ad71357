package rbac

import "testing"

func TestCan(t *testing.T) {
	cases := []struct {
		r    Role
		p    Permission
		want bool
	}{
		{Admin, UsersManage, true},
		{Admin, AuditRead, true},
		{Admin, CompaniesWrite, true},
		{Analyst, CompaniesWrite, true},
		{Analyst, MetricsWrite, true},
		{Analyst, UsersManage, false},
		{Analyst, AuditRead, false},
		{Viewer, CompaniesRead, true},
		{Viewer, CompaniesWrite, false},
		{Viewer, DocumentsWrite, false},
		{Viewer, Authenticated, true},
		{Role("root"), Authenticated, false},
		{Role("root"), CompaniesRead, false},
		{Role(""), Public, true},
	}
	for _, c := range cases {
		if got := Can(c.r, c.p); got != c.want {
			t.Errorf("Can(%q, %q) = %v, want %v", c.r, c.p, got, c.want)
		}
	}
}

func TestKnownAndTable(t *testing.T) {
	if Known("companies:delete-all") {
		t.Fatal("an undefined permission must not be Known")
	}
	for _, p := range []Permission{Public, Authenticated, GDPRManage, DocumentsRead} {
		if !Known(p) {
			t.Errorf("Known(%q) = false", p)
		}
	}
	tab := Table()
	if len(tab[Admin]) <= len(tab[Analyst]) || len(tab[Analyst]) <= len(tab[Viewer]) {
		t.Fatalf("roles must be strictly ordered by privilege: %v", tab)
	}
	for _, r := range Roles() {
		if !r.Valid() {
			t.Errorf("%q not valid", r)
		}
	}
}
