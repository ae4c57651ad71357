package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newTLSCmd) }

func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Certificates of the HTTPS edge",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return usagef("tls needs a subcommand: ca") },
	}
	var flags configFlags
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Print the local CA certificate of self-signed mode (PEM), to add to the clients' trust store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			pem, err := certs.ReadCACertificate(filepath.Join(cfg.StateDir, "tls"))
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no local CA in %s yet: it is created when the supervisor first starts in self-signed mode (tls.mode = %q here)", filepath.Join(cfg.StateDir, "tls"), cfg.TLS.Mode)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(pem)
			return err
		},
	}
	flags.register(ca, true)
	cmd.AddCommand(ca)
	return cmd
}

// newCheckTLSCmd is `corpintel check tls` (check.go adds it to `check`).
func newCheckTLSCmd() *cobra.Command {
	var flags clientFlags
	var asJSON bool
	tlsCheck := &cobra.Command{
		Use:   "tls",
		Short: "What would make certificate issuance fail: DNS, ports 80/443 reaching this edge, CAA (exit 1 on errors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			findings, err := c.TLSCheck(cmd.Context())
			if err != nil {
				return asUsage(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(findings); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					fmt.Fprintln(out, f.String())
				}
				if len(findings) == 0 {
					fmt.Fprintln(out, "tls: nothing to report")
				}
			}
			if certs.HasErrors(findings) {
				return exitCode(1)
			}
			return nil
		},
	}
	flags.register(tlsCheck)
	tlsCheck.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return tlsCheck
}
