package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/corpintel/corpintel/api"
	"github.com/corpintel/corpintel/api/app"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newAPICmd) }

// apiConfig reads the API's environment; a bad value is a usage error (exit 2).
func apiConfig() (app.Config, error) {
	cfg, err := app.FromEnv(os.Getenv)
	if err != nil {
		return cfg, usagef("API configuration: %w", err)
	}
	return cfg, nil
}

func newAPILogger(cfg app.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func newAPICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the platform REST API (configured by CORPINTEL_* variables; see docs/ARCHITECTURE.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := apiConfig()
			if err != nil {
				return err
			}
			if err := cfg.RequireServing(); err != nil {
				return usagef("API configuration: %w", err)
			}
			return api.Serve(cmd.Context(), cfg, newAPILogger(cfg, cmd.ErrOrStderr()))
		},
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "healthcheck",
			Short: "Exit 0 when the local API answers /health (the image's health check)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := app.FromEnv(os.Getenv)
				if err != nil {
					return usagef("API configuration: %w", err)
				}
				return api.Healthcheck(cmd.Context(), cfg.Listen)
			},
		},
		&cobra.Command{
			Use:   "migrate",
			Short: "Apply the embedded database migrations (once, under an advisory lock)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := apiConfig()
				if err != nil {
					return err
				}
				return api.Migrate(cmd.Context(), cfg, newAPILogger(cfg, cmd.ErrOrStderr()))
			},
		},
		newAPISeedCmd(), newCreateAdminCmd(),
		&cobra.Command{
			Use:   "rotate-keys",
			Short: "Add a new JWT signing key; older keys keep verifying until their tokens expire",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := apiConfig()
				if err != nil {
					return err
				}
				kid, err := api.RotateKeys(cmd.Context(), cfg, newAPILogger(cfg, cmd.ErrOrStderr()))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s is active; previous keys verify until their tokens expire\n", kid)
				return err
			},
		},
	)
	return cmd
}

func newAPISeedCmd() *cobra.Command {
	var companies, years int
	var seed int64
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Load deterministic sample data (companies and daily metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if companies < 1 || companies > 1_000_000 || years < 1 || years > 50 {
				return usagef("seed: --companies must be 1…1000000 and --years 1…50")
			}
			cfg, err := apiConfig()
			if err != nil {
				return err
			}
			return api.Seed(cmd.Context(), cfg, newAPILogger(cfg, cmd.ErrOrStderr()), companies, years, seed)
		},
	}
	cmd.Flags().IntVar(&companies, "companies", 200, "number of companies")
	cmd.Flags().IntVar(&years, "years", 2, "years of daily metrics per company")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed (same seed, same data)")
	return cmd
}

func newCreateAdminCmd() *cobra.Command {
	var email, name, passwordFile string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "create-admin",
		Short: "Create the first admin user (password from stdin or a file, never from argv)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" {
				return usagef("create-admin: --email is required")
			}
			if fromStdin == (passwordFile != "") {
				return usagef("create-admin: give exactly one of --password-stdin or --password-file")
			}
			pw, err := readPassword(cmd.InOrStdin(), fromStdin, passwordFile)
			if err != nil {
				return err
			}
			cfg, err := apiConfig()
			if err != nil {
				return err
			}
			if name == "" {
				name = strings.SplitN(email, "@", 2)[0]
			}
			id, err := api.CreateAdmin(cmd.Context(), cfg, newAPILogger(cfg, cmd.ErrOrStderr()), email, name, pw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "admin %s created (id %s)\n", email, id)
			return err
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "the admin's email address")
	cmd.Flags().StringVar(&name, "name", "", "display name (default: the email's local part)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "read the password from this file")
	return cmd
}
