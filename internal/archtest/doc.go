// Package archtest holds the test that keeps the import rules of DESIGN.md true: only
// internal/docker talks to the Docker SDK, internal/ imports nothing above it, the API
// imports nothing of the appliance, jobs/ does not import the supervisor. It checks
// every Go file of the module, tests included.
package archtest
