package users

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodGet, Path: "/auth/me", Perm: rbac.Authenticated, Tag: "auth",
			Summary: "The caller's own user", Response: User{}, Handler: m.me},
		{Method: http.MethodGet, Path: "/users", Perm: rbac.UsersManage, Tag: "users", Audit: "users.list",
			Summary: "List users (oldest first, cursor pagination)", Response: Page{}, Handler: m.list,
			Query: []web.Param{
				{Name: "limit", Type: "integer", Description: "page size, 1 to 200 (default 50)"},
				{Name: "cursor", Type: "string", Description: "next_cursor of the previous page"},
			}},
		{Method: http.MethodPost, Path: "/users", Perm: rbac.UsersManage, Tag: "users", Audit: "user.create", MaxBody: 8 << 10,
			Summary: "Create a user", Request: NewUser{}, Response: User{}, Handler: m.create},
		{Method: http.MethodGet, Path: "/users/:id", Perm: rbac.UsersManage, Tag: "users", Audit: "users.read",
			Summary: "Get a user", Response: User{}, Handler: m.get},
		{Method: http.MethodPatch, Path: "/users/:id", Perm: rbac.UsersManage, Tag: "users", Audit: "user.update", MaxBody: 8 << 10,
			Summary: "Change a user's name, role, active flag or password (role, deactivation and password changes end their sessions)",
			Request: Update{}, Response: User{}, Handler: m.update},
		{Method: http.MethodDelete, Path: "/users/:id", Perm: rbac.UsersManage, Tag: "users", Audit: "user.delete",
			Summary: "Delete a user (ends their sessions)", Handler: m.delete},
	}
}

// problem maps the package's errors to HTTP problems.
func problem(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return web.ErrNotFound()
	case errors.Is(err, ErrEmailTaken):
		return web.NewProblem(http.StatusConflict, "a user with this email already exists")
	case errors.Is(err, ErrLastAdmin):
		return web.NewProblem(http.StatusConflict, "this is the last active admin; make another user admin first")
	case errors.Is(err, ErrAnonymized):
		return web.NewProblem(http.StatusConflict, "the user has been anonymized and cannot be changed")
	}
	return err
}

func (m *Module) me(c echo.Context) error {
	p := web.PrincipalOf(c)
	if p == nil {
		return web.ErrUnauthorized()
	}
	u, err := Get(c.Request().Context(), m.pool, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return web.ErrUnauthorized()
	}
	if err != nil {
		return err
	}
	return web.JSON(c, http.StatusOK, u)
}

func (m *Module) list(c echo.Context) error {
	limit := 50
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return web.Validation(web.FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
		}
		limit = n
	}
	p, err := List(c.Request().Context(), m.pool, limit, c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	return web.JSON(c, http.StatusOK, p)
}

func (m *Module) create(c echo.Context) error {
	var n NewUser
	if err := web.Bind(c, &n); err != nil {
		return err
	}
	web.SetAuditDetail(c, map[string]any{"email": n.Email, "role": string(n.Role)})
	u, err := Create(c.Request().Context(), m.pool, n)
	if err != nil {
		return problem(err)
	}
	web.SetAuditTarget(c, "user/"+u.ID)
	c.Response().Header().Set(echo.HeaderLocation, c.Request().URL.Path+"/"+u.ID)
	return web.JSON(c, http.StatusCreated, u)
}

func (m *Module) get(c echo.Context) error {
	u, err := Get(c.Request().Context(), m.pool, c.Param("id"))
	if err != nil {
		return problem(err)
	}
	return web.JSON(c, http.StatusOK, u)
}

func (m *Module) update(c echo.Context) error {
	id := c.Param("id")
	web.SetAuditTarget(c, "user/"+id)
	var ch Update
	if err := web.Bind(c, &ch); err != nil {
		return err
	}
	var u User
	var changed []string
	err := pgx.BeginFunc(c.Request().Context(), m.pool, func(tx pgx.Tx) error {
		var err error
		u, changed, err = Apply(c.Request().Context(), tx, id, ch)
		return err
	})
	if err != nil {
		return problem(err)
	}
	detail := map[string]any{"changed": changed}
	if ch.Role != nil {
		detail["role"] = string(*ch.Role)
	}
	web.SetAuditDetail(c, detail)
	return web.JSON(c, http.StatusOK, u)
}

func (m *Module) delete(c echo.Context) error {
	id := c.Param("id")
	web.SetAuditTarget(c, "user/"+id)
	err := pgx.BeginFunc(c.Request().Context(), m.pool, func(tx pgx.Tx) error {
		return Delete(c.Request().Context(), tx, id)
	})
	if err != nil {
		return problem(err)
	}
	return c.NoContent(http.StatusNoContent)
}
