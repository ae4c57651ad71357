package users

import "github.com/corpintel/corpintel/api/app"

// New returns the users module built from the API's shared dependencies.
func New(d app.Deps) *Module { return NewModule(d.Pool, d.Log) }
