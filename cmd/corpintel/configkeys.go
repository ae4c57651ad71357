package main

import (
	"fmt"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/spf13/cobra"
)

// newConfigKeysCmd is `corpintel config keys`: every key this binary knows, with its
// environment variable (the installer asks it whether [backup] exists).
func newConfigKeysCmd() *cobra.Command {
	var env bool
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List every config key this binary knows (--env: with its CORPINTEL_* variable)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, k := range config.Keys() {
				if env {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", k, config.EnvName(k))
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), k)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&env, "env", false, "also print the environment variable of each key")
	return cmd
}
