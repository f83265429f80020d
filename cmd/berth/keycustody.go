package main

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"berth.dev/berth/internal/api"
	"berth.dev/berth/internal/custody"
	"berth.dev/berth/internal/sign/hsm"
	"berth.dev/berth/internal/sign/keyref"
	"berth.dev/berth/internal/sign/keys"
)

// addKeyCustodyCmds adds the key commands beyond generate: the public
// half of any key reference, and the server's project keys.
func addKeyCustodyCmds(cmd *cobra.Command) {
	cmd.AddCommand(newKeyPublicCmd())
	for _, c := range []*cobra.Command{newKeyListCmd(), newKeyCreateCmd(), newKeyRotateCmd(), newKeyStageCmd(),
		newKeyApproveCmd(), newKeyBackupCmd(), newKeyRestoreCmd()} {
		cmd.AddCommand(c)
	}
}

// serverKeyCmd is a key command that talks to a running server's API.
func serverKeyCmd(use, short, long string, args cobra.PositionalArgs, run func(*cobra.Command, []string, *apiClient, printer) error) (*cobra.Command, *apiFlags) {
	f := &apiFlags{}
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			return run(cmd, a, c, printer{cmd: cmd, json: f.json})
		}}
	f.register(cmd)
	return cmd, f
}

func printKeys(p printer, keys []custody.Key) error {
	return p.print(keys, "PURPOSE\tID\tALGORITHM\tSIGNING\tNOT BEFORE\tNOT AFTER", func(w io.Writer) {
		for _, k := range keys {
			na := "-"
			if k.NotAfter != nil {
				na = k.NotAfter.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%s\n", k.Purpose, k.ID, k.Algorithm, k.Signing, k.NotBefore.Format(time.RFC3339), na)
		}
	})
}

func newKeyListCmd() *cobra.Command {
	var pem, purpose string
	cmd, _ := serverKeyCmd("list PROJECT", "List a project's signing keys held by the server (public halves)",
		`List the signing keys a server holds for PROJECT, every version with its
validity window. --pem PURPOSE prints the public key that signs for PURPOSE
now (for cosign verify --key); --trust PURPOSE prints a trust file of all of
PURPOSE's keys with their windows (for berth verify --trust).`, cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			var keys []custody.Key
			if err := c.call("GET", "/projects/"+url.PathEscape(args[0])+"/keys", nil, &keys); err != nil {
				return err
			}
			switch {
			case pem != "":
				for _, k := range keys {
					if k.Purpose == pem && k.Signing {
						_, err := fmt.Fprint(cmd.OutOrStdout(), k.PublicKey)
						return err
					}
				}
				return fmt.Errorf("project %s has no %s key", args[0], pem)
			case purpose != "":
				raw, err := c.raw("GET", "/projects/"+url.PathEscape(args[0])+"/keys?format=trust&purpose="+url.QueryEscape(purpose))
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			return printKeys(p, keys)
		})
	cmd.Flags().StringVar(&pem, "pem", "", "print the PEM public key that signs for this purpose")
	cmd.Flags().StringVar(&purpose, "trust", "", "print a trust file of this purpose's keys")
	return cmd
}

func newKeyCreateCmd() *cobra.Command {
	var req api.KeyRequest
	cmd, _ := serverKeyCmd("create PROJECT PURPOSE", "Have the server generate a signing key for a project and purpose",
		`Have the server generate a key pair for PROJECT and PURPOSE (scan, staging,
prod, ...). The private half is sealed under the server's master key and never
leaves it; the public half is printed.`, cobra.ExactArgs(2),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			req.Purpose = args[1]
			var k custody.Key
			if err := c.call("POST", "/projects/"+url.PathEscape(args[0])+"/keys", req, &k); err != nil {
				return err
			}
			if p.json {
				return p.print(k, "", nil)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s key %s (%s) for %s\n", k.Purpose, k.ID, k.Algorithm, k.Project)
			_, err := fmt.Fprint(cmd.OutOrStdout(), k.PublicKey)
			return err
		})
	cmd.Flags().StringVar(&req.Algorithm, "algorithm", "ecdsa-p256", "ecdsa-p256, ed25519 or rsa-3072")
	cmd.Flags().StringVar(&req.RotateEvery, "rotate-every", "", "rotate on a schedule (e.g. 2160h); default never")
	cmd.Flags().StringVar(&req.Overlap, "overlap", "", "how long a rotated-out key stays valid for verifiers (default 720h)")
	return cmd
}

func newKeyRotateCmd() *cobra.Command {
	var req api.RotateRequest
	cmd, _ := serverKeyCmd("rotate PROJECT PURPOSE", "Rotate a project's signing key: a successor signs from now on",
		`Rotate PROJECT's PURPOSE key: the server makes a successor and signs with it
from now on; the old key stays published, valid for verifiers until now +
overlap, so signatures it made keep verifying with trust files fetched from
the server (berth key list PROJECT --trust PURPOSE) until then.`, cobra.ExactArgs(2),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			var res api.RotateResponse
			if err := c.call("POST", "/projects/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(args[1])+"/rotate", req, &res); err != nil {
				return err
			}
			return printKeys(p, []custody.Key{res.Retired, res.Current})
		})
	cmd.Flags().StringVar(&req.Overlap, "overlap", "", "validity of the old key from now (default: the key's own overlap)")
	return cmd
}

func newKeyStageCmd() *cobra.Command {
	var rule api.StageRule
	var off bool
	var policyFile, stage string
	cmd, _ := serverKeyCmd("stage PROJECT", "Have the server sign PROJECT's images that pass their scan, or that people approve",
		`Set PROJECT's scan stage: after every scan, an image that passes the rule is
signed with the project's --key key, annotated dev.berth.stage=scan; with
--attest a signed vulnerability attestation (cosign's vuln predicate) is
attached too. The rule is --fail-on (no finding rated that or higher; with
--ignore-unfixed, findings without a fix left out), --policy FILE (a policy
document as "berth policy" takes, judged against the stored report: its
vulnerabilities, secrets, misconfigurations, licenses rules and conditions;
signers and attestations are refused, since the stage vouches for the scan),
or both; without --policy, --fail-on defaults to CRITICAL. An image that
fails gets nothing, and one whose approval a later re-match withdraws is
recorded as revoked, with the reason (GET .../artifacts/REF/approvals,
webhook dev.berth.approval.revoked). --off stops it.

--stage NAME (staging, prod, ...) sets a stage people approve instead
(berth key approve): an approval is signed with --key when the stages named
by --requires have approved the image and its stored scan passes --fail-on
and --policy, when given (none is needed; here the policy may also require
signatures).`, cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			path := "/projects/" + url.PathEscape(args[0]) + "/stages/" + url.PathEscape(stage)
			if stage != custody.StageScan && !cmd.Flags().Changed("fail-on") {
				rule.FailOn = "" // people approve; a threshold only when asked for
			}
			if stage != custody.StageScan && !cmd.Flags().Changed("key") {
				rule.Key = stage
			}
			if off {
				return c.call("DELETE", path, nil, nil)
			}
			if policyFile != "" {
				data, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("stage policy: %w", err)
				}
				rule.Policy = string(data)
				if !cmd.Flags().Changed("fail-on") {
					rule.FailOn = "" // the policy alone
				}
			}
			var out custody.Rule
			if err := c.call("PUT", path, rule, &out); err != nil {
				return err
			}
			return p.print(out, "STAGE\tKEY\tFAIL ON\tIGNORE UNFIXED\tPOLICY\tATTEST\tREQUIRES", func(w io.Writer) {
				failOn, pol, requires := string(out.FailOn), out.PolicyVersion(), strings.Join(out.Requires, ",")
				for _, v := range []*string{&failOn, &pol, &requires} {
					if *v == "" {
						*v = "-"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%v\t%s\n", out.Stage, out.KeyPurpose, failOn, out.IgnoreUnfixed, pol, out.Attest, requires)
			})
		})
	cmd.Flags().StringVar(&rule.Key, "key", "scan", "purpose of the project key that signs")
	cmd.Flags().StringVar(&rule.FailOn, "fail-on", "CRITICAL", "lowest severity that fails the stage (not set with --policy unless given)")
	cmd.Flags().BoolVar(&rule.IgnoreUnfixed, "ignore-unfixed", false, "leave out findings without a fixed version (with --fail-on)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy document (YAML or JSON) the stored report must pass")
	cmd.Flags().BoolVar(&rule.Attest, "attest", false, "also attach a signed vulnerability attestation")
	cmd.Flags().BoolVar(&off, "off", false, "stop signing for the stage")
	cmd.Flags().StringVar(&stage, "stage", custody.StageScan, "the stage: scan, or one people approve (staging, prod, ...)")
	cmd.Flags().StringSliceVar(&rule.Requires, "requires", nil, "stages whose approval must stand first (a stage people approve)")
	return cmd
}

func newKeyApproveCmd() *cobra.Command {
	var revoke bool
	var reason string
	cmd, _ := serverKeyCmd("approve PROJECT/REPOSITORY(:TAG|@DIGEST) STAGE", "Approve an image for a stage people sign off; the server signs it",
		`Approve an image for STAGE (staging, prod, ...: a stage set with berth key
stage --stage). The server checks the stage's rule (the stages it requires
have approved the image; its stored scan passes the threshold and policy)
and signs the image with the project's key for the stage, annotated
dev.berth.stage=STAGE; a project policy requiring that key then admits it.
It needs stage.approve in the project (project admins, maintainers, robots
granted it). --revoke withdraws an approval (--reason says why): the
signature stays in the registry, but policies stop counting it.`, cobra.ExactArgs(2),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			project, repo, ref, err := splitImageRef(args[0])
			if err != nil {
				return err
			}
			path := "/projects/" + url.PathEscape(project) + "/repositories/" + url.PathEscape(repo) +
				"/artifacts/" + url.PathEscape(ref) + "/approvals/" + url.PathEscape(args[1])
			method := "POST"
			if revoke {
				method = "DELETE"
				if reason != "" {
					path += "?reason=" + url.QueryEscape(reason)
				}
			}
			var out custody.Approval
			if err := c.call(method, path, nil, &out); err != nil {
				return err
			}
			return p.print(out, "STAGE\tSTATE\tKEY\tDIGEST\tREASON", func(w io.Writer) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", out.Stage, out.State, out.KeyID, out.Digest, cmp.Or(out.Reason, "-"))
			})
		})
	cmd.Flags().BoolVar(&revoke, "revoke", false, "withdraw the approval")
	cmd.Flags().StringVar(&reason, "reason", "", "why the approval is withdrawn (with --revoke)")
	return cmd
}

// splitImageRef splits PROJECT/REPOSITORY:TAG or PROJECT/REPOSITORY@DIGEST
// (no registry host: the server is --server's) for the API's paths.
func splitImageRef(s string) (project, repo, ref string, err error) {
	name, ref, ok := strings.Cut(s, "@")
	if !ok {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || strings.Contains(s[i:], "/") {
			return "", "", "", fmt.Errorf("%s: want PROJECT/REPOSITORY:TAG or PROJECT/REPOSITORY@DIGEST", s)
		}
		name, ref = s[:i], s[i+1:]
	}
	project, repo, ok = strings.Cut(name, "/")
	if !ok || project == "" || repo == "" || ref == "" {
		return "", "", "", fmt.Errorf("%s: want PROJECT/REPOSITORY:TAG or PROJECT/REPOSITORY@DIGEST", s)
	}
	return project, repo, ref, nil
}

// readPassphrase returns a backup's passphrase from
// BERTH_BACKUP_PASSPHRASE, or asks on the terminal (twice when sealing).
func readPassphrase(cmd *cobra.Command, confirm bool) (string, error) {
	if v, ok := os.LookupEnv("BERTH_BACKUP_PASSPHRASE"); ok {
		return v, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no passphrase: set BERTH_BACKUP_PASSPHRASE or run on a terminal")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pw, err := ask("Backup passphrase: ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := ask("Backup passphrase again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("passphrases do not match")
	}
	return pw, nil
}

func newKeyBackupCmd() *cobra.Command {
	var out string
	var force bool
	cmd, _ := serverKeyCmd("backup --out FILE", "Write every key the server holds, sealed under a passphrase (administrators)",
		`Back up every project key the server holds (every version, with its
window) and every stage rule into FILE, sealed under a passphrase (scrypt and
NaCl secretbox, as cosign's private keys) from BERTH_BACKUP_PASSPHRASE or the
terminal. Keep the file and the passphrase apart. berth key restore brings
them back into this server or a new one.`, cobra.NoArgs,
		func(cmd *cobra.Command, _ []string, c *apiClient, _ printer) error {
			if out == "" {
				return errors.New("--out is required")
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("%s already exists; remove it or pass --force", out)
			}
			pass, err := readPassphrase(cmd, true)
			if err != nil {
				return err
			}
			var res api.BackupResponse
			if err := c.call("POST", "/keys/backup", api.BackupRequest{Passphrase: pass}, &res); err != nil {
				return err
			}
			if err := writeOutput(out, outputFile{Perm: 0o600, ForcePerm: true}, writeBytes([]byte(res.Backup))); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d keys backed up to %s\n", res.Keys, out)
			return nil
		})
	cmd.Flags().StringVar(&out, "out", "", "file to write the sealed backup to")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func newKeyRestoreCmd() *cobra.Command {
	var force bool
	cmd, _ := serverKeyCmd("restore FILE", "Bring a key backup back into a server (administrators)",
		`Restore the keys and stage rules of a backup (berth key backup) into the
server: the same one or a new one, whose projects of the same names must
exist. Everything is checked before anything is written; a wrong passphrase or
a damaged file restores nothing. A server that already holds keys is refused
unless --force, which replaces the keys of the projects in the backup.`, cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string, c *apiClient, p printer) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			pass, err := readPassphrase(cmd, false)
			if err != nil {
				return err
			}
			var res custody.RestoreResult
			if err := c.call("POST", "/keys/restore", api.RestoreRequest{Backup: string(data), Passphrase: pass, Force: force}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "restored %d keys and %d stage rules of %s\n", res.Keys, res.Rules, strings.Join(res.Projects, ", "))
			return nil
		})
	cmd.Flags().BoolVar(&force, "force", false, "replace the keys of the projects in the backup")
	return cmd
}

// raw GETs path and returns the body as is.
func (c *apiClient) raw(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// generateInToken is `berth key generate --key pkcs11:…`: the key pair is
// made inside the token and only its public half comes out (written to
// PREFIX.pub). With --master it makes an AES-256 master key instead: in
// the token, or, without --key, in PREFIX.master (base64, 0600) for
// keys.master_key: file:….
func generateInToken(cmd *cobra.Command, ref, kind string, master bool, prefix string, force bool) error {
	if ref == "" {
		path := prefix + ".master"
		if _, err := os.Stat(path); err == nil && !force {
			return fmt.Errorf("%s already exists; remove it or pass --force", path)
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		if err := writeOutput(path, outputFile{Perm: 0o600, ForcePerm: true}, writeBytes([]byte(base64.StdEncoding.EncodeToString(raw)+"\n"))); err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Master key written to", path, "(use it with berth serve --master-key file:"+path+")")
		return nil
	}
	if !hsm.IsURI(ref) {
		return errors.New("--key takes a pkcs11: URI: berth creates keys inside tokens only (KMS keys are created with the provider's own tools)")
	}
	u, err := hsm.ParseURI(ref)
	if err != nil {
		return err
	}
	tok, err := hsm.Open(u)
	if err != nil {
		return err
	}
	defer tok.Close()
	if master {
		if err := tok.GenerateSecret(u); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "AES-256 master key created in %s\n", u)
		return nil
	}
	s, err := tok.GenerateKeyPair(u, kind)
	if err != nil {
		return err
	}
	pubPEM, err := keys.EncodePublic(s.Public())
	if err != nil {
		return err
	}
	pubPath := prefix + ".pub"
	if _, err := os.Stat(pubPath); err == nil && !force {
		// The key exists in the token already; print the public half
		// rather than lose it.
		fmt.Fprint(cmd.OutOrStdout(), string(pubPEM))
		return fmt.Errorf("key pair created in %s, but %s already exists: its public key is printed above (pass --force to overwrite)", u, pubPath)
	}
	if err := writeOutput(pubPath, outputFile{Perm: 0o644}, writeBytes(pubPEM)); err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Key pair created in %s\nPublic key written to %s\n", u, pubPath)
	return nil
}

func newKeyPublicCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "public KEYREF",
		Short: "Print the PEM public key of a key file, a pkcs11: URI or a KMS key",
		Long: `Print the public key of a key reference as PEM, for cosign verify --key,
berth verify --key and trust files:

  a file            a public key, or a private key (its password is asked for if it is encrypted)
  pkcs11:…          a key pair in a PKCS #11 token (RFC 7512 URI; the private half stays there)
  hashivault://…, awskms://…, gcpkms://…, azurekms://…
                    a KMS key, when this berth has the provider`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keyref.Public(cmd.Context(), args[0], keyref.Options{Password: func() ([]byte, error) { return readPassword(false) }})
			if err != nil {
				return err
			}
			pemBytes, err := keys.EncodePublic(pub)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(pemBytes)
			return err
		},
	}
}
