package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corpintel/corpintel/bundles"
	"github.com/corpintel/corpintel/installer"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/internal/version"
	"github.com/corpintel/corpintel/systemd"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newBundleCmd) }

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Air-gapped bundles: build, verify, load, keygen (see bundles/ for the format)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usagef("bundle needs a subcommand: build, verify, load, keygen")
		},
	}
	cmd.AddCommand(newBundleBuildCmd(), newBundleVerifyCmd(), newBundleLoadCmd(), newBundleKeygenCmd())
	return cmd
}

// releaseKey reads --key, else the key the installer pinned on this machine.
func releaseKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		path = bundles.DefaultPublicKeyFile
	}
	pub, err := bundles.ReadPublicKey(path)
	if err != nil {
		return nil, usagef("%v (pass the release public key with --key)", err)
	}
	return pub, nil
}

func newBundleBuildCmd() *cobra.Command {
	var flags configFlags
	var keyFile, out, ver, binary string
	var images []string
	cmd := &cobra.Command{
		Use:   "build --key SIGNING-KEY [--out DIR]",
		Short: "Build corpintel-<version>-linux-<arch>.tar from this binary and the stack images (and install.sh beside it)",
		Long: `Build an air-gapped bundle: this binary (or --binary), every stack image the config
names (docker save), the installer with the signing key's public half pinned, the
systemd unit, the config template, a CycloneDX SBOM, SHA256SUMS and its Ed25519
signature. The signing key is PKCS #8 PEM (openssl genpkey -algorithm ed25519, or
corpintel bundle keygen); keep it out of the repository.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return usagef("bundle build needs the signing key: --key FILE")
			}
			key, err := bundles.ReadPrivateKey(keyFile)
			if err != nil {
				return usageError{err}
			}
			if len(images) == 0 {
				cfg, err := flags.load(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				for _, svc := range stack.Services {
					r, _ := cfg.ServiceResources(svc)
					images = append(images, r.Image)
				}
			}
			if binary == "" {
				if binary, err = os.Executable(); err != nil {
					return err
				}
			}
			eng, err := docker.New(cmd.Context())
			if err != nil {
				return err
			}
			defer eng.Close()
			if err := os.MkdirAll(out, 0o755); err != nil { // #nosec G301 -- a bundle is public
				return err
			}
			start := time.Now()
			res, err := bundles.Build(cmd.Context(), bundles.BuildOptions{Version: ver, Revision: version.Rev(), Binary: binary, Images: images,
				Key: key, OutDir: out, Installer: installer.Script, Unit: []byte(systemd.Unit), Config: installer.ConfigTemplate,
				Engine: eng, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "bundle:    %s (%.1f MB, built in %s)\n", res.Path, float64(res.Size)/1e6, time.Since(start).Round(100*time.Millisecond))
			fmt.Fprintf(w, "installer: %s (release key %s pinned)\n", res.Installer, bundles.Fingerprint(key.Public().(ed25519.PublicKey)))
			for _, s := range res.Steps {
				fmt.Fprintf(w, "  %-22s %s\n", s.Name, s.Duration.Round(10*time.Millisecond))
			}
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVar(&keyFile, "key", "", "the Ed25519 signing key (PKCS #8 PEM)")
	cmd.Flags().StringVar(&out, "out", ".", "directory for the bundle and install.sh")
	cmd.Flags().StringVar(&ver, "version", version.Version, "the version the bundle carries")
	cmd.Flags().StringVar(&binary, "binary", "", "the corpintel binary to ship (default: this one)")
	cmd.Flags().StringSliceVar(&images, "images", nil, "the images to ship (default: the config's four stack images)")
	return cmd
}

func newBundleVerifyCmd() *cobra.Command {
	var keyFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify a bundle offline without unpacking it: signature, every checksum, no hostile entries (exit 1 when refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := releaseKey(keyFile)
			if err != nil {
				return err
			}
			start := time.Now()
			v, err := bundles.VerifyFile(args[0], pub)
			if err != nil {
				return err
			}
			took := time.Since(start)
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"file": args[0], "manifest": v.Manifest, "sizes": v.Sizes, "key": bundles.Fingerprint(pub), "took_ns": took})
			}
			var total int64
			for _, n := range v.Sizes {
				total += n
			}
			refs := make([]string, len(v.Manifest.Images))
			for i, img := range v.Manifest.Images {
				refs[i] = img.Ref
			}
			fmt.Fprintf(w, "%s: ok — corpintel %s (rev %s) %s/%s, built %s\n", filepath.Base(args[0]), v.Manifest.Version, v.Manifest.Revision,
				v.Manifest.OS, v.Manifest.Arch, v.Manifest.Created.Format(time.RFC3339))
			fmt.Fprintf(w, "  signed by release key %s; %d files, %.1f MB, verified in %s\n", bundles.Fingerprint(pub), len(v.Sizes), float64(total)/1e6, took.Round(time.Millisecond))
			fmt.Fprintf(w, "  images: %s\n", strings.Join(refs, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the release public key (default "+bundles.DefaultPublicKeyFile+")")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newBundleLoadCmd() *cobra.Command {
	var keyFile, tmp string
	cmd := &cobra.Command{
		Use:   "load FILE|DIR",
		Short: "Verify a bundle (or the directory it was unpacked into) and load its images into the Docker Engine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := releaseKey(keyFile)
			if err != nil {
				return err
			}
			eng, err := docker.New(cmd.Context())
			if err != nil {
				return err
			}
			defer eng.Close()
			start := time.Now()
			res, err := bundles.Load(cmd.Context(), eng, args[0], tmp, pub)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "loaded %d images of corpintel %s in %s: %s\n", len(res.Manifest.Images), res.Manifest.Version,
				time.Since(start).Round(100*time.Millisecond), strings.Join(res.Loaded, ", "))
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the release public key (default "+bundles.DefaultPublicKeyFile+")")
	cmd.Flags().StringVar(&tmp, "tmpdir", "", "where a bundle file is unpacked (default $TMPDIR)")
	return cmd
}

func newBundleKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Make an Ed25519 signing key pair (signing.key 0600, signing.pub) for bundle build",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("keygen needs --out DIR (outside the repository)")
			}
			priv, pub, err := bundles.Keygen(out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "signing key %s (keep it secret, off the repository)\npublic key  %s\n", priv, pub)
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for the key pair")
	return cmd
}
